"""Robustness: schemathesis generates requests for every operation of the oracle spec.

Positive mode only (schema-valid requests; TAMS documents no 400/401 on most operations, so
negative data would only measure the spec's gaps). Every response must not be a 5xx and must
conform (status code, content type, headers, body). Requests go through the suite's own ``Api``,
so the same client, credentials and openapi-core check serve in process and over HTTP.

Safety: every generated id is replaced by one the suite created (the seeded flows, their source
and objects) or by a fresh UUID nobody else has; webhook URLs point at a closed loopback port;
what the fuzzer creates is deleted afterwards. Against a remote server ``POST /service`` (which
renames the live service) is not sent.
"""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from contract_tests.api import NO_BODY, Api
from contract_tests.errors import ContractFailure
from contract_tests.suite import Context, Janitor, Scope

SCHEMATHESIS_VERSION = schemathesis.__version__
CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
LOOPBACK_HOOK = "http://127.0.0.1:9/conformance/"
PAGED = frozenset({"/flows", "/sources", "/flows/{flowId}/segments", "/objects/{objectId}"})
_SEED_FLOWS = {
    "video": {
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "container": "video/mp2t",
        "essence_parameters": {"frame_width": 1920, "frame_height": 1080},
    },
    "multi": {"format": "urn:x-nmos:format:multi", "container": "video/mp2t"},
}


def load_schema(spec_path: str) -> Any:
    schema = schemathesis.openapi.from_path(spec_path)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE], with_security_parameters=False, allow_extra_parameters=False
    )
    return schema


