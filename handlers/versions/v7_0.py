"""TAMS 7.0: how a 7.0 client sees the store, and the operations that behave differently in 7.0.

Flows, as 7.0 sees the 8.2 superset the store keeps:

- 8.x-only flow fields are not shown: ``profile_id`` (a profiled flow shows its expanded
  technical metadata, which is all a 7.0 client needs) and ``status``; in ``essence_parameters``
  (closed objects in 7.0) ``vfr`` and ``init_segments``; a multi flow, which has no
  ``essence_parameters`` in 7.0, loses them.
- Collection items need a ``role`` in 7.0 and only may have one in 8.x: an item stored without
  a role is shown with ``role: ""`` (flow and source collections alike). The order of a
  ``flow_collection`` is kept as stored.
- A video flow without ``frame_rate`` is valid in 7.0 ("unknown or variable") but not in 8.x
  unless ``vfr`` is true. A 7.0 PUT of such a flow is stored with ``vfr: true`` added, so the
  8.2 view is valid and says the frame rate is not constant; the 7.0 view strips ``vfr`` again,
  so a 7.0 client reads back exactly what it wrote. (Refusing such flows under 7.0 would break
  7.0 clients that write them legitimately.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from backends import events, ordering
from backends.base import Json
from backends.errors import BadRequest
from handlers.versions.dialect import VIDEO, Dialect
from tams_server import context
from tams_server.context import backend

MULTI = "urn:x-nmos:format:multi"
# Flow fields 7.0 does not have.
FLOW_FIELDS_8X = ("profile_id", "status")
# essence_parameters fields 7.0 does not have (7.0 essence_parameters are closed objects).
ESSENCE_FIELDS_8X = ("vfr", "init_segments")


def _with_roles(items: list[Json]) -> list[Json]:
    return [item if "role" in item else {**item, "role": ""} for item in items]


# What 7.0 registrations neither send nor see (statuses and ids came with 8.0, ADR-0037).
WEBHOOK_FIELDS_SINCE_8 = ("id", "status", "error", *events.FIELDS_SINCE_8)

# /service fields that 8.1 added (how long allocated objects and presigned URLs stay usable).
SERVICE_FIELDS_SINCE_81 = ("min_object_timeout", "min_presigned_url_timeout")


@dataclass(frozen=True)
class Dialect70(Dialect):
    """7.0 rules.

    Tags: a 7.0 tag value is a string, so ``tag.{name}=a,b`` accepts exactly the value ``"a,b"``.
    List-valued tags (8.x, written under 8.2) are shown to 7.0 clients as ONE string, their
    elements joined with ``","`` (``["a", "b"]`` -> ``"a,b"``), in flows, sources, ``/tags`` and
    the single-tag GET. Joining rather than omitting keeps the tag visible and consistent with
    ``tag_exists``; it is lossy only for elements that contain a comma, and a 7.0 client that PUTs
    the joined value back stores the string ``"a,b"`` (7.0 cannot write lists). The tag filter
    still matches the stored value: under 7.0 ``tag.genre=a`` selects ``["a", "b"]`` (one element
    is ``a``), while ``tag.genre=a,b`` selects the string ``"a,b"`` only.
    """

    def tag_values(self, raw: str) -> frozenset[str]:
        return frozenset((raw,))

    def tag(self, value: Any) -> Any:
        return ",".join(value) if isinstance(value, list) else value

    def flow(self, doc: Json) -> Json:
        out = {k: v for k, v in super().flow(doc).items() if k not in FLOW_FIELDS_8X}
        params = out.get("essence_parameters")
        if isinstance(params, dict):
            params = {k: v for k, v in params.items() if k not in ESSENCE_FIELDS_8X}
            if out.get("format") == MULTI and not params:
                del out["essence_parameters"]
            else:
                out["essence_parameters"] = params
        if out.get("flow_collection"):
            out["flow_collection"] = _with_roles(out["flow_collection"])
        return out

    def flow_collection(self, items: list[Json]) -> list[Json]:
        return _with_roles(items)

    def flow_put(self, body: Json) -> Json:
        # 7.0 has no profiles: a profile_id a 7.0 client sends means nothing and is dropped (the
        # link of a profiled flow is then kept while its technical metadata is left unchanged).
        body = {k: v for k, v in body.items() if k != "profile_id"}
        params = body.get("essence_parameters")
        if body.get("format") == VIDEO and isinstance(params, dict) and "frame_rate" not in params:
            return {**body, "essence_parameters": {**params, "vfr": True}}
        return body

    def source(self, doc: Json) -> Json:
        doc = super().source(doc)
        if not doc.get("source_collection"):
            return doc
        return {**doc, "source_collection": _with_roles(doc["source_collection"])}

    def service(self, info: Json) -> Json:
        shown = super().service(info)
        for name in SERVICE_FIELDS_SINCE_81:
            shown.pop(name, None)
        return shown

    # 7.0 has no statuses: a delivery that fails for good is dropped, and later events are still tried.
    webhook_error_status: ClassVar[bool] = False

    def webhook_request(self, body: Json) -> Json:
        unknown = sorted(set(body) & set(WEBHOOK_FIELDS_SINCE_8))
        if unknown:
            raise BadRequest(f"unsupported webhook properties: {', '.join(unknown)}")
        return super().webhook_request(body)

    def webhook(self, webhook: Json) -> Json:
        return {k: v for k, v in super().webhook(webhook).items() if k not in WEBHOOK_FIELDS_SINCE_8}

    def event_payload(self, event_type: str, payload: Json) -> Json:
        # Flow and source payloads go through here too, for 7.0 view rules of flows and sources.
        payload = super().event_payload(event_type, payload)
        if event_type == events.SEGMENTS_ADDED:
            segments = [self.segment(s) for s in payload["segments"]]
            payload = {**payload, "segments": segments}
        return payload

    # 7.0 segment get_urls may lack a label: show them as they were posted.
    shows_minted_labels: ClassVar[bool] = False

    def object(self, doc: Json) -> Json:
        # 7.0 objects are only which flows reference them.
        return {k: v for k, v in doc.items() if k in _OBJECT_FIELDS}

    def segment(self, doc: Json) -> Json:
        return {k: v for k, v in doc.items() if k not in _SEGMENT_8X_FIELDS}

    def storage(self, doc: Json) -> Json:
        objects = [{k: v for k, v in o.items() if k != "presigned"} for o in doc.get("media_objects", [])]
        return {**doc, "media_objects": objects}


_OBJECT_FIELDS = ("id", "referenced_by_flows", "first_referenced_by_flow")
_SEGMENT_8X_FIELDS = ("object_timerange", "init_object")


DIALECT = Dialect70("7.0")


# --- operations that 7.0 defines differently --------------------------------------------------


def get_storage_backends() -> Any:
    """7.0: the whole list, unpaged (7.0 declares no paging for it), in 8.2's order (by label)."""
    return ordering.sort(backend().storage_backends(), ordering.listing_order("label")), 200


def get_flow_delete_requests() -> Any:
    """7.0: the whole list, unpaged (7.0 declares no paging for it), newest first as in 8.2."""
    return ordering.sort(backend().list_delete_requests(), ordering.listing_order()), 200


# --- webhooks: 7.0 identifies a registration by (url, api_key_name, api_key_value) ---------------


def get_webhooks() -> Any:
    """Every registration, unpaged, without what 7.0 does not know (id, status, tags)."""
    return [DIALECT.webhook(w) for w in backend().all_webhooks()], 200


def post_webhooks(body: Json) -> Any:
    """Register, update (same url, api_key_name and api_key_value) or, with no events, remove:
    one atomic backend operation (``events.write_by_identity`` says what identity means)."""
    request = events.prepare_webhook(DIALECT.webhook_request(body))
    if request["events"]:
        context.webhooks().check(request["url"])
    stored = backend().upsert_webhook_by_identity(request)
    return (None, 204) if stored is None else (DIALECT.webhook(stored), 201)
