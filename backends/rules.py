"""TAMS rules shared by every backend: one home for each, independent of how data is stored."""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from backends.base import (
    FlowQuery,
    Json,
    Page,
    PageRequest,
    SourceQuery,
    StorageRequest,
    StorePolicy,
    TagFilter,
    UrlOptions,
    current_actor,
)
from backends.errors import BadRequest, NotFound, ReadOnly
from backends.objectstore import ObjectStore, StorageBackendInfo
from backends.timerange import TimeRange, Timestamp

# The version whose superset every backend stores (older versions are views of it).
API_VERSION = "8.2"
SERVICE_TYPE = "urn:x-tams:service.tams-server"

DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 1000
DEFAULT_STORAGE_LIMIT = 10
MAX_STORAGE_LIMIT = 1000

# Flow fields the server manages: ignored when a client sends them in a PUT (ADR 0025).
SERVER_MANAGED_FLOW_FIELDS = (
    "created",
    "metadata_updated",
    "segments_updated",
    "collected_by",
    "timerange",
)
# Source fields derived by the server, never stored from a client.
DERIVED_SOURCE_FIELDS = ("source_collection", "collected_by")


def service_info(stored: Json, policy: StorePolicy, url_lifetime_s: float) -> Json:
    """``/service`` from what a client set (name, description) and the settings that decide how
    long an allocated object and a presigned URL stay usable (8.1+: ``min_object_timeout``,
    ``min_presigned_url_timeout``)."""
    return {
        "type": SERVICE_TYPE,
        "api_version": API_VERSION,
        "min_object_timeout": str(Timestamp.from_ns(int(policy.unregistered_ttl_s * 1e9))),
        "min_presigned_url_timeout": str(Timestamp.from_ns(int(url_lifetime_s * 1e9))),
        **stored,
    }


def now() -> str:
    """The current time as an RFC 3339 UTC date-time with microseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# --- paging --------------------------------------------------------------------------------


def page_limit(
    requested: int | None,
    default: int = DEFAULT_PAGE_LIMIT,
    maximum: int = MAX_PAGE_LIMIT,
) -> int:
    """The limit actually applied: the default when absent, capped at the maximum."""
    if requested is None:
        return default
    if requested < 1:
        raise BadRequest("limit must be a positive integer")
    return min(requested, maximum)


def encode_cursor(position: str) -> str:
    """Wrap a backend's position in an opaque, URL-safe page key."""
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def decode_cursor(page: str) -> str:
    try:
        padded = page + "=" * (-len(page) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"invalid page key {page!r}") from exc


def page_after(sorted_keys: list[str], cursor: str | None) -> int:
    """Index of the first key after the one a cursor names (keys sorted ascending)."""
    if cursor is None:
        return 0
    return bisect.bisect_right(sorted_keys, decode_cursor(cursor))


def paged(items: list[Any], page: PageRequest, key: str | None) -> Page[Any]:
    """One page of ``items`` (sorted by ``key``, or themselves), resuming after the cursor's key."""
    limit = page_limit(page.limit)
    keys = [item[key] if key else item for item in items]
    start = page_after(keys, page.page)
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    next_key = encode_cursor(keys[start + limit - 1]) if more else None
    return Page(chunk, limit, next_key)


def segment_cursor_key(page: str) -> tuple[int, int, int]:
    """The start key a segment listing resumes after: its page key names the last segment's timerange."""
    try:
        return TimeRange.parse(decode_cursor(page)).start_key()
    except ValueError as exc:
        raise BadRequest("invalid page key") from exc


# --- filters -------------------------------------------------------------------------------


def tag_matches(value: Any, accepted: Iterable[str]) -> bool:
    """A tag value has one of the accepted values: a list-valued tag when any element has one."""
    accepted = set(accepted)
    if isinstance(value, list):
        return any(element in accepted for element in value)
    return value in accepted


def matches_tags(entity: Json, tags: TagFilter) -> bool:
    """``tag.{name}`` (any-of, see ``tag_matches``) and ``tag_exists.{name}`` filters, ANDed."""
    have = entity.get("tags") or {}
    if any(name not in have or not tag_matches(have[name], values) for name, values in tags.equals.items()):
        return False
    return all((name in have) == wanted for name, wanted in tags.exists.items())


def matches_collected_by(collected_by: Iterable[str], wanted: tuple[str, ...] | None) -> bool:
    """``collected_by_ids`` (ADR-0049): collected by any of ``wanted``; ``()`` selects the uncollected."""
    if wanted is None:
        return True
    collectors = set(collected_by)
    if not wanted:
        return not collectors
    return not collectors.isdisjoint(wanted)


