"""Every common operation once, by the book: a valid request, the success status the spec gives,
and the value written read back.

Fuzzing only shows that an operation answers in shape, and the other checks reach some operations
only by chance (a random tag name is rarely one that exists); this walk makes sure each operation
of the spec is exercised successfully at least once, so that its verdict says something. A step
that fails does not stop the walk: the others still run, and every failure is reported.

8.x-only operations (webhooks by id, profiles, object instances) are walked by ``checks_v8``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from contract_tests import strategies as S
from contract_tests.api import Api, describe
from contract_tests.errors import ContractFailure
from contract_tests.suite import (
    Context,
    Janitor,
    Scope,
    list_all,
    loopback_url,
    refused_receiver,
    wait_for_deletion,
)

CHECK = "walkthrough"
CITE = "the spec: a valid request gets the operation's success status, and what is written reads back"
SEGMENTS_FOR_DELETE = 6  # a flow this large may be deleted asynchronously (202)


def video_flow(scope: Scope) -> dict[str, Any]:
    """A new video flow of this case (fresh ids, the scope's tags)."""
    return S.video_flow(id=str(uuid.uuid4()), source_id=str(uuid.uuid4()), tags=dict(scope.tags))


class Walk:
    """Runs steps, keeping every failure instead of stopping at the first."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.failures: list[ContractFailure] = []

    def step(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except ContractFailure as failure:
            self.failures.append(failure)
            return None

    def expect(self, response: httpx.Response, statuses: tuple[int, ...], why: str = "") -> httpx.Response:
        return self.api.expect(response, statuses, CHECK, why)

    def reads_back(self, path: str, want: Any) -> None:
        response = self.expect(self.api.get(path), (200,), "after writing it")
        got = self.api.json(response, CHECK)
        if got != want:
            raise ContractFailure(
                f"GET {path} gave {got!r} after {want!r} was written", self.api.operation_of(response), CHECK, CITE
            )
        self.expect(self.api.head(path), (200,))

    def finish(self) -> None:
        if not self.failures:
            return
        first, *others = self.failures
        if others:
            more = "; ".join(f"{f.operation}: {f.summary}" for f in others[:5])
            first.message += f"\n  and {len(others)} more failed steps: {more}"
        first.others = others
        raise first


def run(ctx: Context) -> None:
    """Walk the common operations on a flow and source the suite creates (and deletes again)."""
    api = ctx.api
    with ctx.case() as (scope, janitor):
        walk = Walk(api)
        walk.step(lambda: _service(walk, ctx))
        flow = video_flow(scope)
        janitor.flow(flow["id"])
        created = walk.step(lambda: walk.expect(api.put(f"/flows/{flow['id']}", flow), (201,), "a new flow"))
        if created is None:
            walk.finish()
            return
        base = f"/flows/{flow['id']}"
        walk.step(lambda: walk.expect(api.get(base), (200,)))
        walk.step(lambda: walk.expect(api.head(base), (200,)))
        walk.step(lambda: _flow_properties(walk, base))
        walk.step(lambda: _tags(walk, base))
        walk.step(lambda: _collection(walk, scope, janitor, base))
        walk.step(lambda: _read_only(walk, base))
        source = f"/sources/{flow['source_id']}"
        walk.step(lambda: _listed(walk, "/flows", scope.filters, flow["id"]))
        walk.step(lambda: _scoped_source_listed(walk, scope, flow["source_id"]))
        walk.step(lambda: walk.expect(api.get(source), (200,)))
        walk.step(lambda: walk.expect(api.head(source), (200,)))
        walk.step(lambda: _tags(walk, source))
        for name in ("label", "description"):
            walk.step(lambda name=name: _property(walk, f"{source}/{name}", f"conformance {name}"))
        walk.step(lambda: _segments_and_objects(walk, flow["id"]))
        if not ctx.config.at_least("8.0"):
            walk.step(lambda: _webhooks_7_0(walk, janitor))
        walk.step(lambda: _delete_flow(walk, ctx, flow["id"]))
        walk.finish()


def _service(walk: Walk, ctx: Context) -> None:
    api = walk.api
    for path in ("/", "/service", "/service/storage-backends", "/flow-delete-requests"):
        walk.step(lambda path=path: walk.expect(api.get(path), (200,)))
        walk.step(lambda path=path: walk.expect(api.head(path), (200,)))
    if ctx.config.remote or api.read_only:
        return  # POST /service renames a live service
    current = api.json(walk.expect(api.get("/service"), (200,)), CHECK)
    body = {k: current[k] for k in ("name", "description") if k in current} or {"name": "tams-conformance"}
    walk.step(lambda: walk.expect(api.post("/service", body), (200,), "the service's own name and description"))


def _listed(walk: Walk, path: str, params: list[tuple[str, str]], item_id: str) -> None:
    """The listing (GET and HEAD) holds ``item_id``, following pages."""
    api = walk.api
    listing = list_all(api, path, params, CHECK)
    if item_id not in [item.get("id") for item in listing.items if isinstance(item, dict)]:
        raise ContractFailure(f"{item_id} is not listed by GET {path} with {params}", f"GET {path}", CHECK, CITE)
    walk.expect(api.head(path, params=params), (200,))


def _scoped_source_listed(walk: Walk, scope: Scope, source_id: str) -> None:
    """Sources take no tags from their flows: tag the source with the case's scope, then list by it."""
    for name, value in scope.tags.items():
        walk.expect(walk.api.put(f"/sources/{source_id}/tags/{name}", value), (200, 204))
    _listed(walk, "/sources", scope.filters, source_id)


def _property(walk: Walk, path: str, value: Any) -> None:
    api = walk.api
    walk.expect(api.put(path, value), (200, 204))
    walk.reads_back(path, value)
    walk.expect(api.delete(path), (200, 204))


def _flow_properties(walk: Walk, base: str) -> None:
    for name, value in (("label", "conformance label"), ("description", "conformance"), ("max_bit_rate", 5000)):
        walk.step(lambda name=name, value=value: _property(walk, f"{base}/{name}", value))
    walk.step(lambda: _property(walk, f"{base}/avg_bit_rate", 4000))


def _tags(walk: Walk, base: str) -> None:
    api = walk.api
    path = f"{base}/tags/conformance_walk"
    walk.expect(api.put(path, "walked"), (200, 204))
    walk.reads_back(path, "walked")
    tags = api.json(walk.expect(api.get(f"{base}/tags"), (200,)), CHECK)
    if not isinstance(tags, dict) or tags.get("conformance_walk") != "walked":
        raise ContractFailure(f"GET {base}/tags is {tags!r} after a tag was set", f"GET {_template(base)}/tags", CHECK)
    walk.expect(api.head(f"{base}/tags"), (200,))
    walk.expect(api.delete(path), (200, 204))
    walk.expect(api.get(path), (404,), "a deleted tag")


def _template(base: str) -> str:
    return "/flows/{flowId}" if base.startswith("/flows/") else "/sources/{sourceId}"


def _collection(walk: Walk, scope: Scope, janitor: Janitor, base: str) -> None:
    api = walk.api
    member = video_flow(scope)
    janitor.flow(member["id"])
    walk.expect(api.put(f"/flows/{member['id']}", member), (201,), "a collection member")
    items = [{"id": member["id"], "role": "video"}]
    walk.expect(api.put(f"{base}/flow_collection", items), (200, 204))
    walk.reads_back(f"{base}/flow_collection", items)
    walk.expect(api.delete(f"{base}/flow_collection"), (200, 204))


def _read_only(walk: Walk, base: str) -> None:
    api = walk.api
    walk.expect(api.put(f"{base}/read_only", True), (200, 204))
    walk.reads_back(f"{base}/read_only", True)
    walk.expect(api.put(f"{base}/read_only", False), (200, 204))


def _segments_and_objects(walk: Walk, flow_id: str) -> None:
    api = walk.api
    allocated = walk.expect(api.post(f"/flows/{flow_id}/storage", {"limit": SEGMENTS_FOR_DELETE}), (201,))
    objects = [o["object_id"] for o in api.json(allocated, CHECK).get("media_objects", [])]
    segments = [{"object_id": o, "timerange": f"[{i}:0_{i + 1}:0)"} for i, o in enumerate(objects)]
    walk.expect(api.post(f"/flows/{flow_id}/segments", segments), (200, 201))
    walk.expect(api.get(f"/flows/{flow_id}/segments"), (200,))
    walk.expect(api.head(f"/flows/{flow_id}/segments"), (200,))
    if objects:
        walk.expect(api.get(f"/objects/{objects[0]}"), (200,), "an object on a segment")
        walk.expect(api.head(f"/objects/{objects[0]}"), (200,))
    response = api.delete(f"/flows/{flow_id}/segments", params={"timerange": "[0:0_1:0)"})
    walk.expect(response, (202, 204))
    if response.status_code == 202:
        wait_for_deletion(api, response, 60)


def _webhooks_7_0(walk: Walk, janitor: Janitor) -> None:
    """7.0: a registration is identified by its URL (and API key); ``events: []`` removes it."""
    api = walk.api
    body = {"url": loopback_url(), "events": ["flows/created"]}
    response = api.post("/service/webhooks", body)
    if refused_receiver(api, response):
        return
    walk.expect(response, (200, 201))
    janitor.webhook(body, response)
    listed = api.json(walk.expect(api.get("/service/webhooks"), (200,)), CHECK)
    if not any(isinstance(h, dict) and h.get("url") == body["url"] for h in listed or []):
        raise ContractFailure(f"a new webhook is not listed: {describe(response)}", "GET /service/webhooks", CHECK)
    walk.expect(api.head("/service/webhooks"), (200,))
    walk.expect(api.post("/service/webhooks", {**body, "events": []}), (204,), "events: [] removes it")


def _delete_flow(walk: Walk, ctx: Context, flow_id: str) -> None:
    """Delete the walked flow; when the server does it asynchronously, walk its deletion request."""
    api = walk.api
    response = walk.expect(api.delete(f"/flows/{flow_id}"), (202, 204))
    if response.status_code != 202:
        return
    body = api.json(response, CHECK)
    request_id = body.get("id") if isinstance(body, dict) else None
    if request_id:
        walk.step(lambda: walk.expect(api.get(f"/flow-delete-requests/{request_id}"), (200, 404)))
        walk.step(lambda: walk.expect(api.head(f"/flow-delete-requests/{request_id}"), (200, 404)))
    wait_for_deletion(api, response, ctx.config.delete_wait_s)
