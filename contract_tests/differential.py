"""Stateful differential model checking: the target against the reference model.

A Hypothesis ``RuleBasedStateMachine`` sends every request to two stores side by side, the target
and the oracle (our in-memory backend, in process), and compares the answers: the same status,
and the same body once server-generated values are normalised. Object ids, storage ids and labels
are mapped between the two stores; URLs, timestamps and ``*_by`` fields are compared by shape and
by consistency (``created`` never changes) rather than by value; pages are compared as the
concatenated listing.

Requests and judgements follow the version tested (``SuiteConfig.version``, or the older minor
version the server reports: ``SuiteConfig.rules_version``): the bodies sent are valid for it, and
what it leaves to the server (or does not order) is not compared.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

from contract_tests import strategies as S
from contract_tests import timeline
from contract_tests.api import NO_BODY, Api, describe
from contract_tests.errors import ContractFailure
from contract_tests.suite import (
    Context,
    Janitor,
    Scope,
    list_all,
    loopback_url,
    next_link,
    page_key,
    wait_for_deletion,
)
from contract_tests.timeline import Range

CHECK = "differential"
VOLATILE_FLOW = ("created", "metadata_updated", "segments_updated", "created_by", "updated_by")
VOLATILE_SOURCE = ("created", "updated", "created_by", "updated_by")


def _rfc3339(value: Any) -> bool:
    if not isinstance(value, str) or "T" not in value:
        return False
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _canon_range(value: Any) -> Any:
    try:
        return Range.parse(value).canonical() if isinstance(value, str) else value
    except ValueError:
        return value


def _canon_ts(value: Any) -> Any:
    try:
        return timeline.ts_to_ns(value) if isinstance(value, str) else value
    except ValueError:
        return value


class Side:
    """One of the two stores, with its own ids for what the suite knows by logical names."""

    def __init__(self, name: str, api: Api, version: str = "7.0") -> None:
        self.name = name
        self.api = api
        self.version = version
        self.objects: dict[str, str] = {}  # logical object id -> this store's id
        self.logical: dict[str, str] = {}
        self.put_urls: dict[str, dict[str, Any]] = {}
        self.storage: dict[str, str] = {}  # this store's storage id -> logical name
        self.labels: dict[str, str] = {}  # this store's storage label -> logical name
        self.storage_ids: dict[str, str] = {}  # logical name -> this store's id
        self.label_of: dict[str, str] = {}  # logical name -> this store's label
        self.created: dict[str, str] = {}

    def obj(self, logical: str) -> str:
        return self.objects.get(logical, logical)

    def bind(self, logical: str, actual: str) -> None:
        self.objects[logical] = actual
        self.logical[actual] = logical

    # -------------------------------------------------------------- normalisation

    def stamp(self, entity: str, body: dict[str, Any], fields: tuple[str, ...], operation: str | None) -> None:
        for name in fields:
            if name.endswith("_by"):
                if name in body and not isinstance(body[name], str):
                    raise ContractFailure(f"{self.name}: {name} is not a string: {body}", operation, "consistency")
            elif name in body and not _rfc3339(body[name]):
                raise ContractFailure(f"{self.name}: {name} is not an RFC 3339 date-time: {body}", operation, "shape")
        if "created" in body:
            first = self.created.setdefault(entity, body["created"])
            if body["created"] != first:
                raise ContractFailure(
                    f"{self.name}: 'created' of {entity} changed from {first} to {body['created']}",
                    operation,
                    "consistency",
                )

    def flow(self, body: Any, operation: str | None) -> Any:
        if not isinstance(body, dict):
            return body
        self.stamp(body.get("id", "?"), body, VOLATILE_FLOW, operation)
        out = {k: v for k, v in body.items() if k not in VOLATILE_FLOW}
        if "collected_by" in out:
            out["collected_by"] = sorted(out["collected_by"])
        if "flow_collection" in out:
            out["flow_collection"] = self.collection(out["flow_collection"])
        if "timerange" in out:
            out["timerange"] = _canon_range(out["timerange"])
        return out

    def collection(self, items: Any) -> Any:
        """A ``flow_collection``: 8.2 says it is an ordered list (flow-collection.json, ADR-0056),
        so its order is compared; 7.0 defines no order, so it is compared as a set."""
        if not isinstance(items, list) or S.since(self.version, "8.2"):
            return items
        return sorted(items, key=lambda i: json.dumps(i, sort_keys=True))

    def source(self, body: Any, operation: str | None) -> Any:
        if not isinstance(body, dict):
            return body
        self.stamp("source " + str(body.get("id")), body, VOLATILE_SOURCE, operation)
        out = {k: v for k, v in body.items() if k not in VOLATILE_SOURCE}
        for key in ("source_collection", "collected_by"):
            if key in out and isinstance(out[key], list):
                out[key] = sorted(out[key], key=lambda i: json.dumps(i, sort_keys=True))
        return out

    def segment(self, body: Any) -> Any:
        if not isinstance(body, dict):
            return body
        out = dict(body)
        if "object_id" in out:
            out["object_id"] = self.logical.get(out["object_id"], out["object_id"])
        out["timerange"] = _canon_range(out.get("timerange"))
        for key in ("ts_offset", "last_duration"):
            if key in out:
                out[key] = _canon_ts(out[key])
        if "get_urls" in out:
            urls = out.pop("get_urls")
            if urls:  # an empty list and no list mean the same: no URLs
                out["get_urls"] = sorted((self.url(u) for u in urls), key=lambda u: json.dumps(u, sort_keys=True))
        return out

    def url(self, entry: Any) -> Any:
        if not isinstance(entry, dict):
            return entry
        if entry.get("controlled", True) is False:
            return {k: entry.get(k) for k in ("url", "label")} | {"controlled": False}
        out: dict[str, Any] = {"controlled": True, "presigned": bool(entry.get("presigned"))}
        if "label" in entry:
            out["label"] = self.labels.get(entry["label"], entry["label"])
        if "storage_id" in entry:
            out["storage_id"] = self.storage.get(entry["storage_id"], entry["storage_id"])
        out["verbose"] = sorted(k for k in entry if k in ("store_type", "provider", "store_product"))
        return out

    def object(self, body: Any) -> Any:
        """An object (``GET /objects/{id}``). From 8.0 (object.json) it also carries ``get_urls``
        (normalised as a segment's) and ``timerange``/``init_object``/``key_frame_count``.
        ``first_referenced_by_flow`` is optional and "may ... become unset" (object.json): it is
        compared apart, only when both stores give it."""
        if not isinstance(body, dict):
            return body
        out = self.segment({k: v for k, v in body.items() if k != "first_referenced_by_flow"})
        out["id"] = self.logical.get(out.get("id"), out.get("id"))
        out["referenced_by_flows"] = sorted(out.get("referenced_by_flows") or [])
        if isinstance(out.get("init_object"), dict):
            init = self.segment(out["init_object"])
            init["id"] = self.logical.get(init.get("id"), init.get("id"))
            out["init_object"] = init
        return out


@dataclass
class FlowState:
    body: dict[str, Any]
    kind: str
    segments: list[tuple[str, str]] = field(default_factory=list)  # (timerange, logical object id)

    @property
    def format(self) -> str:
        return self.body["format"]


@dataclass
class ObjectState:
    allocated_for: str | None
    payload: bytes | None = None
    registered: bool = False  # once registered on a segment (stays True)
    allocated: bool = False  # made by POST /flows/{id}/storage
    # An object the suite never allocated: the URL every segment on it gives (a server need not know
    # such an object, and may forget it with its last segment, so each segment brings its URL).
    url: str | None = None


def machine(ctx: Context, target: Api, oracle: Api) -> type[RuleBasedStateMachine]:
    """The state machine class for one target (Hypothesis machines cannot take fixtures)."""
    config = ctx.config
    version = config.rules_version

    class Differential(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.scope = Scope(config.run_id)
            self.t = Side("target", target, version)
            self.o = Side("oracle", oracle, version)
            self.janitors = (Janitor(target, config.delete_wait_s), Janitor(oracle, config.delete_wait_s))
            self.flows: dict[str, FlowState] = {}
            self.sources: dict[str, str] = {}  # source id -> format
            self.objects: dict[str, ObjectState] = {}
            self.counter = 0
            self.page_keys: list[str] = []  # the target's X-Paging-NextKey values seen so far

        def teardown(self) -> None:
            for janitor in self.janitors:
                janitor.cleanup()

        # ---------------------------------------------------------- plumbing

        def pair(self, send: Callable[[Side], httpx.Response]) -> tuple[httpx.Response, httpx.Response]:
            got = self._settle(self.t, send(self.t))
            want = self._settle(self.o, send(self.o))
            return got, want

        def _settle(self, side: Side, response: httpx.Response) -> httpx.Response:
            """A 202 deletion is waited for and then counts as the 204 it became."""
            if response.status_code == 202 and response.request.method == "DELETE":
                wait_for_deletion(side.api, response, config.delete_wait_s)
                return httpx.Response(204, request=response.request)
            return response

        def fail(self, message: str, got: httpx.Response | None = None, check: str = CHECK) -> None:
            operation = target.operation_of(got) if got is not None else None
            raise ContractFailure(message, operation, check)

        def compare(
            self,
            got: httpx.Response,
            want: httpx.Response,
            normalise: Callable[[Side, Any, str | None], Any] | None = None,
        ) -> Any:
            """Same status; for a 2xx with a body, the same body once normalised. Returns the oracle's body."""
            if got.status_code != want.status_code:
                self.fail(
                    f"status differs from the reference:\n  target: {describe(got)}\n  oracle: {describe(want)}", got
                )
            if not 200 <= want.status_code < 300 or got.request.method == "HEAD" or not want.content:
                return None
            operation = target.operation_of(got)
            try:
                got_body = got.json()
            except ValueError:
                self.fail(f"body is not JSON: {describe(got)}", got, "shape")
            want_body = want.json()
            if normalise is not None:
                got_n, want_n = normalise(self.t, got_body, operation), normalise(self.o, want_body, operation)
            else:
                got_n, want_n = got_body, want_body
            if got_n != want_n:
                self.fail(
                    "body differs from the reference (normalised):\n"
                    f"  target: {json.dumps(got_n, sort_keys=True)[:1500]}\n"
                    f"  oracle: {json.dumps(want_n, sort_keys=True)[:1500]}\n"
                    f"  request: {got.request.method} {got.request.url}",
                    got,
                )
            return want_body

        def new_logical(self) -> str:
            self.counter += 1
            return f"obj-{self.counter}"

        def refresh_segments(self, flow_id: str) -> None:
            state = self.flows.get(flow_id)
            if state is None:
                return
            listing = list_all(oracle, f"/flows/{flow_id}/segments", [("accept_get_urls", "")], CHECK)
            state.segments = [
                (s["timerange"], self.o.logical.get(s["object_id"], s["object_id"])) for s in listing.items
            ]
            for _, logical in state.segments:
                record = self.objects.setdefault(logical, ObjectState(None))
                record.registered = True
                record.allocated_for = None

        def draw_flow(self, data: st.DataObject, label: str = "flow") -> str:
            return data.draw(st.sampled_from(list(self.flows)), label=label)

        def any_flow(self, data: st.DataObject, with_segments: bool = False) -> str:
            """Mostly a known flow (one with segments first, if asked); sometimes one that does not exist."""
            if self.flows and data.draw(st.sampled_from([True] * 9 + [False]), label="known flow?"):
                full = [f for f, state in self.flows.items() if state.segments]
                if with_segments and full and data.draw(st.sampled_from([True] * 3 + [False]), label="with segments?"):
                    return data.draw(st.sampled_from(full), label="flow")
                return self.draw_flow(data)
            return str(uuid.uuid4())

        def scoped_tags(self, tags: dict[str, str] | None) -> dict[str, str]:
            return {**(tags or {}), **self.scope.tags}

        # ---------------------------------------------------------- setup

        @initialize()
        def storage_backends(self) -> None:
            """Learn both stores' storage backends, to map their ids and labels onto logical names.

            8.2 pages ``/service/storage-backends`` (``limit``/``page``, Link): every page is read.
            """
            got, want = self.pair(lambda s: s.api.get("/service/storage-backends"))
            if got.status_code != 200 or want.status_code != 200:
                self.compare(got, want)
                return
            for side, response, side_version in ((self.t, got, version), (self.o, want, config.version)):
                if S.since(side_version, "8.2"):
                    backends = list_all(side.api, "/service/storage-backends", [], CHECK, first=response).items
                else:
                    backends = response.json()
                ordered = sorted(backends, key=lambda b: not b.get("default_storage", False))
                for i, backend in enumerate(ordered):
                    name = "default-storage" if i == 0 and backend.get("default_storage") else f"storage-{i}"
                    side.storage[backend["id"]] = name
                    side.storage_ids[name] = backend["id"]
                    if backend.get("label"):
                        side.labels[backend["label"]] = name
                        side.label_of[name] = backend["label"]

        # ---------------------------------------------------------- flows

        @initialize(data=st.data())
        def first_flows(self, data: st.DataObject) -> None:
            """Start with flows that can hold segments, so every rule has something to work on."""
            for _ in range(data.draw(st.integers(1, 2), label="first flows")):
                self._create_flow(data, container=True)

        @rule(data=st.data())
        def create_flow(self, data: st.DataObject) -> None:
            self._create_flow(data, container=None)

        def _create_flow(self, data: st.DataObject, container: bool | None) -> None:
            kind = data.draw(st.sampled_from(S.KINDS), label="kind")
            body = data.draw(S.flows(kind, container=container, version=version), label="flow")
            same = [sid for sid, fmt in self.sources.items() if fmt == S.FORMATS[kind]]
            source_id = (
                data.draw(st.sampled_from(same), label="existing source")
                if same and data.draw(st.booleans(), label="share source")
                else str(uuid.uuid4())
            )
            flow_id = str(uuid.uuid4())
            body = {**body, "id": flow_id, "source_id": source_id, "tags": self.scoped_tags(body.get("tags"))}
            if kind == "multi" and self.flows and data.draw(st.booleans(), label="collection"):
                members = data.draw(st.lists(st.sampled_from(list(self.flows)), min_size=1, max_size=3, unique=True))
                body["flow_collection"] = [self._member(data, m, f"role{i}") for i, m in enumerate(members)]
            for janitor in self.janitors:
                janitor.flow(flow_id)
            got, want = self.pair(lambda s: s.api.put(f"/flows/{flow_id}", body))
            self.compare(got, want, Side.flow)
            if want.status_code == 201:
                self.flows[flow_id] = FlowState(body, kind)
                if source_id not in self.sources:
                    self.sources[source_id] = body["format"]
                    for name, value in self.scope.tags.items():
                        got, want = self.pair(lambda s, n=name, v=value: s.api.put(f"/sources/{source_id}/tags/{n}", v))
                        self.compare(got, want)

        def _member(self, data: st.DataObject, flow_id: str, role: str) -> dict[str, Any]:
            """A collection item: ``role`` is required in 7.0 and optional from 8.2 (collection-item.json)."""
            if S.since(version, "8.2") and data.draw(st.booleans(), label="without role?"):
                return {"id": flow_id}
            return {"id": flow_id, "role": role}

        @precondition(lambda self: self.flows)
        @rule(data=st.data())
        def replace_flow(self, data: st.DataObject) -> None:
            flow_id = self.draw_flow(data)
            state = self.flows[flow_id]
            body = data.draw(S.flows(state.kind, version=version), label="replacement")
            body = {
                **body,
                "id": flow_id,
                "source_id": state.body["source_id"],
                "tags": self.scoped_tags(body.get("tags")),
            }
            if "flow_collection" in state.body and data.draw(st.booleans(), label="keep collection"):
                body["flow_collection"] = [i for i in state.body["flow_collection"] if i["id"] in self.flows]
            if data.draw(st.sampled_from([False] * 5 + [True]), label="lock in body?"):
                body["read_only"] = True
            got, want = self.pair(lambda s: s.api.put(f"/flows/{flow_id}", body))
            self.compare(got, want, Side.flow)
            if want.status_code in (201, 204):
                state.body = body

        @precondition(lambda self: self.flows)
        @rule(data=st.data())
        def get_flow(self, data: st.DataObject) -> None:
            flow_id = self.any_flow(data)
            state = self.flows.get(flow_id)
            points = S.query_timeranges(_points(state.segments) if state else [])
            params: list[tuple[str, str]] = []
            if data.draw(st.booleans(), label="include_timerange"):
                params.append(("include_timerange", "true"))
            if data.draw(st.booleans(), label="timerange?"):
                params.append(("timerange", data.draw(points, label="timerange")))
            method = data.draw(st.sampled_from(["GET", "GET", "HEAD"]), label="method")
            got, want = self.pair(lambda s: s.api.request(method, f"/flows/{flow_id}", params=params))
            self.compare(got, want, Side.flow)

        @precondition(lambda self: self.flows)
        @rule(data=st.data())
        def flow_property(self, data: st.DataObject) -> None:
            flow_id = self.any_flow(data)
            state = self.flows.get(flow_id)
            name = data.draw(
                st.sampled_from(
                    ["label", "description", "max_bit_rate", "avg_bit_rate", "flow_collection", "read_only"]
                ),
                label="property",
            )
            action = data.draw(st.sampled_from(["GET", "HEAD", "PUT", "DELETE"]), label="action")
            if name == "read_only" and action == "DELETE":
                action = "GET"  # read_only has no DELETE
            if name == "label" and action == "DELETE" and self._locked(flow_id):
                action = "GET"  # the spec lists no 403 for DELETE label: not asked of a read-only flow
            path = f"/flows/{flow_id}/{name}"
            body: Any = NO_BODY
            if action == "PUT":
                body = data.draw(self._property_values(name, flow_id), label="value")
            got, want = self.pair(lambda s: s.api.request(action, path, body=body))
            if name == "flow_collection":
                self.compare(got, want, lambda side, items, op: side.collection(items))
            else:
                self.compare(got, want)
            if state is not None and want.status_code == 204 and name in ("flow_collection", "read_only"):
                self._reload(flow_id)

        def _property_values(self, name: str, flow_id: str) -> st.SearchStrategy[Any]:
            if name in ("label", "description"):
                return S.labels
            if name in ("max_bit_rate", "avg_bit_rate"):
                return S.bit_rates
            if name == "read_only":
                return st.booleans()
            others = [f for f in self.flows if f != flow_id] or [str(uuid.uuid4())]
            return S.collection_items(others, version)

        def _locked(self, flow_id: str) -> bool:
            response = oracle.get(f"/flows/{flow_id}/read_only")
            return response.status_code == 200 and response.json() is True

        def _reload(self, flow_id: str) -> None:
            response = oracle.get(f"/flows/{flow_id}")
            if response.status_code == 200 and flow_id in self.flows:
                body = {k: v for k, v in response.json().items() if k not in VOLATILE_FLOW and k != "collected_by"}
                self.flows[flow_id].body = body

        @precondition(lambda self: self.flows)
        @rule(data=st.data())
        def flow_tags(self, data: st.DataObject) -> None:
            flow_id = self.any_flow(data)
            name = data.draw(S.tag_names, label="tag")
            action = data.draw(st.sampled_from(["GET all", "GET", "HEAD", "PUT", "DELETE"]), label="action")
            base = f"/flows/{flow_id}/tags"
            if action == "GET all":
                got, want = self.pair(lambda s: s.api.get(base))
            elif action == "PUT":
                value = data.draw(S.tag_values_for(version, single=True), label="value")
                got, want = self.pair(lambda s: s.api.put(f"{base}/{name}", value))
            else:
                got, want = self.pair(lambda s: s.api.request(action, f"{base}/{name}"))
            self.compare(got, want)

        @precondition(lambda self: self.flows)
        @rule(data=st.data(), value=st.booleans())
        def set_read_only(self, data: st.DataObject, value: bool) -> None:
            flow_id = self.draw_flow(data)
            got, want = self.pair(lambda s: s.api.put(f"/flows/{flow_id}/read_only", value))
            self.compare(got, want)
            got, want = self.pair(lambda s: s.api.get(f"/flows/{flow_id}/read_only"))
            self.compare(got, want)

        @precondition(lambda self: self.flows)
        @rule(data=st.data())
        def delete_flow(self, data: st.DataObject) -> None:
            flow_id = self.any_flow(data)
            state = self.flows.get(flow_id)
            got, want = self.pair(lambda s: s.api.delete(f"/flows/{flow_id}"))
            self.compare(got, want)
            if want.status_code == 204 and state is not None:
                del self.flows[flow_id]
                for other in self.flows.values():
                    if "flow_collection" in other.body:
                        other.body["flow_collection"] = [i for i in other.body["flow_collection"] if i["id"] != flow_id]
                for record in self.objects.values():
                    if record.allocated_for == flow_id:
                        record.allocated_for = None
                source_id = state.body["source_id"]
                got, want = self.pair(lambda s: s.api.get(f"/sources/{source_id}"))
                self.compare(got, want, Side.source)
                if want.status_code == 404:
                    self.sources.pop(source_id, None)

        # ---------------------------------------------------------- sources

        @precondition(lambda self: self.sources)
        @rule(data=st.data())
        def source_ops(self, data: st.DataObject) -> None:
            source_id = data.draw(st.sampled_from(list(self.sources)), label="source")
            action = data.draw(
                st.sampled_from(
                    ["GET", "HEAD", "GET tags", "GET tag", "PUT tag", "DELETE tag"]
                    + [f"{m} {p}" for m in ("GET", "PUT", "DELETE", "HEAD") for p in ("label", "description")]
                ),
                label="action",
            )
            base = f"/sources/{source_id}"
            name = data.draw(S.tag_names, label="tag")
            if action in ("GET", "HEAD"):
                got, want = self.pair(lambda s: s.api.request(action, base))
                self.compare(got, want, Side.source)
                return
            if action == "GET tags":
                got, want = self.pair(lambda s: s.api.get(f"{base}/tags"))
            elif action.endswith(" tag"):
                method = action.split()[0]
                body = data.draw(S.tag_values_for(version, single=True), label="value") if method == "PUT" else NO_BODY
                got, want = self.pair(lambda s: s.api.request(method, f"{base}/tags/{name}", body=body))
            else:
                method, prop = action.split()
                body = data.draw(S.labels, label="value") if method == "PUT" else NO_BODY
                got, want = self.pair(lambda s: s.api.request(method, f"{base}/{prop}", body=body))
            self.compare(got, want)

        # ---------------------------------------------------------- listings

        @rule(data=st.data())
        def list_flows(self, data: st.DataObject) -> None:
            filters = data.draw(self._flow_filters(), label="filters")
            self._compare_listing(data, "/flows", self.scope.filters + filters, Side.flow)

        @rule(data=st.data())
        def list_sources(self, data: st.DataObject) -> None:
            one = list(self.sources)
            choices: list[list[tuple[str, str]]] = [[], [("format", S.VIDEO)], [("tag_exists.genre", "true")]]
            if one:
                label = oracle.get(f"/sources/{one[0]}/label")
                if label.status_code == 200:
                    choices.append([("label", label.json())])
            choices.append([("tag.genre", data.draw(_tag_filter_values(version), label="genre"))])
            filters = data.draw(st.sampled_from(choices), label="filters")
            self._compare_listing(data, "/sources", self.scope.filters + filters, Side.source)

        def _flow_filters(self) -> st.SearchStrategy[list[tuple[str, str]]]:
            known = list(self.flows.values())
            values: dict[str, st.SearchStrategy[str]] = {
                "format": st.sampled_from(sorted(S.FORMATS.values())),
                "codec": st.sampled_from(sorted({f.body.get("codec", "video/h264") for f in known} | {"video/h264"})),
                "label": st.sampled_from(sorted({f.body.get("label", "x") for f in known} | {"x"})),
                "frame_width": st.sampled_from(["640", "1280", "1920"]),
                "frame_height": st.sampled_from(["360", "1080"]),
                "tag.genre": _tag_filter_values(version),
                "tag_exists.genre": st.sampled_from(["true", "false"]),
                "timerange": S.query_timeranges(_points([s for f in known for s in f.segments])),
            }
            if known:
                values["source_id"] = st.sampled_from(list(dict.fromkeys(f.body["source_id"] for f in known)))
            return st.lists(
                st.sampled_from(sorted(values)).flatmap(lambda n: values[n].map(lambda v, n=n: (n, v))),
                max_size=2,
                unique_by=lambda p: p[0],
            )

        def _compare_listing(
            self, data: st.DataObject, path: str, params: list[tuple[str, str]], normalise: Callable
        ) -> None:
            limit = data.draw(st.sampled_from([None, 1, 2, 3]), label="limit")
            got = self._listing(self.t, path, params, limit)
            want = self._listing(self.o, path, params, None)
            if isinstance(got, httpx.Response) or isinstance(want, httpx.Response):
                g = got if isinstance(got, httpx.Response) else got.pages[0]
                w = want if isinstance(want, httpx.Response) else want.pages[0]
                self.compare(g, w)
                return
            operation = target.operation_of(got.pages[0])
            got_ids = [item.get("id") for item in got.items]
            if len(got_ids) != len(set(got_ids)):
                self.fail(f"paged listing repeats items: {got_ids}", got.pages[0], "paging")
            got_n = {i["id"]: normalise(self.t, i, operation) for i in got.items}
            want_n = {i["id"]: normalise(self.o, i, operation) for i in want.items}
            if got_n != want_n:
                self.fail(
                    f"{path} with {params} (limit={limit}) differs from the reference:\n"
                    f"  target: {json.dumps(got_n, sort_keys=True)[:1500]}\n"
                    f"  oracle: {json.dumps(want_n, sort_keys=True)[:1500]}",
                    got.pages[0],
                )

        def _listing(self, side: Side, path: str, params: list[tuple[str, str]], limit: int | None) -> Any:
            first = side.api.get(path, params=params + ([("limit", str(limit))] if limit else []))
            if first.status_code != 200:
                return first
            listing = list_all(side.api, path, params, "paging", limit=limit, first=first)
            if side is self.t:
                self._keep_page_keys(listing.pages)
            return listing

        def _keep_page_keys(self, pages: list[httpx.Response]) -> None:
            for page in pages:
                key = page_key(target, page)
                if key and key not in self.page_keys:
                    self.page_keys.append(key)

        @precondition(lambda self: self.page_keys)
        @rule(data=st.data())
        def page_key_elsewhere(self, data: st.DataObject) -> None:
            """A page key from one listing given to another (a flow without segments, an unknown
            flow, other filters): an opaque key may be refused (400), never a server error."""
            key = data.draw(st.sampled_from(self.page_keys), label="page key")
            where = data.draw(st.sampled_from(["segments", "flows", "sources"]), label="listing")
            self._page_key_elsewhere(data, key, where)

        def _page_key_elsewhere(self, data: st.DataObject, key: str, where: str) -> None:
            limit = data.draw(st.sampled_from([None, 1, 3]), label="limit")
            params = [("page", key)] + ([("limit", str(limit))] if limit else [])
            if where == "segments":
                empty = [f for f, state in self.flows.items() if not state.segments]
                kind = data.draw(st.sampled_from(["unknown", "without segments", "any"]), label="flow kind")
                if kind == "unknown" or not self.flows:
                    flow_id = str(uuid.uuid4())
                elif kind == "without segments" and empty:
                    flow_id = data.draw(st.sampled_from(empty), label="flow")
                else:
                    flow_id = self.draw_flow(data)
                params.append(("reverse_order", data.draw(st.sampled_from(["false", "true"]), label="reverse")))
                response = target.get(f"/flows/{flow_id}/segments", params=params)
            else:
                response = target.get(f"/{where}", params=[*self.scope.filters, *params])
            target.expect(response, [200, 400], "paging", "a page key from another listing")

        # ---------------------------------------------------------- storage and media

        @precondition(lambda self: self.flows)
        @rule(data=st.data())
        def allocate(self, data: st.DataObject) -> None:
            flow_id = self.any_flow(data)
            form = data.draw(
                st.sampled_from(["limit", "limit", "none", "empty", "object_ids", "both", "taken"]), label="form"
            )
            ids: list[str] = []
            body: Any = NO_BODY
            if form == "empty":
                body = {}
            elif form == "limit":
                body = {"limit": data.draw(st.integers(1, 3), label="limit")}
            elif form in ("object_ids", "both"):
                ids = [
                    data.draw(st.sampled_from(["conformance-", "conformance/"]), label="prefix") + str(uuid.uuid4())
                    for _ in range(data.draw(st.integers(1, 2), label="count"))
                ]
                body = {"object_ids": ids} | ({"limit": 1} if form == "both" else {})
            elif form == "taken":
                if not self.objects:
                    return
                taken = data.draw(st.sampled_from(list(self.objects)), label="taken")
            if form == "taken":
                got, want = self.pair(lambda s: s.api.post(f"/flows/{flow_id}/storage", {"object_ids": [s.obj(taken)]}))
            else:
                got, want = self.pair(lambda s: s.api.post(f"/flows/{flow_id}/storage", body))
            self.compare(got, want, _storage)
            if want.status_code != 201:
                return
            got_objects = got.json().get("media_objects", [])
            want_objects = want.json().get("media_objects", [])
            # How many: the ids given, up to ``limit``, or the server's own default (flow-storage-post:
            # services "may specify their own default and maximum for the limit").
            asked = body.get("limit") if isinstance(body, dict) else None
            if ids and len(got_objects) != len(ids):
                self.fail(f"allocated {len(got_objects)} objects for the {len(ids)} object_ids given", got)
            elif not ids and not 1 <= len(got_objects) <= (asked or len(got_objects) or 1):
                self.fail(f"allocated {len(got_objects)} objects with limit={asked}", got)
            for i, (g, w) in enumerate(zip(got_objects, want_objects, strict=False)):
                if ids and (g.get("object_id"), w.get("object_id")) != (ids[i], ids[i]):
                    self.fail(f"object_ids {ids} were not used as given: {describe(got)}", got)
                logical = ids[i] if ids else self.new_logical()
                self.t.bind(logical, g["object_id"])
                self.o.bind(logical, w["object_id"])
                self.t.put_urls[logical] = g["put_url"]
                self.o.put_urls[logical] = w["put_url"]
                self.objects[logical] = ObjectState(flow_id, allocated=True)

        @precondition(lambda self: any(o.payload is None and o.allocated_for for o in self.objects.values()))
        @rule(data=st.data())
        def upload(self, data: st.DataObject) -> None:
            pending = [k for k, o in self.objects.items() if o.payload is None and k in self.t.put_urls]
            if not pending:
                return
            logical = data.draw(st.sampled_from(pending), label="object")
            payload = data.draw(S.payloads, label="payload")
            for side in (self.t, self.o):
                put_url = side.put_urls[logical]
                headers = dict(put_url.get("headers") or {})
                if put_url.get("content-type"):
                    headers["Content-Type"] = put_url["content-type"]
                response = side.api.media("PUT", put_url["url"], content=payload, headers=headers)
                if not 200 <= response.status_code < 300:
                    raise ContractFailure(f"{side.name}: upload failed: {describe(response)}", "PUT put_url", "media")
            self.objects[logical].payload = payload

        @precondition(lambda self: self.flows)
        @rule(data=st.data())
        def add_segments(self, data: st.DataObject) -> None:
            flow_id = self.any_flow(data)
            state = self.flows.get(flow_id)
            existing = [Range.parse(r) for r, _ in (state.segments if state else [])]
            count = data.draw(st.integers(1, 4), label="count")
            bodies = []
            for _ in range(count):
                timerange = data.draw(S.relative_timeranges(existing), label="timerange")
                existing.append(Range.parse(timerange))
                body: dict[str, Any] = {"object_id": self._segment_object(data, flow_id), "timerange": timerange}
                extras = data.draw(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "ts_offset": st.sampled_from(["0:0", "1:500000000", "10:0"]),
                            "last_duration": st.sampled_from(["0:40000000", "1:0"]),
                            "sample_offset": st.integers(0, 50),
                            "sample_count": st.integers(1, 50),
                            "key_frame_count": st.integers(0, 5),
                            "get_urls": st.builds(lambda: [{"url": loopback_url(), "label": "external"}]),
                        },
                    ),
                    label="fields",
                )
                own = self.objects[body["object_id"]].url
                if own is not None:
                    extras["get_urls"] = [{"url": own, "label": "external"}]
                bodies.append({**body, **extras})
            single = count == 1 and data.draw(st.booleans(), label="single object body")

            def send(side: Side) -> httpx.Response:
                translated = [{**b, "object_id": side.obj(b["object_id"])} for b in bodies]
                return side.api.post(f"/flows/{flow_id}/segments", translated[0] if single else translated)

            got, want = self.pair(send)
            self.compare(got, want, _failures)
            if want.status_code in (200, 201):
                self.refresh_segments(flow_id)
                self._compare_segments(flow_id, data, filters=False)

        def _segment_object(self, data: st.DataObject, flow_id: str) -> str:
            mine = [k for k, o in self.objects.items() if o.allocated_for == flow_id]
            registered = [k for k, o in self.objects.items() if o.registered]
            foreign = [k for k, o in self.objects.items() if o.allocated_for not in (None, flow_id)]
            choices = [(name, pool) for name, pool in (("mine", mine), ("reuse", registered)) if pool]
            choices.append(("external", [None]))
            if foreign:
                choices.append(("foreign", foreign))
            _, pool = data.draw(st.sampled_from(choices), label="object kind")
            chosen = data.draw(st.sampled_from(pool), label="object")
            if chosen is None:
                chosen = "external-" + str(uuid.uuid4())
                self.objects[chosen] = ObjectState(None, url=loopback_url())
            return chosen

        @rule(data=st.data())
        def list_segments(self, data: st.DataObject) -> None:
            self._compare_segments(self.any_flow(data, with_segments=True), data, filters=True)

        def _compare_segments(self, flow_id: str, data: st.DataObject, filters: bool) -> None:
            """List a flow's segments on both sides (the target paged) and compare them in order.

            Every segment mutation ends with one of these; the ``list_segments`` rule adds filters.
            """
            state = self.flows.get(flow_id)
            segments = state.segments if state else []
            params: list[tuple[str, str]] = []
            if filters and data.draw(st.booleans(), label="timerange?"):
                params.append(("timerange", data.draw(S.query_timeranges(_points(segments)), label="timerange")))
            if filters and segments and data.draw(st.sampled_from([False] * 3 + [True]), label="object filter?"):
                params.append(("object_id", data.draw(st.sampled_from([o for _, o in segments]), label="object_id")))
            reverse = data.draw(st.booleans(), label="reverse")
            if reverse:
                params.append(("reverse_order", "true"))
            accept = data.draw(
                st.sampled_from([None, "", "default-storage", "external", "default-storage,external", "other"]),
                label="accept_get_urls",
            )
            storage_filter = None
            if filters:
                for flag in ("verbose_storage", "presigned"):
                    choice = data.draw(st.sampled_from([None, "true", "false"]), label=flag)
                    if choice is not None:
                        params.append((flag, choice))
                storage_filter = data.draw(st.sampled_from([None, "", "default-storage"]), label="accept_storage_ids")
            limit = data.draw(st.sampled_from([1, None, 2, 5]), label="limit")

            def side_params(side: Side) -> list[tuple[str, str]]:
                out = list(params)
                if accept is not None:
                    names = [side.label_of.get(n, n) for n in accept.split(",")] if accept else []
                    out.append(("accept_get_urls", ",".join(names)))
                if storage_filter is not None:
                    out.append(
                        ("accept_storage_ids", side.storage_ids.get(storage_filter, "") if storage_filter else "")
                    )
                return out

            path = f"/flows/{flow_id}/segments"
            got = list_all(self.t.api, path, side_params(self.t), "paging", limit=limit, reverse=reverse)
            self._keep_page_keys(got.pages)
            key = page_key(self.t.api, got.pages[0]) if len(got.pages) > 1 else None
            if key and data.draw(st.booleans(), label="page key elsewhere?"):
                self._page_key_elsewhere(data, key, "segments")
            want = list_all(self.o.api, path, side_params(self.o), CHECK, reverse=reverse)
            got_n = [self.t.segment(s) for s in got.items]
            want_n = [self.o.segment(s) for s in want.items]
            if got_n != want_n:
                self.fail(
                    f"segments of {flow_id} with {side_params(self.t)} (limit={limit}) differ from the reference:\n"
                    f"  target: {json.dumps(got_n, sort_keys=True)[:2000]}\n"
                    f"  oracle: {json.dumps(want_n, sort_keys=True)[:2000]}",
                    got.pages[0],
                )
            head = self.t.api.head(str(got.pages[0].request.url))
            if head.status_code != 200:
                self.fail(f"HEAD of a segment listing: {describe(head)}", head)

        @precondition(lambda self: self.flows)
        @rule(data=st.data())
        def delete_segments(self, data: st.DataObject) -> None:
            flow_id = self.any_flow(data, with_segments=True)
            state = self.flows.get(flow_id)
            segments = state.segments if state else []
            params: list[tuple[str, str]] = []
            if data.draw(st.sampled_from([True] * 3 + [False]), label="timerange?"):
                params.append(("timerange", data.draw(S.query_timeranges(_points(segments)), label="timerange")))
            logical = None
            if segments and data.draw(st.sampled_from([False] * 3 + [True]), label="object?"):
                logical = data.draw(st.sampled_from([o for _, o in segments]), label="object_id")

            def send(side: Side) -> httpx.Response:
                extra = [("object_id", side.obj(logical))] if logical else []
                return side.api.delete(f"/flows/{flow_id}/segments", params=params + extra)

            got, want = self.pair(send)
            self.compare(got, want)
            if want.status_code == 204:
                self.refresh_segments(flow_id)
                self._compare_segments(flow_id, data, filters=False)

        @precondition(lambda self: self.objects)
        @rule(data=st.data())
        def get_object(self, data: st.DataObject) -> None:
            logical = data.draw(st.sampled_from(list(self.objects)), label="object")
            method = data.draw(st.sampled_from(["GET", "GET", "HEAD"]), label="method")
            limit = data.draw(st.sampled_from([None, 1]), label="limit")
            params = [("limit", str(limit))] if limit else []
            got, want = self.pair(lambda s: s.api.request(method, f"/objects/{s.obj(logical)}", params=params))
            if self._either_exists(logical) and {got.status_code, want.status_code} == {200, 404}:
                if got.status_code == 200 and method == "GET":
                    body = self.t.object(self._all_references(self.t, got).json())
                    if body.get("id") != logical or body.get("referenced_by_flows"):
                        self.fail(f"an object no segment refers to: {describe(got)}", got)
                return
            if method == "HEAD" or got.status_code != 200 or want.status_code != 200:
                self.compare(got, want)
                return
            got_all = self._all_references(self.t, got)
            want_all = self._all_references(self.o, want)
            self.compare(got_all, want_all, lambda side, body, op: side.object(body))
            first = got_all.json().get("first_referenced_by_flow"), want_all.json().get("first_referenced_by_flow")
            if None not in first and first[0] != first[1]:
                self.fail(f"first_referenced_by_flow is {first[0]}, the reference says {first[1]}", got)

        def _either_exists(self, logical: str) -> bool:
            """Whether an object no segment refers to now may be found (200, no references) or not (404).

            Allocated and never registered: 8.1+ MUST answer 404 (GET /objects/{objectId}, 404),
            7.0 and 8.0 do not say. Registered once and no longer referenced: the store may keep or
            remove it (8.2: Objects are deleted only when unreferenced, not when they become so).
            """
            if any(logical == o for state in self.flows.values() for _, o in state.segments):
                return False
            record = self.objects[logical]
            if record.registered:
                return True
            return record.allocated and not S.since(version, "8.1")

        def _all_references(self, side: Side, response: httpx.Response) -> httpx.Response:
            """The object with ``referenced_by_flows`` gathered across every page."""
            body = response.json()
            flows = list(body.get("referenced_by_flows") or [])
            current = response
            for _ in range(100):
                url = next_link(side.api, current, "paging")
                if url is None:
                    break
                current = side.api.get(url)
                side.api.expect(current, [200], "paging")
                flows += current.json().get("referenced_by_flows") or []
            body["referenced_by_flows"] = flows
            return httpx.Response(200, json=body, request=response.request)

        @precondition(lambda self: any(o.payload is not None and o.registered for o in self.objects.values()))
        @rule(data=st.data())
        def download(self, data: st.DataObject) -> None:
            holders = [
                (flow_id, logical)
                for flow_id, state in self.flows.items()
                for _, logical in state.segments
                if self.objects.get(logical) and self.objects[logical].payload is not None
            ]
            if not holders:
                return
            flow_id, logical = data.draw(st.sampled_from(holders), label="segment")
            payload = self.objects[logical].payload
            # verbose_storage shows `controlled`: the client's own (uncontrolled) URLs are not fetched.
            params = [("object_id", self.t.obj(logical)), ("verbose_storage", "true")]
            listing = list_all(target, f"/flows/{flow_id}/segments", params, "media")
            urls = [u for s in listing.items for u in s.get("get_urls") or [] if u.get("controlled", True)]
            if not urls:
                self.fail(f"no controlled get_urls for an uploaded object: {listing.items}", listing.pages[0], "media")
            for entry in urls:
                response = target.media("GET", entry["url"])
                if response.status_code != 200 or response.content != payload:
                    raise ContractFailure(
                        f"downloaded bytes differ from the uploaded ones ({len(response.content)} vs {len(payload)}"
                        f" bytes, status {response.status_code}) at {entry['url']}",
                        "GET /flows/{flowId}/segments",
                        "media",
                    )

    Differential.__name__ = f"Differential[{target.name}]"
    return Differential