class Fuzzer:
    """Seeds (flows, a source, registered objects) and the id remapping of generated cases."""

    def __init__(self, ctx: Context, spec_path: str) -> None:
        self.ctx = ctx
        self.api: Api = ctx.api
        self.schema = load_schema(spec_path)
        self.scope = Scope(ctx.config.run_id)
        self.janitor = Janitor(self.api, ctx.config.delete_wait_s)
        self.seeds: dict[str, dict[str, Any]] = {}
        self.objects: list[str] = []
        self.page_keys: list[str] = []
        self.checks = list(CHECKS)
        self._strategies: dict[str, Any] = {}

    # ---------------------------------------------------------------- seeds

    def ensure_seeds(self) -> None:
        """Make sure the seeded flows exist, are writable and hold a segment (fuzzing may undo that)."""
        if self.api.read_only:
            return
        for kind, template in _SEED_FLOWS.items():
            body = self.seeds.get(kind)
            if body is None:
                body = {**template, "id": str(uuid.uuid4()), "source_id": str(uuid.uuid4()), "tags": self.scope.tags}
                self.seeds[kind] = body
                self.janitor.flow(body["id"])
            response = self.api.get(f"/flows/{body['id']}", check=False)
            if response.status_code == 200 and response.json().get("read_only"):
                self.api.put(f"/flows/{body['id']}/read_only", False, check=False)
            self.api.put(f"/flows/{body['id']}", body, check=False)  # (re)create it, undoing what fuzzing changed
        video = self.seeds["video"]["id"]
        if not self.objects:
            allocated = self.api.post(f"/flows/{video}/storage", {"limit": 2}, check=False)
            if allocated.status_code == 201:
                self.objects = [o["object_id"] for o in allocated.json()["media_objects"]]
        for i, object_id in enumerate(self.objects):
            segment = {"object_id": object_id, "timerange": f"[{i}:0_{i + 1}:0)"}
            self.api.post(f"/flows/{video}/segments", segment, check=False)
        # Real page keys, for the generated `page` parameters to try on other listings.
        for path in (f"/flows/{video}/segments", "/flows", "/sources"):
            key = self.api.get(path, params={"limit": 1}, check=False).headers.get("x-paging-nextkey")
            if key and key not in self.page_keys:
                self.page_keys.append(key)

    def cleanup(self) -> None:
        self.janitor.cleanup()

    # ---------------------------------------------------------------- cases

    def strategy(self, label: str) -> Any:
        if label not in self._strategies:
            method, path = label.split(" ", 1)
            self._strategies[label] = self.schema[path][method].as_strategy()
        return self._strategies[label]

    def _flow_id(self, data: st.DataObject) -> str:
        known = [s["id"] for s in self.seeds.values()]
        if known and data.draw(st.integers(0, 9), label="seeded flow?") < 7:
            return data.draw(st.sampled_from(known), label="flow")
        return str(uuid.uuid4())

    def remap(self, case: Any, data: st.DataObject) -> None:
        """Only ids the suite made: seeded ones, or fresh ones that cannot name anybody's data."""
        params = case.path_parameters
        if "flowId" in params:
            params["flowId"] = self._flow_id(data)
        if "sourceId" in params:
            sources = [s["source_id"] for s in self.seeds.values()]
            params["sourceId"] = (
                data.draw(st.sampled_from(sources), label="source")
                if sources and data.draw(st.booleans(), label="seeded source?")
                else str(uuid.uuid4())
            )
        if "objectId" in params:
            params["objectId"] = (
                data.draw(st.sampled_from(self.objects), label="object")
                if self.objects and data.draw(st.booleans(), label="seeded object?")
                else f"conformance-{uuid.uuid4()}"
            )
        if "request-id" in params or "request_id" in params:
            key = "request-id" if "request-id" in params else "request_id"
            params[key] = str(uuid.uuid4())
        body = case.body
        template, method = case.operation.path, case.operation.method.upper()
        paged = method in ("GET", "HEAD") and template in PAGED
        if paged and self.page_keys and data.draw(st.sampled_from([True, False]), label="a real page key?"):
            case.query = {**(case.query or {}), "page": data.draw(st.sampled_from(self.page_keys), label="page key")}
        if template == "/flows/{flowId}" and method == "PUT" and isinstance(body, dict):
            body["id"] = params["flowId"]
            seeded = next((s for s in self.seeds.values() if s["id"] == params["flowId"]), None)
            body["source_id"] = seeded["source_id"] if seeded else str(uuid.uuid4())
            if isinstance(body.get("flow_collection"), list):
                body["flow_collection"] = self._collection(body["flow_collection"], data)
            if seeded is None:
                self.janitor.flow(params["flowId"])
        elif template.endswith("/flow_collection") and method == "PUT" and isinstance(body, list):
            case.body = self._collection(body, data)
        elif template.endswith("/segments") and method == "POST":
            items = body if isinstance(body, list) else [body]
            for item in items:
                if isinstance(item, dict):
                    item["object_id"] = f"conformance-{uuid.uuid4()}"
                    for url in item.get("get_urls") or []:
                        if isinstance(url, dict):
                            url["url"] = LOOPBACK_HOOK + str(uuid.uuid4())
        elif template.endswith("/storage") and isinstance(body, dict) and isinstance(body.get("object_ids"), list):
            body["object_ids"] = [f"conformance-{uuid.uuid4()}" for _ in body["object_ids"]]
        elif template.startswith("/service/webhooks") and method in ("POST", "PUT") and isinstance(body, dict):
            body["url"] = LOOPBACK_HOOK + str(uuid.uuid4())

    def _collection(self, items: list[Any], data: st.DataObject) -> list[Any]:
        out = []
        for item in items:
            if isinstance(item, dict):
                item = {**item, "id": self._flow_id(data)}
            out.append(item)
        return out

    # ---------------------------------------------------------------- one operation

    def skip_reason(self, label: str) -> str | None:
        method = label.split(" ", 1)[0]
        if self.api.read_only and method not in ("GET", "HEAD"):
            return "read-only mode sends only GET and HEAD"
        if label == "POST /service" and self.ctx.config.remote:
            return "not sent to a remote server: it would rename the live service"
        return None

    def run_operation(self, label: str, examples: int = 10) -> None:
        self.ensure_seeds()
        strategy = self.strategy(label)
        api = self.api

        @self.ctx.config.settings(examples=examples)
        @given(data=st.data())
        def run(data: st.DataObject) -> None:
            case = data.draw(strategy, label="case")
            self.remap(case, data)
            kwargs = case.as_transport_kwargs(base_url=str(api.http.base_url).rstrip("/"))
            headers = {
                k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() not in ("user-agent", "connection")
            }
            body = kwargs.get("json", NO_BODY)
            response = api.request(
                kwargs["method"],
                kwargs["url"],
                params=kwargs.get("params") or None,
                body=body,
                content=kwargs.get("data") if body is NO_BODY else None,
                headers=headers,
            )
            if case.operation.path.startswith("/service/webhooks") and isinstance(body, dict):
                self.janitor.webhook(body, response)
            try:
                case.validate_response(response, checks=self.checks, headers=headers)
            except FailureGroup as exc:
                raise ContractFailure(str(exc), label, "schemathesis") from None

        run()
