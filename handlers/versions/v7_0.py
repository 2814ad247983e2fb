"""TAMS 7.0: how a 7.0 client sees the store, and the operations that behave differently in 7.0."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ClassVar

from backends import events
from backends.base import Json
from backends.errors import BadRequest, NotFound
from handlers.versions.dialect import Dialect
from tams_server import context
from tams_server.context import backend

# What 7.0 registrations neither send nor see (statuses and ids came with 8.0, ADR-0037).
WEBHOOK_FIELDS_SINCE_8 = ("id", "status", "error", *events.FIELDS_SINCE_8)

# /service fields that 8.1 added (how long allocated objects and presigned URLs stay usable).
SERVICE_FIELDS_SINCE_81 = ("min_object_timeout", "min_presigned_url_timeout")


@dataclass(frozen=True)
class Dialect70(Dialect):
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


# --- webhooks: 7.0 identifies a registration by (url, api_key_name, api_key_value) ---------------


def get_webhooks() -> Any:
    """Every registration, unpaged, without what 7.0 does not know (id, status, tags)."""
    return [DIALECT.webhook(w) for w in backend().all_webhooks()], 200


def post_webhooks(body: Json) -> Any:
    """Register, update (same url, api_key_name and api_key_value) or, with no events, remove."""
    request = events.prepare_webhook(DIALECT.webhook_request(body))
    store = backend()
    same = [w for w in store.all_webhooks() if events.identity(w) == events.identity(request)]
    if not request["events"]:
        for webhook in same:
            with contextlib.suppress(NotFound):  # removed meanwhile
                store.delete_webhook(webhook["id"])
        return None, 204
    context.webhooks().check(request["url"])
    if not same:
        return DIALECT.webhook(store.create_webhook(request)), 201
    existing = same[0]
    # An update keeps what 7.0 cannot express (tags, ...) and re-enables a disabled registration.
    kept = {k: existing[k] for k in events.FIELDS_SINCE_8 if k in existing}
    replacement = {**kept, **request, "id": existing["id"], "status": events.CREATED}
    return DIALECT.webhook(store.replace_webhook(existing["id"], replacement)), 201