def matches_source(source: Json, query: SourceQuery) -> bool:
    """Every source filter, on the source as listed (with its derived ``collected_by``)."""
    return (
        (query.label is None or source.get("label") == query.label)
        and (query.format is None or source.get("format") == query.format)
        and matches_tags(source, query.tags)
        and matches_collected_by(source.get("collected_by") or (), query.collected_by_ids)
    )


def uses_init_segments(flow: Json) -> bool:
    """A flow's essence ``init_segments``; false when unset (as the flow schemas say)."""
    return bool((flow.get("essence_parameters") or {}).get("init_segments", False))


def matches_flow(flow: Json, query: FlowQuery) -> bool:
    """Every flow filter except ``timerange``, which needs the flow's segments.

    ``collected_by_ids`` reads the flow's ``collected_by``: give the flow as listed (its view).
    """
    params = flow.get("essence_parameters") or {}
    return (
        (query.source_id is None or flow.get("source_id") == query.source_id)
        and (query.format is None or flow.get("format") == query.format)
        and (query.codec is None or flow.get("codec") == query.codec)
        and (query.label is None or flow.get("label") == query.label)
        and (query.frame_width is None or params.get("frame_width") == query.frame_width)
        and (query.frame_height is None or params.get("frame_height") == query.frame_height)
        and matches_tags(flow, query.tags)
        and (query.status is None or flow.get("status") == query.status)
        and (query.profile_id is None or flow.get("profile_id") == query.profile_id)
        and (query.init_segments is None or uses_init_segments(flow) == query.init_segments)
        and matches_collected_by(flow.get("collected_by") or (), query.collected_by_ids)
    )


def matches_flow_timerange(segment_ranges: Iterable[TimeRange], query: TimeRange | None) -> bool:
    """``timerange`` filter on flows: any segment overlaps it; an empty query means no segments.

    Eternity (the parameter's default, ``_``) does not filter: flows without content stay listed.
    """
    if query is None or query.is_eternity:
        return True
    if query.is_empty:
        return not any(True for _ in segment_ranges)
    return any(r.overlaps(query) for r in segment_ranges)


# --- flows ---------------------------------------------------------------------------------


def ensure_writable(flow: Json) -> None:
    if flow.get("read_only"):
        raise ReadOnly(f"flow {flow['id']} is read_only")


def prepare_flow(flow_id: str, body: Json, existing: Json | None, stamp: str) -> Json:
    """The flow to store for a PUT: full replacement, server-managed fields kept or set."""
    if body.get("id") != flow_id:
        raise NotFound(f"flow id in the path ({flow_id}) does not match the body ({body.get('id')})")
    if existing is not None:
        ensure_writable(existing)
    flow = {k: v for k, v in body.items() if k not in SERVER_MANAGED_FLOW_FIELDS}
    flow["created"] = existing["created"] if existing else stamp
    flow["metadata_updated"] = stamp
    actor = current_actor()
    if actor is not None:
        # The authenticated principal wins over what the client wrote.
        flow["created_by"] = existing.get("created_by", actor) if existing else actor
        flow["updated_by"] = actor
    if existing and "segments_updated" in existing:
        flow["segments_updated"] = existing["segments_updated"]
    return flow


def collection_members(flow: Json) -> list[str]:
    return [item["id"] for item in flow.get("flow_collection") or []]


def check_collection(flow: Json, flow_exists: Any) -> None:
    """Collected flows must already be registered, and a flow cannot collect itself."""
    for member in collection_members(flow):
        if member == flow["id"]:
            raise BadRequest("a flow cannot collect itself")
        if not flow_exists(member):
            raise BadRequest(f"flow_collection names flow {member}, which is not registered")


def new_source(flow: Json, stamp: str) -> Json:
    """The source a flow PUT creates implicitly: id and format from the flow."""
    source = {"id": flow["source_id"], "format": flow["format"], "created": stamp, "updated": stamp}
    if current_actor() is not None:
        source["created_by"] = source["updated_by"] = current_actor()
    return source


def touch(entity: Json, stamp_field: str, stamp: str | None = None) -> None:
    """Record a metadata change: when (``stamp_field``), and by whom when known."""
    entity[stamp_field] = stamp or now()
    if current_actor() is not None:
        entity["updated_by"] = current_actor()


def set_tag(entity: Json, name: str, value: str | list[str] | None, stamp_field: str) -> None:
    """Set a tag, or remove it when ``value`` is None (NotFound if it was not set)."""
    tags = dict(entity.get("tags") or {})
    if value is None:
        if name not in tags:
            raise NotFound(f"tag {name!r} is not set")
        del tags[name]
    else:
        tags[name] = value
    entity["tags"] = tags
    touch(entity, stamp_field)


