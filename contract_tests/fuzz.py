"""Robustness: schemathesis generates requests for every operation of the oracle spec.

Positive mode only (schema-valid requests; TAMS documents no 400/401 on most operations, so
negative data would only measure the spec's gaps). Every response must not be a 5xx and must
conform (status code, content type, headers, body). Requests go through the suite's own ``Api``,
so the same client, credentials and openapi-core check serve in process and over HTTP.

Safety: every generated id is replaced by one the suite created (the seeded flows, their source
and objects, and from 8.0 its webhooks and, in process, its profiles) or by a fresh UUID nobody
else has; webhook URLs point at a closed loopback port; what the fuzzer creates is deleted
afterwards. Against a remote server ``POST /service`` (which renames the live service) and
``POST /service/profiles/{profileId}`` (8.2: profiles cannot be deleted) are not sent.

The version tested is the oracle spec's: seeds are valid for it, and the paged listings are the
operations of that spec that take a ``page`` parameter.
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

from contract_tests import strategies as S
from contract_tests.api import NO_BODY, Api
from contract_tests.errors import ContractFailure
from contract_tests.suite import Context, Janitor, Scope, loopback_url, page_key

Case = Any  # schemathesis.Case

SCHEMATHESIS_VERSION = schemathesis.__version__
CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Operations that create what cannot be deleted, or change the live service: never sent remotely.
NOT_REMOTE = {
    "POST /service": "it would rename the live service",
    "POST /service/profiles/{profileId}": "profiles cannot be deleted (8.2: immutable, no DELETE)",
}
_SEED_FLOWS = {
    "video": S.video_flow(),
    "multi": {"format": "urn:x-nmos:format:multi", "container": "video/mp2t"},
}
_TECHNICAL = ("format", "codec", "container", "essence_parameters")


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
        self.profiles: list[str] = []  # profiles the suite created (in process only)
        self.instance_labels: dict[str, list[str]] = {}  # object id -> labels of instances the fuzzer added
        self.page_keys: list[str] = []  # keys of listings that may refuse a foreign key (they declare 400)
        self.own_keys: dict[str, list[str]] = {}  # per listing path: keys it issued itself
        self.checks = list(CHECKS)
        self._strategies: dict[str, Any] = {}
        operations = [result.ok() for result in self.schema.get_all_operations()]
        # Listings: the operations of the spec that take `page` (7.0: flows, sources, segments, an
        # object's flows; 8.0 adds webhooks; 8.2 storage backends, delete requests and profiles).
        self.paged = {op.path for op in operations if any(p.name == "page" for p in op.query)}
        self.declares_400 = {
            f"{op.method.upper()} {op.path}" for op in operations if "400" in op.definition.raw.get("responses", {})
        }
        self.webhooks_by_id = "/service/webhooks/{webhookId}" in {op.path for op in operations}
        self.has_profiles = "/service/profiles/{profileId}" in {op.path for op in operations}

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
        self._seed_webhook()
        self._seed_profile()
        # Real page keys, for the generated `page` parameters.
        for template in sorted(self.paged):
            if "{" in template and template != "/flows/{flowId}/segments":
                continue
            path = template.replace("{flowId}", video)
            key = page_key(self.api, self.api.get(path, params={"limit": 1}, check=False))
            if not key:
                continue
            own = self.own_keys.setdefault(template, [])
            if key not in own:
                own.append(key)
            if f"GET {template}" in self.declares_400 and key not in self.page_keys:
                self.page_keys.append(key)

    def _seed_webhook(self) -> None:
        """8.x: one registration of the suite's own (disabled: nothing is sent), for the operations
        on /service/webhooks/{webhookId} to find."""
        if not self.webhooks_by_id or self.janitor.webhook_ids:
            return
        body = {"url": loopback_url(), "events": ["flows/created"], "status": "disabled"}
        self.janitor.webhook(body, self.api.post("/service/webhooks", body, check=False))

    def _seed_profile(self) -> None:
        """8.2, in process: one profile of the suite's own (profiles cannot be deleted, so never remotely)."""
        if not self.has_profiles or self.profiles or self.ctx.config.remote:
            return
        profile_id = str(uuid.uuid4())
        video = _SEED_FLOWS["video"]
        body = {"id": profile_id, "flow_metadata": {k: video[k] for k in _TECHNICAL}, "tags": self.scope.tags}
        if self.api.post(f"/service/profiles/{profile_id}", body, check=False).status_code == 201:
            self.profiles.append(profile_id)

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

    def _own_or_fresh(self, ids: list[str], data: st.DataObject, label: str, fresh: str | None = None) -> str:
        if ids and data.draw(st.booleans(), label=f"the suite's {label}?"):
            return data.draw(st.sampled_from(ids), label=label)
        return fresh or str(uuid.uuid4())

    def remap(self, case: Case, data: st.DataObject) -> None:
        """Only ids the suite made: seeded ones, or fresh ones that cannot name anybody's data."""
        params = case.path_parameters
        template, method = case.operation.path, case.operation.method.upper()
        if "flowId" in params:
            params["flowId"] = self._flow_id(data)
        if "sourceId" in params:
            sources = [s["source_id"] for s in self.seeds.values()]
            params["sourceId"] = self._own_or_fresh(sources, data, "source")
        if "objectId" in params:
            if template == "/objects/{objectId}/instances" and self.objects:
                # Adding or removing instances changes an object: only the suite's own objects.
                params["objectId"] = data.draw(st.sampled_from(self.objects), label="object")
            else:
                params["objectId"] = self._own_or_fresh(self.objects, data, "object", f"conformance-{uuid.uuid4()}")
        if "request-id" in params or "request_id" in params:
            key = "request-id" if "request-id" in params else "request_id"
            params[key] = str(uuid.uuid4())
        if "webhookId" in params:  # 8.0+
            params["webhookId"] = self._own_or_fresh(self.janitor.webhook_ids, data, "webhook")
        if "profileId" in params:  # 8.2
            if method == "POST":
                params["profileId"] = str(uuid.uuid4())  # a new profile (sent in process only)
            else:
                params["profileId"] = self._own_or_fresh(self.profiles, data, "profile")
        if method in ("GET", "HEAD") and template in self.paged:
            self._paging(case, data, template, f"{method} {template}" in self.declares_400)
        self._remap_body(case, data, template, method)

    def _paging(self, case: Case, data: st.DataObject, template: str, declares_400: bool) -> None:
        """A real page key now and then. Where the operation declares no 400 (8.x: storage backends,
        webhooks, delete requests), the spec defines no answer to a ``page`` the server did not
        issue ("Clients should read the next URL from the Link header ... or use the value of the
        returned X-Paging-NextKey header"), to a key sent with other parameters than the listing
        that issued it, nor to a ``limit`` below 1 ("Restrict the response to the specified number
        of results"): such requests are not sent there; a real key goes with the query it came from."""
        query = dict(case.query or {})
        if declares_400:
            if self.page_keys and data.draw(st.booleans(), label="a real page key?"):
                query["page"] = data.draw(st.sampled_from(self.page_keys), label="page key")
            case.query = query
            return
        own = self.own_keys.get(template, [])
        if own and data.draw(st.booleans(), label="a real page key?"):
            # With the query it was issued for (a key may name its sort and order).
            case.query = {"limit": 1, "page": data.draw(st.sampled_from(own), label="page key")}
            return
        query.pop("page", None)
        limit = query.get("limit")
        if limit is not None and not (str(limit).isdigit() and int(limit) >= 1):
            query["limit"] = data.draw(st.integers(1, 10), label="limit")
        case.query = query

    def _remap_body(self, case: Case, data: st.DataObject, template: str, method: str) -> None:
        params, body = case.path_parameters, case.body
        if template == "/flows/{flowId}" and method == "PUT" and isinstance(body, dict):
            body["id"] = params["flowId"]
            seeded = next((s for s in self.seeds.values() if s["id"] == params["flowId"]), None)
            body["source_id"] = seeded["source_id"] if seeded else str(uuid.uuid4())
            if isinstance(body.get("flow_collection"), list):
                body["flow_collection"] = self._collection(body["flow_collection"], data)
            if body.get("profile_id"):  # 8.2 flow-put.json
                body["profile_id"] = self._own_or_fresh(self.profiles, data, "profile")
            if seeded is None:
                self.janitor.flow(params["flowId"])
        elif template.endswith("/flow_collection") and method == "PUT" and isinstance(body, list):
            case.body = self._collection(body, data)
        elif template.endswith("/segments") and method == "POST":
            items = body if isinstance(body, list) else [body]
            for item in items:
                if isinstance(item, dict):
                    item["object_id"] = f"conformance-{uuid.uuid4()}"
                    if "init_object_id" in item:  # 8.2
                        item["init_object_id"] = f"conformance-{uuid.uuid4()}"
                    for url in item.get("get_urls") or []:
                        if isinstance(url, dict):
                            url["url"] = loopback_url()
                    if not item.get("get_urls"):
                        # The object is new, so it brings a URL: a store may refuse a segment nobody
                        # could read (400), and the fuzzed fields should reach the store.
                        item["get_urls"] = [{"url": loopback_url(), "label": "conformance"}]
        elif template.endswith("/storage") and isinstance(body, dict) and isinstance(body.get("object_ids"), list):
            body["object_ids"] = [f"conformance-{uuid.uuid4()}" for _ in body["object_ids"]]
        elif template.startswith("/service/webhooks") and method in ("POST", "PUT") and isinstance(body, dict):
            body["url"] = loopback_url()
            if "webhookId" in params:  # 8.0 webhook-put.json: the body names the webhook it updates
                body["id"] = params["webhookId"]
        elif template == "/objects/{objectId}/instances" and method == "POST" and isinstance(body, dict):
            if "url" in body:  # an uncontrolled instance: never anybody's real URL
                body["url"] = loopback_url()
        elif template == "/objects/{objectId}/instances" and method == "DELETE":
            known = self.instance_labels.get(params["objectId"], [])
            if known and data.draw(st.booleans(), label="a label it has?"):
                # One of storage_id or label (the spec says so in words, not in the schema).
                case.query = {"label": data.draw(st.sampled_from(known), label="label")}
        elif template == "/service/profiles/{profileId}" and method == "POST" and isinstance(body, dict):
            body["id"] = params["profileId"]

    def _created(self, case: Case, body: Any) -> None:
        """Remember what a 201 made that later cases may name (the suite's own profiles, labels)."""
        template, params = case.operation.path, case.path_parameters
        if template == "/service/profiles/{profileId}":
            self.profiles.append(params["profileId"])
        elif template == "/objects/{objectId}/instances" and isinstance(body, dict) and "label" in body:
            self.instance_labels.setdefault(params["objectId"], []).append(str(body["label"]))

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
        if label in NOT_REMOTE and self.ctx.config.remote:
            return f"not sent to a remote server: {NOT_REMOTE[label]}"
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
            if response.status_code == 201:
                self._created(case, body)
            try:
                case.validate_response(response, checks=self.checks, headers=headers)
            except FailureGroup as exc:
                raise ContractFailure(str(exc), label, "schemathesis") from None

        run()
