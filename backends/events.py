"""TAMS events and the webhook rules every backend shares: what an event carries, which
registrations it reaches, and the body each receiver gets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from backends.base import Json, UrlOptions
from backends.errors import BadRequest
from backends.rules import filter_get_urls, now

FLOW_CREATED = "flows/created"
FLOW_UPDATED = "flows/updated"
FLOW_DELETED = "flows/deleted"
SEGMENTS_ADDED = "flows/segments_added"
# The 7.0 spec's const for this event repeats segments_added by mistake; we send the right name.
SEGMENTS_DELETED = "flows/segments_deleted"
SOURCE_CREATED = "sources/created"
SOURCE_UPDATED = "sources/updated"
SOURCE_DELETED = "sources/deleted"
EVENT_TYPES = (
    FLOW_CREATED,
    FLOW_UPDATED,
    FLOW_DELETED,
    SEGMENTS_ADDED,
    SEGMENTS_DELETED,
    SOURCE_CREATED,
    SOURCE_UPDATED,
    SOURCE_DELETED,
)

FILTERS = ("flow_ids", "source_ids", "flow_collected_by_ids", "source_collected_by_ids")
TRANSFORMS = ("accept_get_urls", "accept_storage_ids", "presigned", "verbose_storage")
IDENTITY = ("url", "api_key_name", "api_key_value")
WEBHOOK_FIELDS = frozenset((*IDENTITY, "events", *FILTERS, *TRANSFORMS))


@dataclass(frozen=True)
class Event:
    """One change in the store; the ids say which webhook filters it passes."""

    type: str
    payload: Json
    flow_id: str | None = None
    source_id: str | None = None
    flow_collected_by: tuple[str, ...] = ()
    source_collected_by: tuple[str, ...] = ()
    timestamp: str = field(default_factory=now)


class EventSink(Protocol):
    def publish(self, event: Event) -> None: ...


class DiscardEvents:
    """For stores nobody listens to (tests of a backend on its own)."""

    def publish(self, event: Event) -> None:
        pass


def flow_event(kind: str, flow: Json, source: Json | None, payload: Json | None = None) -> Event:
    """An event about a flow: ``payload`` defaults to ``{"flow": flow}``."""
    return Event(
        type=kind,
        payload={"flow": flow} if payload is None else payload,
        flow_id=flow["id"],
        source_id=flow["source_id"],
        flow_collected_by=tuple(flow.get("collected_by", ())),
        source_collected_by=tuple((source or {}).get("collected_by", ())),
    )


def source_event(kind: str, source: Json, payload: Json | None = None) -> Event:
    return Event(
        type=kind,
        payload={"source": source} if payload is None else payload,
        source_id=source["id"],
        source_collected_by=tuple(source.get("collected_by", ())),
    )


# --- registrations -------------------------------------------------------------------------------


def prepare_webhook(body: Json) -> Json:
    """Check a registration: filters or transformations we do not know are refused (400), as 7.0 asks."""
    unknown = sorted(set(body) - WEBHOOK_FIELDS)
    if unknown:
        raise BadRequest(f"unsupported webhook properties: {', '.join(unknown)}")
    bad_events = sorted(set(body["events"]) - set(EVENT_TYPES))
    if bad_events:
        raise BadRequest(f"unsupported event types: {', '.join(bad_events)}")
    return dict(body)


def identity(webhook: Json) -> tuple[Any, ...]:
    """A registration is identified by its url, api_key_name and api_key_value."""
    return tuple(webhook.get(k) for k in IDENTITY)


def public_view(webhook: Json) -> Json:
    """A registration as GET shows it: never the api_key_value."""
    return {k: v for k, v in webhook.items() if k != "api_key_value"}


def _intersects(wanted: Iterable[str] | None, have: Iterable[str]) -> bool:
    return wanted is None or bool(set(wanted) & set(have))


def matches(webhook: Json, event: Event) -> bool:
    """Every filter the registration sets must pass (ADR 0026); flow filters skip source events."""
    if event.type not in webhook.get("events", ()):
        return False
    is_flow_event = event.flow_id is not None
    if is_flow_event and not _intersects(webhook.get("flow_ids"), [event.flow_id]):
        return False
    if is_flow_event and not _intersects(webhook.get("flow_collected_by_ids"), event.flow_collected_by):
        return False
    if not _intersects(webhook.get("source_ids"), [event.source_id] if event.source_id else []):
        return False
    return _intersects(webhook.get("source_collected_by_ids"), event.source_collected_by)


def url_options(webhook: Json) -> UrlOptions:
    accept = webhook.get("accept_get_urls")
    storage = webhook.get("accept_storage_ids")
    return UrlOptions(
        accept_get_urls=None if accept is None else tuple(accept),
        accept_storage_ids=tuple(storage) if storage else None,
        presigned=webhook.get("presigned"),
        verbose_storage=bool(webhook.get("verbose_storage", False)),
    )


def body_for(webhook: Json, event: Event) -> Json:
    """What the receiver gets; segments carry get_urls shaped by the registration's transformations."""
    payload = event.payload
    if event.type == SEGMENTS_ADDED:
        options = url_options(webhook)
        segments = []
        for segment in payload["segments"]:
            shaped = {k: v for k, v in segment.items() if k != "get_urls"}
            urls = filter_get_urls(segment.get("get_urls", []), options)
            if urls is not None:
                shaped["get_urls"] = urls
            segments.append(shaped)
        payload = {**payload, "segments": segments}
    return {"event_timestamp": event.timestamp, "event_type": event.type, "event": payload}
