"""TAMS events and the webhook rules every backend shares: what an event carries, which
registrations it reaches, and the body each receiver gets."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from backends import ordering
from backends.base import Json, Page, PageRequest, UrlOptions, WebhookQuery
from backends.errors import BadRequest
from backends.media_objects import event_url
from backends.rules import filter_get_urls, matches_tags, now
from backends.webhook_receivers import check_delivery_fields

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
# 8.0 added tags (ADR-0040) and 8.2 include_object_timerange: a 7.0 registration has neither.
FIELDS_SINCE_8 = ("tags", "include_object_timerange")
WEBHOOK_FIELDS = frozenset((*IDENTITY, "events", *FILTERS, *TRANSFORMS, *FIELDS_SINCE_8))
# The API version a registration was last written under: set by the server (the request's dialect),
# opaque to backends, never shown; its events are rendered in that version's shapes.
VERSION_FIELD = "api_version"
# Kept by the server: a client sends ``status`` (created or disabled) and, on PUT, the ``id``.
SERVER_FIELDS = ("id", "status", "error", VERSION_FIELD)


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


def wanted(sink: EventSink) -> bool:
    """Whether an event published to ``sink`` could reach anyone: not when it discards them, nor when
    it is a webhook dispatcher with no registrations (then a store need not build events at all)."""
    if isinstance(sink, DiscardEvents):
        return False
    registrations = getattr(sink, "registrations", None)
    if callable(registrations):
        try:
            return bool(registrations())
        except Exception:
            return True  # unknown: build them
    return True


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
    """Check a registration: filters or transformations we do not know are refused (400), as 7.0 asks.

    The server-managed fields (``SERVER_FIELDS``) pass through; ``new_registration`` and
    ``replaced_registration`` decide them.
    """
    unknown = sorted(set(body) - WEBHOOK_FIELDS - set(SERVER_FIELDS))
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
    """A registration as GET shows it: never the api_key_value, nor the version it was made under."""
    return {k: v for k, v in webhook.items() if k not in ("api_key_value", VERSION_FIELD)}


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


def body_for(
    webhook: Json, event: Event, payload_view: PayloadHook | None = None, show_minted_labels: bool = True
) -> Json:
    """What the receiver gets; segments carry get_urls shaped by the registration's transformations.

    ``payload_view(event_type, payload)`` renders the payload as the registration's API version
    shows it (its dialect's ``event_payload``); ``show_minted_labels``: whether that version shows
    the labels the store minted for unlabelled uncontrolled URLs (backends.media_objects).
    """
    payload = event.payload
    if event.type == SEGMENTS_ADDED:
        options = replace(url_options(webhook), show_minted_labels=show_minted_labels)
        payload = {**payload, "segments": [shape_segment(webhook, s, options) for s in payload["segments"]]}
    if payload_view is not None:
        payload = payload_view(event.type, payload)
    return {"event_timestamp": event.timestamp, "event_type": event.type, "event": payload}


# --- registrations by id (TAMS 8.0+, ADR-0037) ---------------------------------------------------
#
# Status life cycle. A client creates a registration ``created`` (the default) or ``disabled``, and
# with PUT may move ``error``/``disabled`` to ``created`` (re-enable) and ``created``/``started`` to
# ``disabled``; ``error`` to ``disabled`` is refused (400), as the spec advises. PUT ``created`` on a
# ``started`` registration keeps it ``started`` (it is enabled already). The server moves
# ``created`` to ``started`` when it begins a delivery to it, and ``created``/``started`` to
# ``error`` (with an ``error`` object) when a delivery fails persistently: every attempt of the
# delivery policy (retries with backoff) failed. Only ``created`` and ``started`` registrations get
# deliveries.

CREATED = "created"
STARTED = "started"
DISABLED = "disabled"
ERROR = "error"
STATUSES = (CREATED, STARTED, DISABLED, ERROR)
CLIENT_STATUSES = (CREATED, DISABLED)
DELIVERING = (CREATED, STARTED)
# The transitions the server itself makes (never a client).
_SERVER_TRANSITIONS = {(CREATED, STARTED), (CREATED, ERROR), (STARTED, ERROR)}


def registration_request(body: Json, version: str) -> Json:
    """A client's registration body with the API version it came under (a client cannot set it)."""
    if VERSION_FIELD in body:
        raise BadRequest(f"unsupported webhook properties: {VERSION_FIELD}")
    return {**body, VERSION_FIELD: version}


def api_version(webhook: Json, default: str = "7.0") -> str:
    """The version a registration was made under; registrations stored before versions were
    recorded were all made under 7.0."""
    return str(webhook.get(VERSION_FIELD) or default)


def _client_status(body: Json) -> str:
    status = body.get("status", CREATED)
    if status not in CLIENT_STATUSES:
        raise BadRequest(f"a client may set a webhook's status to created or disabled, not {status!r}")
    return str(status)


def new_registration(body: Json) -> Json:
    """The registration to store for a POST (8.0+): always new, with a server-minted id."""
    webhook = {k: v for k, v in prepare_webhook(body).items() if k not in ("id", "error")}
    check_delivery_fields(webhook)
    webhook["id"] = str(uuid.uuid4())
    webhook["status"] = _client_status(body)
    return webhook


def next_status(current: str, requested: str) -> str:
    """The status after a client asks for ``requested`` (PUT)."""
    if requested == DISABLED:
        if current == ERROR:
            raise BadRequest("a webhook in error cannot be disabled: re-enable it (status created) or delete it")
        return DISABLED
    return STARTED if current == STARTED else CREATED


def replaced_registration(existing: Json, body: Json) -> Json:
    """The registration to store for a PUT: the body replaces the settings; id and status stay the
    server's (status per ``next_status``). An omitted ``api_key_value`` keeps the stored one while
    ``api_key_name`` is unchanged: a client cannot read it back to send it again."""
    if body.get("id", existing["id"]) != existing["id"]:
        raise BadRequest(f"webhook id in the path ({existing['id']}) does not match the body ({body['id']})")
    webhook = {k: v for k, v in prepare_webhook(body).items() if k not in ("id", "status", "error")}
    webhook["id"] = existing["id"]
    webhook["status"] = next_status(existing.get("status", CREATED), _client_status(body))
    same_key = webhook.get("api_key_name") == existing.get("api_key_name")
    if "api_key_value" not in webhook and same_key and "api_key_value" in existing:
        webhook["api_key_value"] = existing["api_key_value"]
    if VERSION_FIELD not in webhook and VERSION_FIELD in existing:
        webhook[VERSION_FIELD] = existing[VERSION_FIELD]
    check_delivery_fields(webhook)  # a kept api_key_value stored before the rules is checked too
    return webhook


def with_id(webhook: Json) -> Json:
    """A registration stored before ids (7.0-era): give it an id and the status of one that delivers."""
    if webhook.get("id") and webhook.get("status"):
        return webhook
    return {"id": str(uuid.uuid4()), "status": CREATED, **webhook}


def server_status(webhook: Json, status: str, error: Json | None = None) -> Json | None:
    """The registration after the server moves it to ``status``; None when that move is not one the
    server makes from the current status (a client changed it meanwhile, or nothing changes)."""
    if (webhook.get("status", CREATED), status) not in _SERVER_TRANSITIONS:
        return None
    changed = {k: v for k, v in webhook.items() if k != "error"}
    changed["status"] = status
    if status == ERROR and error is not None:
        changed["error"] = error
    return changed


def delivers(webhook: Json) -> bool:
    """Only registrations ``created`` or ``started`` get deliveries (registrations without a status
    were made before statuses existed, and deliver)."""
    return webhook.get("status", CREATED) in DELIVERING


def delivery_error(summary: str) -> Json:
    """The ``error`` a registration shows after a persistent delivery failure."""
    return {"type": "WebhookDeliveryFailed", "summary": summary, "time": now()}


def list_page(webhooks: Iterable[Json], query: WebhookQuery, page: PageRequest) -> Page[Json]:
    """One page of registrations: filtered by tags, sorted by ``url`` (then id), reversed on request
    (keyset page keys: ``backends.ordering``)."""
    chosen = [w for w in webhooks if matches_tags(w, query.tags)]
    return ordering.ordered_page(chosen, ordering.listing_order("url", query.reverse_order), page)


def shape_segment(webhook: Json, segment: Json, options: UrlOptions) -> Json:
    """A segment as a ``flows/segments_added`` event shows it to this registration."""
    shaped = {k: v for k, v in segment.items() if k != "get_urls"}
    urls = _shape_urls(segment.get("get_urls", []), options)
    if urls is not None:
        shaped["get_urls"] = urls
    init = segment.get("init_object")
    if isinstance(init, dict) and "get_urls" in init:
        init_urls = _shape_urls(init["get_urls"], options)
        shaped["init_object"] = {k: v for k, v in init.items() if k != "get_urls"}
        if init_urls is not None:
            shaped["init_object"]["get_urls"] = init_urls
    if not webhook.get("include_object_timerange"):
        # Segment events carry their object's timerange (backends.media_objects); shown on request.
        shaped.pop("object_timerange", None)
    return shaped


def _shape_urls(urls: Iterable[Json], options: UrlOptions) -> list[Json] | None:
    """Event get_urls (stored verbose and marked: media_objects.event_url) as the registration's options show them."""
    return filter_get_urls([event_url(u, options) for u in urls], options)


PayloadHook = Callable[[str, Json], Json]


# --- registration by identity (TAMS 7.0) ---------------------------------------------------------


@dataclass(frozen=True)
class IdentityWrite:
    """What a 7.0 POST does to the stored registrations (``write_by_identity``)."""

    deleted: tuple[str, ...] = ()  # ids of registrations removed
    created: Json | None = None  # a new registration to store
    replaced: Json | None = None  # the replacement of the registration with the same id

    @property
    def stored(self) -> Json | None:
        return self.created if self.created is not None else self.replaced


def write_by_identity(registrations: Iterable[Json], request: Json) -> IdentityWrite:
    """The 7.0 upsert: a registration is identified by (url, api_key_name, api_key_value).

    ``registrations`` are the stored ones, oldest first. With no events, every registration of the
    identity is removed. Otherwise the oldest one of the identity is replaced (keeping what 7.0
    cannot express: tags, ...; re-enabling a disabled or failed one), or a new one is created. A
    backend applies the result atomically with the read of ``registrations`` (one lock or one
    transaction), so concurrent POSTs of one identity never make two registrations.
    """
    request = prepare_webhook(request)
    same = [w for w in registrations if identity(w) == identity(request)]
    if not request["events"]:
        return IdentityWrite(deleted=tuple(w["id"] for w in same))
    if not same:
        return IdentityWrite(created=new_registration(request))
    existing = same[0]
    kept = {k: existing[k] for k in FIELDS_SINCE_8 if k in existing}
    replacement = {**kept, **request, "id": existing["id"], "status": CREATED}
    return IdentityWrite(replaced=replaced_registration(existing, replacement))