def set_field(entity: Json, name: str, value: Any, stamp_field: str, stamp: str | None = None) -> None:
    """Set a property, or remove it when ``value`` is None."""
    if value is None:
        entity.pop(name, None)
    else:
        entity[name] = value
    touch(entity, stamp_field, stamp)


def source_collections(
    source_id: str,
    flows_of_source: Iterable[Json],
    source_of: Callable[[str], str | None],
    collectors_of_flows: Iterable[str],
) -> tuple[list[Json], list[str]]:
    """Derive a source's ``source_collection`` and ``collected_by`` from flow collections.

    ``source_of`` maps a flow id to its source id; ``collectors_of_flows`` are the ids of flows
    that collect any flow of this source. A source never lists itself.
    """
    items: dict[tuple[str, str], Json] = {}
    for flow in flows_of_source:
        for item in flow.get("flow_collection") or []:
            member_source = source_of(item["id"])
            if member_source is not None and member_source != source_id:
                # A role is optional from TAMS 8.0: an item without one stays without one.
                role = item.get("role")
                entry = {"id": member_source} if role is None else {"id": member_source, "role": role}
                items.setdefault((member_source, role), entry)
    collectors = {source_of(f) for f in collectors_of_flows}
    collected_by = sorted(s for s in collectors if s is not None and s != source_id)
    return sorted(items.values(), key=lambda i: (i["id"], i.get("role", ""))), collected_by


def source_view(source: Json, collection: list[Json], collected_by: list[str]) -> Json:
    out = dict(source)
    if collection:
        out["source_collection"] = collection
    if collected_by:
        out["collected_by"] = collected_by
    return out


def flow_view(flow: Json, collected_by: Iterable[str]) -> Json:
    out = dict(flow)
    members = sorted(collected_by)
    if members:
        out["collected_by"] = members
    return out


def flow_timerange_view(extent: TimeRange, query: TimeRange | None) -> str:
    """The computed flow ``timerange``: the span of its segments, limited to the query."""
    return str(extent if query is None else extent.intersect(query))


# --- segments ------------------------------------------------------------------------------

# Segment POST fields that describe the media object rather than the segment (8.x): kept on the object.
OBJECT_FACT_FIELDS = ("object_timerange", "init_object_id")


@dataclass
class Segment:
    """A stored segment: the client's fields, the parsed timerange, uncontrolled URLs."""

    object_id: str
    timerange: TimeRange
    fields: Json = field(default_factory=dict)
    external_urls: list[Json] = field(default_factory=list)

    def start_key(self) -> tuple[int, int, int]:
        return self.timerange.start_key()

    def end_key(self) -> tuple[int, int, int]:
        return self.timerange.end_key()


def _non_negative_timestamp(segment: Json, name: str) -> None:
    if name in segment and Timestamp.parse(segment[name]).to_ns() < 0:
        raise BadRequest(f"{name} cannot be negative")


def parse_segment(body: Json, controlled_labels: Iterable[str]) -> Segment:
    """Check one posted segment against the rules the schema cannot express."""
    try:
        timerange = TimeRange.parse(body["timerange"])
        # ts_offset may be negative: 7.0 said it could not be, and 8.0 calls that a mistake (media
        # timestamps may run ahead of the segment's); both versions take it.
        _non_negative_timestamp(body, "last_duration")
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    if timerange.is_empty:
        raise BadRequest(f"segment timerange {body['timerange']!r} is empty")
    if not timerange.is_bounded:
        raise BadRequest(f"segment timerange {body['timerange']!r} must have a start and an end")
    for name in ("sample_offset", "sample_count", "key_frame_count"):
        if name in body and body[name] < 0:
            raise BadRequest(f"{name} cannot be negative")
    labels = set(controlled_labels)
    external = []
    for url in body.get("get_urls") or []:
        if url.get("label") in labels:
            raise BadRequest(f"get_urls label {url['label']!r} belongs to a storage backend of this server")
        external.append({k: url[k] for k in ("url", "label") if k in url})
    fields = {k: v for k, v in body.items() if k not in ("object_id", "timerange", "get_urls", *OBJECT_FACT_FIELDS)}
    return Segment(body["object_id"], timerange, fields, external)


@dataclass(frozen=True)
class ControlledUrl:
    url: str
    presigned: bool
    backend: StorageBackendInfo
    plain: str | None = None  # event payloads: the store's plain URL as well (UrlOptions.for_events)