def _points(segments: list[tuple[str, str]] | list[Any]) -> list[int]:
    out: list[int] = []
    for item in segments:
        text = item[0] if isinstance(item, tuple) else item
        r = Range.parse(text)
        out += [x for x in (r.start, r.end) if x is not None]
    return out


def _storage(side: Side, body: Any, operation: str | None) -> Any:
    """Allocated objects by shape: that each has a ``put_url`` with a ``url`` (how many is checked
    by the rule, which knows what was asked).

    The upload request itself (``content-type``, headers, presigned or not) is the server's to
    choose (http-request.json: the content type "which must be used", not a given value; 8.2
    flow-storage-post.json ``presigned``: "services may choose their own default"), so it is not
    compared with the reference's.
    """
    if not isinstance(body, dict) or not isinstance(body.get("media_objects"), list):
        return body
    objects = body["media_objects"]
    return {
        "put_url": sorted(
            {
                json.dumps({"url": isinstance(o.get("put_url"), dict) and "url" in o["put_url"]})
                for o in objects
                if isinstance(o, dict)
            }
        ),
    }


def _tag_filter_values(version: str) -> st.SearchStrategy[str]:
    """``tag.{name}`` query values compared with the reference. From 8.0 an empty value is left
    out: it names no value of the comma-separated list, and what it selects is not said."""
    values = S.tag_filter_values(version)
    return values if not S.since(version, "8.0") else values.filter(bool)


def _failures(side: Side, body: Any, operation: str | None) -> Any:
    if not isinstance(body, dict) or not isinstance(body.get("failed_segments"), list):
        return body
    entries = []
    for f in body["failed_segments"]:
        if not isinstance(f, dict):
            entries.append(f)
            continue
        entries.append(
            {
                "object_id": side.logical.get(f.get("object_id"), f.get("object_id")),
                "timerange": _canon_range(f.get("timerange")),
            }
        )
    return sorted(entries, key=lambda e: json.dumps(e, sort_keys=True))


def run(ctx: Context, examples: int = 15, steps: int = 25) -> None:
    """Run the differential state machine of ``ctx.api`` against a fresh oracle."""
    if ctx.oracle_factory is None:
        raise RuntimeError("the differential check needs the in-process reference (tams-server installed)")
    oracle = ctx.oracle_factory()
    run_state_machine_as_test(machine(ctx, ctx.api, oracle), settings=ctx.config.settings(examples, steps))