def filter_get_urls(entries: Iterable[Json], options: UrlOptions) -> list[Json] | None:
    """Apply ``accept_get_urls``/``accept_storage_ids``/``presigned`` (ANDed) and ``verbose_storage``.

    Returns None when ``accept_get_urls`` is empty: the client asked for no URLs at all.
    """
    if options.accept_get_urls == ():
        return None
    out = []
    for entry in entries:
        if options.accept_get_urls is not None and entry.get("label") not in options.accept_get_urls:
            continue
        if options.accept_storage_ids and entry.get("storage_id") not in options.accept_storage_ids:
            continue
        if options.presigned is not None and bool(entry.get("presigned")) != options.presigned:
            continue
        if not options.verbose_storage:
            entry = {k: entry[k] for k in ("url", "presigned", "label") if k in entry}
        out.append(entry)
    return out


def segment_view(segment: Segment, urls: list[Json] | None) -> Json:
    out: Json = {
        "object_id": segment.object_id,
        "timerange": str(segment.timerange),
        **segment.fields,
    }
    if urls is not None:
        out["get_urls"] = urls
    return out


def segments_extent(segments: Iterable[Segment]) -> TimeRange:
    """The smallest range holding every segment's (empty for none): one range, however many."""
    ranges = [s.timerange for s in segments if not s.timerange.is_empty]
    if not ranges:
        return TimeRange.never()
    return TimeRange.from_keys(min(r.start_key() for r in ranges), max(r.end_key() for r in ranges))


def check_segment_post(flow: Json) -> None:
    ensure_writable(flow)
    if not flow.get("container"):
        raise BadRequest("the flow has no container, so it cannot have segments")


def remaining_after(timerange: TimeRange, done: TimeRange) -> TimeRange:
    """The part of ``timerange`` after ``done`` (a deletion's ``timerange_remaining``)."""
    return timerange.intersect(TimeRange(done.end, None, include_start=not done.include_end))


# --- storage -------------------------------------------------------------------------------


# Characters an object id may not hold: its media URL could never be used (``?``, ``#``, ``\\``),
# or it would break headers and logs (control characters).
_UNUSABLE_IN_OBJECT_IDS = re.compile(r"[?#\\\x00-\x1f\x7f]")


def check_storage_request(flow: Json, request: StorageRequest) -> None:
    ensure_writable(flow)
    if not flow.get("container"):
        raise BadRequest("the flow has no container, so it cannot have media objects")
    if request.limit is not None and request.object_ids is not None:
        raise BadRequest("give either limit or object_ids, not both")
    if request.limit is not None and request.limit < 1:
        raise BadRequest("limit must be a positive integer")
    if request.object_ids is not None:
        if len(request.object_ids) > MAX_STORAGE_LIMIT:
            raise BadRequest(f"give at most {MAX_STORAGE_LIMIT} object_ids in one request")
        for object_id in request.object_ids:
            if not object_id or _UNUSABLE_IN_OBJECT_IDS.search(object_id):
                raise BadRequest(f"object id {object_id!r} is empty or holds ? # \\ or a control character")


def allocation_size(request: StorageRequest) -> int:
    """How many new ids a storage request without ``object_ids`` gets: its ``limit`` (the server's
    maximum at most: a client wanting more asks again), else the default."""
    return min(request.limit or DEFAULT_STORAGE_LIMIT, MAX_STORAGE_LIMIT)


def choose_storage(backends: list[StorageBackendInfo], storage_id: str | None) -> StorageBackendInfo:
    if storage_id is None:
        for b in backends:
            if b.default_storage:
                return b
        raise BadRequest("no default storage backend: give storage_id")
    for b in backends:
        if b.id == storage_id:
            return b
    raise BadRequest(f"unknown storage_id {storage_id}")


def reclaimable(
    unregistered: bool, allocated_at: float, unreferenced_since: float | None, clock: float, policy: StorePolicy
) -> bool:
    """Whether an object nobody references may lose its bytes now.

    Allocated but never registered: after ``unregistered_ttl_s``. Registered once, then left by
    its last segment: after ``unreferenced_grace_s``.
    """
    if unregistered:
        return clock - allocated_at > policy.unregistered_ttl_s
    return unreferenced_since is not None and clock - unreferenced_since > policy.unreferenced_grace_s


def media_object(store: ObjectStore, object_id: str, content_type: str, presigned: bool) -> Json:
    """One ``media_objects`` entry of a storage allocation (8.x ``presigned``: which kind of put_url).

    A store without plain URLs answers a presigned one, and says so.
    """
    plain = None if presigned else store.plain_upload_url(object_id, content_type)
    if plain is not None:
        return {"object_id": object_id, "put_url": plain, "presigned": False}
    return {"object_id": object_id, "put_url": store.upload_url(object_id, content_type), "presigned": True}
