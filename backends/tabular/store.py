"""The TAMS store over tables: every backend operation, written against ``engine`` only.

It behaves exactly like the in-memory reference backend (``backends.memory``) and shares its
rules (``backends.rules``, ``backends.events``, ``backends.deletion``); what differs is where the
state lives. Nothing here names a database: the ``local`` backend runs it on DuckDB, and a VAST DB
engine runs it unchanged.

Tables (see ``TABLES``)
    ``meta`` (service info, persistent ids), ``sources``, ``flows``, ``flow_collections`` (who
    collects whom), ``segments``, ``objects``, ``object_flows`` (segment count per object and
    flow), ``webhooks``, ``delete_requests``. Documents (a flow, a source, a webhook, a deletion
    request) are JSON in a ``doc`` column; what is filtered on is in columns of its own.

Segments
    Each row keeps its bounds as exact sortable keys and as saturated int64 nanoseconds (see
    ``timekeys``). A timerange query is one pushed-down select: ``flow_id == f AND start_key <=
    query_end AND end_key >= query_start`` (plus the int64 twins for pruning), sorted by
    ``start_key`` and limited to one page. Nothing reads a flow's segments to filter them.

Writes
    One transaction per API write, spanning every table it touches, begun only after the
    operation's locks are taken (``locks``). Segment registration holds the flow's lock, so
    concurrent writers to one flow are serialised and each checks for overlaps inside its own
    transaction, which already sees what the previous one committed. A transaction that collides
    with a concurrent one (``Conflict``) is run again. Events are published after the commit,
    still under the locks, so receivers see them in commit order.
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pyarrow as pa
from sortedcontainers import SortedKeyList

from backends import deletion, events, rules
from backends.base import (
    Backend,
    BackendServices,
    FailedSegment,
    FlowField,
    FlowQuery,
    Json,
    Page,
    PageRequest,
    SegmentPage,
    SegmentQuery,
    SourceField,
    SourceQuery,
    StorageRequest,
    UrlOptions,
)
from backends.deletion import BackgroundWorker
from backends.errors import BadRequest, NotFound, TamsError
from backends.objectstore import ObjectStore
from backends.tabular.engine import (
    ALL,
    ROW_ID,
    Conflict,
    EngineUnavailable,
    Order,
    TableEngine,
    TableSpec,
    Transaction,
    Where,
    chunks,
    col,
)
from backends.tabular.locks import LockManager
from backends.tabular.timekeys import INT64_MAX, INT64_MIN, encode_key, saturate
from backends.timerange import TimeRange

log = logging.getLogger("tams_server.tabular")
T = TypeVar("T")

_S, _I, _F, _B = pa.string(), pa.int64(), pa.float64(), pa.binary()


def _schema(*columns: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, kind) for name, kind in columns])


META = TableSpec("meta", _schema(("key", _S), ("value", _S)), lookup=("key",))
SOURCES = TableSpec(
    "sources",
    _schema(("id", _S), ("format", _S), ("label", _S), ("doc", _S)),
    lookup=("id",),
    order=("id",),
)
FLOWS = TableSpec(
    "flows",
    _schema(
        ("id", _S),
        ("source_id", _S),
        ("format", _S),
        ("codec", _S),
        ("label", _S),
        ("doc", _S),  # the stored flow, without segments_updated
        ("segments_updated", _S),
        ("extent", _S),  # the timerange its segments span, kept up to date by every segment write
    ),
    lookup=("id", "source_id"),
    order=("id",),
)
COLLECTIONS = TableSpec(
    "flow_collections",
    _schema(("collector_id", _S), ("member_id", _S)),
    lookup=("collector_id", "member_id"),
)
SEGMENTS = TableSpec(
    "segments",
    _schema(
        ("flow_id", _S),
        ("start_ns", _I),
        ("end_ns", _I),
        ("start_key", _B),
        ("end_key", _B),
        ("timerange", _S),
        ("object_id", _S),
        ("fields", _S),  # JSON: the client's other fields
        ("external_urls", _S),  # JSON: get_urls the client gave
    ),
    order=("flow_id", "start_key"),
)
OBJECTS = TableSpec(
    "objects",
    _schema(
        ("id", _S),
        ("storage_id", _S),  # null: an external object, its bytes are elsewhere
        ("allocated_for", _S),  # the flow that allocated it, until first registered
        ("first_referenced_by", _S),
        ("segments", _I),  # segments referencing it, over all flows
        ("allocated_at", _F),
        ("unreferenced_since", _F),
    ),
    lookup=("id",),
)
OBJECT_FLOWS = TableSpec(
    "object_flows",
    _schema(("object_id", _S), ("flow_id", _S), ("segments", _I)),
    lookup=("object_id",),
    order=("object_id", "flow_id"),
)
WEBHOOKS = TableSpec(
    "webhooks",
    _schema(("seq", _I), ("url", _S), ("api_key_name", _S), ("api_key_value", _S), ("doc", _S)),
    order=("seq",),
)
DELETE_REQUESTS = TableSpec(
    "delete_requests",
    _schema(("id", _S), ("seq", _I), ("status", _S), ("doc", _S)),
    lookup=("id",),
    order=("seq",),
)
TABLES = (META, SOURCES, FLOWS, COLLECTIONS, SEGMENTS, OBJECTS, OBJECT_FLOWS, WEBHOOKS, DELETE_REQUESTS)

SEGMENT_COLUMNS = ("timerange", "object_id", "fields", "external_urls")
# A batch of posted segments is checked against the stored ones it spans, read in one select,
# unless they are more than this; then each segment is checked with a select of its own.
SPAN_READ_LIMIT = 10_000
SCAN_CHUNK = 256  # rows per select when listing sources or flows
ID_CHUNK = 1000  # ids per isin
RETRIES = 10
WINDOW_NS = 10**9  # on engines that sort on the client: first window of start times, per wanted row


# --- time predicates ---------------------------------------------------------------------------


def _key_bytes(key: tuple[int, int, int]) -> bytes:
    return encode_key(key[1], key[2])


def _ends_at_or_after(key: tuple[int, int, int]) -> Where | None:
    """Segments whose end key is >= ``key`` (None: every segment)."""
    tier, ns, _ = key
    if tier == 0:
        return ALL
    if tier == 2:
        return None
    return (col("end_ns") >= saturate(ns)) & (col("end_key") >= _key_bytes(key))


def _starts_at_or_before(key: tuple[int, int, int]) -> Where | None:
    tier, ns, _ = key
    if tier == 2:
        return ALL
    if tier == 0:
        return None
    return (col("start_ns") <= saturate(ns)) & (col("start_key") <= _key_bytes(key))


def overlapping(flow_id: str, query: TimeRange) -> Where | None:
    """Segments of a flow overlapping ``query``; None when none can."""
    if query.is_empty:
        return None
    return _conjoin(
        col("flow_id") == flow_id, _starts_at_or_before(query.end_key()), _ends_at_or_after(query.start_key())
    )


def covered(flow_id: str, query: TimeRange, object_id: str | None) -> Where | None:
    """Segments of a flow wholly inside ``query`` (and of ``object_id``)."""
    if query.is_empty:
        return None
    s_tier, s_ns, _ = query.start_key()
    e_tier, e_ns, _ = query.end_key()
    where = col("flow_id") == flow_id
    if s_tier == 1:
        where &= (col("start_ns") >= saturate(s_ns)) & (col("start_key") >= _key_bytes(query.start_key()))
    if e_tier == 1:
        where &= (col("end_ns") <= saturate(e_ns)) & (col("end_key") <= _key_bytes(query.end_key()))
    if object_id is not None:
        where &= col("object_id") == object_id
    return where


def _after_cursor(key: tuple[int, int, int], reverse: bool) -> Where | None:
    """Segments after (or, in reverse, before) the start key a page cursor names."""
    tier, ns, _ = key
    if not reverse:
        if tier == 0:
            return ALL
        if tier == 2:
            return None
        return (col("start_ns") >= saturate(ns)) & (col("start_key") > _key_bytes(key))
    if tier == 2:
        return ALL
    if tier == 0:
        return None
    return (col("start_ns") <= saturate(ns)) & (col("start_key") < _key_bytes(key))


def _latest(*bounds: int | None) -> int | None:
    """The latest of some lower bounds (None: unbounded)."""
    known = [b for b in bounds if b is not None]
    return max(known) if known else None


def _earliest(*bounds: int | None) -> int | None:
    """The earliest of some upper bounds (None: unbounded)."""
    known = [b for b in bounds if b is not None]
    return min(known) if known else None


def _conjoin(*parts: Where | None) -> Where | None:
    result = ALL
    for part in parts:
        if part is None:
            return None
        result = result & part
    return result


# --- rows <-> TAMS values ----------------------------------------------------------------------


def _segment_row(flow_id: str, segment: rules.Segment) -> Json:
    tr = segment.timerange
    start, end = tr.start_key(), tr.end_key()
    return {
        "flow_id": flow_id,
        "start_ns": saturate(start[1]),
        "end_ns": saturate(end[1]),
        "start_key": _key_bytes(start),
        "end_key": _key_bytes(end),
        "timerange": str(tr),
        "object_id": segment.object_id,
        "fields": json.dumps(segment.fields),
        "external_urls": json.dumps(segment.external_urls),
    }


def _segment(row: Json) -> rules.Segment:
    return rules.Segment(
        row["object_id"],
        TimeRange.parse(row["timerange"]),
        json.loads(row["fields"]),
        json.loads(row["external_urls"]),
    )


@dataclass
class _FlowRecord:
    flow: Json  # as the memory backend stores it (segments_updated included)
    extent: TimeRange
    row_id: Any = None


def _flow_record(row: Json) -> _FlowRecord:
    flow = json.loads(row["doc"])
    if row.get("segments_updated") is not None:
        flow["segments_updated"] = row["segments_updated"]
    extent = TimeRange.parse(row["extent"]) if row.get("extent") else TimeRange.never()
    return _FlowRecord(flow, extent, row.get(ROW_ID))


def _flow_row(record: _FlowRecord) -> Json:
    flow = record.flow
    doc = {k: v for k, v in flow.items() if k != "segments_updated"}
    return {
        "id": flow["id"],
        "source_id": flow["source_id"],
        "format": flow.get("format"),
        "codec": flow.get("codec"),
        "label": flow.get("label"),
        "doc": json.dumps(doc),
        "segments_updated": flow.get("segments_updated"),
        "extent": str(record.extent),
    }


def _source_row(source: Json) -> Json:
    return {"id": source["id"], "format": source.get("format"), "label": source.get("label"), "doc": json.dumps(source)}


@dataclass
class _Effects:
    """What a transaction does besides writing: events to publish and work to start after commit."""

    wanted: bool = True  # False when no receiver would get an event: skip building them
    events: list[events.Event] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)


@dataclass
class _ObjectState:
    row: Json
    new: bool = False
    dirty: bool = False


class TabularBackend(Backend):
    """A TAMS store whose state lives in the tables of ``engine``; media in ``stores``."""

    def __init__(
        self,
        engine: TableEngine,
        stores: Iterable[ObjectStore],
        services: BackendServices,
        locks: LockManager | None = None,
        owns_engine: bool = True,
    ) -> None:
        self._engine = engine
        self._owns_engine = owns_engine
        self._stores = {s.info.id: s for s in stores}
        self._events = services.events
        self._policy = services.policy
        self._locks = locks or LockManager()
        self._worker = BackgroundWorker(self, services.policy)
        engine.ensure_tables(TABLES)
        self._webhooks: list[Json] | None = None
        self._webhooks_lock = threading.Lock()
        self._closed = False

    @property
    def engine(self) -> TableEngine:
        return self._engine

    # --- units of work ---------------------------------------------------------------------
    def _read(self, body: Callable[[Transaction], T]) -> T:
        for attempt in range(RETRIES):
            try:
                with self._engine.transaction(write=False) as tx:
                    return body(tx)
            except Conflict as exc:
                if attempt == RETRIES - 1:
                    raise EngineUnavailable(f"the store stays busy: {exc}") from exc
                time.sleep(0.001 * (attempt + 1))
        raise AssertionError("unreachable")

    def _write(self, body: Callable[[Transaction, _Effects], T]) -> T:
        """Run ``body`` in a write transaction (again on a conflict); then publish its effects.

        The caller holds the operation's locks, so the transaction begins after them.
        """
        for attempt in range(RETRIES):
            effects = _Effects(wanted=self._wants_events())
            try:
                with self._engine.transaction(write=True) as tx:
                    result = body(tx, effects)
            except Conflict as exc:
                if attempt == RETRIES - 1:
                    raise EngineUnavailable(f"the store stays busy: {exc}") from exc
                log.debug("transaction conflict, retrying (%d)", attempt + 1)
                time.sleep(0.002 * (attempt + 1))
                continue
            for event in effects.events:
                self._events.publish(event)
            for action in effects.after:
                action()
            return result
        raise AssertionError("unreachable")

    def _wants_events(self) -> bool:
        """Whether an event could reach anyone: not when the sink discards them, nor when it is a
        webhook dispatcher whose registrations (this store's) are empty."""
        if isinstance(self._events, events.DiscardEvents):
            return False
        registrations = getattr(self._events, "registrations", None)
        if callable(registrations):
            try:
                return bool(registrations())
            except Exception:
                return True
        return True

    # --- small reads -----------------------------------------------------------------------
    @staticmethod
    def _rows(tx: Transaction, spec: TableSpec, where: Where, row_ids: bool = False, **kw: Any) -> list[Json]:
        return tx.select(spec.name, where=where, row_ids=row_ids, **kw).to_pylist()

    def _rows_in(
        self, tx: Transaction, spec: TableSpec, column: str, values: Iterable[str], extra: Where = ALL, **kw: Any
    ) -> list[Json]:
        found: list[Json] = []
        for part in chunks(sorted(set(values)), ID_CHUNK):
            found += self._rows(tx, spec, col(column).isin(part) & extra, **kw)
        return found

    def _meta(self, tx: Transaction, key: str) -> tuple[str | None, Any]:
        rows = self._rows(tx, META, col("key") == key, row_ids=True)
        return (rows[0]["value"], rows[0][ROW_ID]) if rows else (None, None)

    def _set_meta(self, tx: Transaction, key: str, value: str) -> None:
        _, row_id = self._meta(tx, key)
        if row_id is None:
            tx.insert(META.name, META.rows([{"key": key, "value": value}]))
        else:
            tx.update(META.name, _changes(META, [row_id], [{"value": value}]))

    def _source_doc(self, tx: Transaction, source_id: str) -> tuple[Json, Any] | None:
        rows = self._rows(tx, SOURCES, col("id") == source_id, row_ids=True)
        return (json.loads(rows[0]["doc"]), rows[0][ROW_ID]) if rows else None

    def _source(self, tx: Transaction, source_id: str) -> tuple[Json, Any]:
        found = self._source_doc(tx, source_id)
        if found is None:
            raise NotFound(f"source {source_id} not found")
        return found

    def _flow_or_none(self, tx: Transaction, flow_id: str) -> _FlowRecord | None:
        rows = self._rows(tx, FLOWS, col("id") == flow_id, row_ids=True)
        return _flow_record(rows[0]) if rows else None

    def _flow(self, tx: Transaction, flow_id: str) -> _FlowRecord:
        record = self._flow_or_none(tx, flow_id)
        if record is None:
            raise NotFound(f"flow {flow_id} not found")
        return record

    def _flow_exists(self, tx: Transaction, flow_id: str) -> bool:
        return bool(self._rows(tx, FLOWS, col("id") == flow_id, columns=["id"]))

    def _save_flow(self, tx: Transaction, record: _FlowRecord) -> None:
        row = _flow_row(record)
        if record.row_id is None:
            tx.insert(FLOWS.name, FLOWS.rows([row]))
        else:
            tx.update(FLOWS.name, _changes(FLOWS, [record.row_id], [row]))

    def _flows_of_source(self, tx: Transaction, source_id: str) -> list[Json]:
        rows = self._rows(tx, FLOWS, col("source_id") == source_id, order=[Order("id")])
        return [_flow_record(r).flow for r in rows]

    def _collectors_of(self, tx: Transaction, member_ids: Iterable[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for row in self._rows_in(tx, COLLECTIONS, "member_id", member_ids):
            found.setdefault(row["member_id"], set()).add(row["collector_id"])
        return found

    def _source_ids(self, tx: Transaction, flow_ids: Iterable[str]) -> dict[str, str]:
        return {r["id"]: r["source_id"] for r in self._rows_in(tx, FLOWS, "id", flow_ids, columns=["id", "source_id"])}

    # --- views -----------------------------------------------------------------------------
    def _source_view(self, tx: Transaction, source: Json) -> Json:
        source_id = source["id"]
        flows = self._flows_of_source(tx, source_id)
        collectors_by_member = self._collectors_of(tx, [f["id"] for f in flows])
        collectors = set().union(*collectors_by_member.values()) if collectors_by_member else set()
        members = {m for f in flows for m in rules.collection_members(f)}
        source_of = self._source_ids(tx, members | collectors)
        collection, collected_by = rules.source_collections(source_id, flows, source_of.get, collectors)
        return rules.source_view(source, collection, collected_by)

    def _source_view_by_id(self, tx: Transaction, source_id: str) -> Json:
        return self._source_view(tx, self._source(tx, source_id)[0])

    def _flow_view(self, tx: Transaction, flow: Json) -> Json:
        return rules.flow_view(flow, self._collectors_of(tx, [flow["id"]]).get(flow["id"], ()))

    def _flow_event(self, tx: Transaction, fx: _Effects, kind: str, flow: Json, payload: Json | None = None) -> None:
        if not fx.wanted:
            return
        view = self._flow_view(tx, flow)
        source = self._source_view_by_id(tx, flow["source_id"])
        fx.events.append(events.flow_event(kind, view, source, payload))

    # --- service -------------------------------------------------------------------------------
    def service_info(self) -> Json:
        stored = self._read(lambda tx: self._meta(tx, "service")[0])
        return {"type": rules.SERVICE_TYPE, "api_version": rules.API_VERSION, **json.loads(stored or "{}")}

    def update_service_info(self, changes: Json) -> None:
        def body(tx: Transaction, fx: _Effects) -> None:
            service = json.loads(self._meta(tx, "service")[0] or "{}")
            service.update({k: v for k, v in changes.items() if k in ("name", "description")})
            self._set_meta(tx, "service", json.dumps(service))

        with self._locks.session() as held:
            held.catalog()
            self._write(body)

    def storage_backends(self) -> list[Json]:
        return [s.info.to_json() for s in self._stores.values()]

    # --- sources -------------------------------------------------------------------------------
    def list_sources(self, query: SourceQuery, page: PageRequest) -> Page[Json]:
        where = ALL
        if query.label is not None:
            where &= col("label") == query.label
        if query.format is not None:
            where &= col("format") == query.format

        def body(tx: Transaction) -> Page[Json]:
            def views(rows: list[Json]) -> list[Json]:
                sources = [json.loads(r["doc"]) for r in rows]
                return [v for v in (self._source_view(tx, s) for s in sources) if rules.matches_source(v, query)]

            return self._scan_page(tx, SOURCES, where, page, views)

        return self._read(body)

    def _scan_page(
        self,
        tx: Transaction,
        spec: TableSpec,
        where: Where,
        page: PageRequest,
        select: Callable[[list[Json]], list[Json]],
    ) -> Page[Json]:
        """``rules.paged`` over a table sorted by id, read in chunks until the page is full."""
        limit = rules.page_limit(page.limit)
        after = rules.decode_cursor(page.page) if page.page is not None else None
        chosen: list[Json] = []
        while True:
            bound = where if after is None else where & (col("id") > after)
            rows = self._rows(tx, spec, bound, order=[Order("id")], limit=SCAN_CHUNK)
            chosen += select(rows)
            if len(chosen) > limit or len(rows) < SCAN_CHUNK:
                break
            after = rows[-1]["id"]
        more = len(chosen) > limit
        chosen = chosen[:limit]
        return Page(chosen, limit, rules.encode_cursor(chosen[-1]["id"]) if more else None)

    def get_source(self, source_id: str) -> Json:
        return self._read(lambda tx: self._source_view_by_id(tx, source_id))

    def _change_source(self, source_id: str, change: Callable[[Json], None]) -> None:
        def body(tx: Transaction, fx: _Effects) -> None:
            source, row_id = self._source(tx, source_id)
            change(source)
            tx.update(SOURCES.name, _changes(SOURCES, [row_id], [_source_row(source)]))
            if fx.wanted:
                fx.events.append(events.source_event(events.SOURCE_UPDATED, self._source_view(tx, source)))

        with self._locks.session() as held:
            held.catalog()
            self._write(body)

    def set_source_tag(self, source_id: str, name: str, value: str | None) -> None:
        self._change_source(source_id, lambda s: rules.set_tag(s, name, value, "updated"))

    def set_source_field(self, source_id: str, name: SourceField, value: str | None) -> None:
        self._change_source(source_id, lambda s: rules.set_field(s, name, value, "updated"))

    # --- flows ---------------------------------------------------------------------------------
    def list_flows(self, query: FlowQuery, page: PageRequest) -> Page[Json]:
        where = ALL
        for column in ("source_id", "format", "codec", "label"):
            value = getattr(query, column)
            if value is not None:
                where &= col(column) == value

        def body(tx: Transaction) -> Page[Json]:
            def views(rows: list[Json]) -> list[Json]:
                records = [_flow_record(r) for r in rows]
                chosen = [
                    r
                    for r in records
                    if rules.matches_flow(r.flow, query)
                    and rules.matches_flow_timerange(self._ranges_overlapping(tx, r, query.timerange), query.timerange)
                ]
                collectors = self._collectors_of(tx, [r.flow["id"] for r in chosen])
                return [rules.flow_view(r.flow, collectors.get(r.flow["id"], ())) for r in chosen]

            return self._scan_page(tx, FLOWS, where, page, views)

        return self._read(body)

    def _ranges_overlapping(self, tx: Transaction, record: _FlowRecord, query: TimeRange | None) -> list[TimeRange]:
        """At most one segment timerange of the flow overlapping ``query`` (any, when None or empty)."""
        if query is None or query.is_empty or query.is_eternity:
            return [record.extent] if not record.extent.is_empty else []
        if not record.extent.overlaps(query):
            return []
        where = overlapping(record.flow["id"], query)
        rows = [] if where is None else self._rows(tx, SEGMENTS, where, columns=["timerange"], limit=1)
        return [TimeRange.parse(r["timerange"]) for r in rows]

    def get_flow(self, flow_id: str, include_timerange: bool = False, timerange: TimeRange | None = None) -> Json:
        def body(tx: Transaction) -> Json:
            record = self._flow(tx, flow_id)
            view = self._flow_view(tx, record.flow)
            if include_timerange:
                view["timerange"] = rules.flow_timerange_view(record.extent, timerange)
            return view

        return self._read(body)

    def put_flow(self, flow_id: str, flow: Json) -> tuple[Json, bool]:
        def body(tx: Transaction, fx: _Effects) -> tuple[Json, bool]:
            existing = self._flow_or_none(tx, flow_id)
            stamp = rules.now()
            stored = rules.prepare_flow(flow_id, flow, existing.flow if existing else None, stamp)
            rules.check_collection(stored, lambda f: self._flow_exists(tx, f))
            record = _FlowRecord(
                stored,
                existing.extent if existing else TimeRange.never(),
                existing.row_id if existing else None,
            )
            self._save_flow(tx, record)
            if existing is not None:
                self._drop_collection_edges(tx, flow_id)
                if existing.flow["source_id"] != stored["source_id"]:
                    self._leave_source(tx, fx, existing.flow["source_id"])
            new_source = self._source_doc(tx, stored["source_id"]) is None
            if new_source:
                tx.insert(SOURCES.name, SOURCES.rows([_source_row(rules.new_source(stored, stamp))]))
            members = rules.collection_members(stored)
            if members:
                edges = [{"collector_id": flow_id, "member_id": m} for m in dict.fromkeys(members)]
                tx.insert(COLLECTIONS.name, COLLECTIONS.rows(edges))
            if new_source and fx.wanted:
                source = self._source_view_by_id(tx, stored["source_id"])
                fx.events.append(events.source_event(events.SOURCE_CREATED, source))
            self._flow_event(tx, fx, events.FLOW_UPDATED if existing else events.FLOW_CREATED, stored)
            return self._flow_view(tx, stored), existing is None

        with self._locks.session() as held:
            held.catalog().flows([flow_id])
            return self._write(body)

    def _drop_collection_edges(self, tx: Transaction, collector_id: str) -> None:
        rows = self._rows(tx, COLLECTIONS, col("collector_id") == collector_id, row_ids=True, columns=[])
        tx.delete(COLLECTIONS.name, [r[ROW_ID] for r in rows])

    def _leave_source(self, tx: Transaction, fx: _Effects, source_id: str) -> None:
        """A source goes with its last flow (call once the flow no longer names it)."""
        if self._rows(tx, FLOWS, col("source_id") == source_id, columns=["id"], limit=1):
            return
        source, row_id = self._source(tx, source_id)
        view = self._source_view(tx, source) if fx.wanted else None
        tx.delete(SOURCES.name, [row_id])
        if view is not None:
            fx.events.append(events.source_event(events.SOURCE_DELETED, view, {"source_id": source_id}))

    def delete_flow(self, flow_id: str) -> Json | None:
        with self._locks.session() as held:
            held.catalog()
            collectors = self._read(lambda tx: self._collectors_of(tx, [flow_id]).get(flow_id, set()))
            held.flows([flow_id, *collectors]).requests().all_objects()

            def body(tx: Transaction, fx: _Effects) -> Json | None:
                record = self._flow(tx, flow_id)
                rules.ensure_writable(record.flow)
                threshold = self._policy.async_delete_threshold
                where = col("flow_id") == flow_id
                if len(self._rows(tx, SEGMENTS, where, columns=["start_ns"], limit=threshold + 1)) > threshold:
                    return self._start_deletion(tx, fx, record.flow, TimeRange.eternity(), None, delete_flow=True)
                self._remove_flow(tx, fx, record, announce=True)
                return None

            return self._write(body)

    def _remove_flow(self, tx: Transaction, fx: _Effects, record: _FlowRecord, announce: bool) -> None:
        """Remove a flow, its segments and its place in collections; ``announce`` raises flows/deleted."""
        flow = record.flow
        flow_id = flow["id"]
        announce = announce and fx.wanted
        if announce:
            view = self._flow_view(tx, flow)
            source = self._source_view_by_id(tx, flow["source_id"])
        stamp = rules.now()
        rows = self._rows(tx, SEGMENTS, col("flow_id") == flow_id, row_ids=True, columns=["object_id"])
        tx.delete(SEGMENTS.name, [r[ROW_ID] for r in rows])
        self._drop_references(tx, flow_id, [r["object_id"] for r in rows])
        # Flows that collected this one no longer can: drop it from their collections.
        edges = self._rows(tx, COLLECTIONS, col("member_id") == flow_id, row_ids=True)
        for collector_id in sorted({e["collector_id"] for e in edges}):
            owner = self._flow(tx, collector_id)
            remaining = [i for i in owner.flow.get("flow_collection") or [] if i["id"] != flow_id]
            rules.set_field(owner.flow, "flow_collection", remaining or None, "metadata_updated", stamp)
            self._save_flow(tx, owner)
        tx.delete(COLLECTIONS.name, [e[ROW_ID] for e in edges])
        # Objects it allocated but never registered become free for any flow to register.
        allocated = self._rows(tx, OBJECTS, col("allocated_for") == flow_id, row_ids=True, columns=[])
        if allocated:
            ids = [r[ROW_ID] for r in allocated]
            tx.update(OBJECTS.name, _changes(OBJECTS, ids, [{"allocated_for": None}] * len(ids)))
        self._drop_collection_edges(tx, flow_id)
        tx.delete(FLOWS.name, [record.row_id])
        if announce:
            fx.events.append(events.flow_event(events.FLOW_DELETED, view, source, {"flow_id": flow_id}))
        self._leave_source(tx, fx, flow["source_id"])

    def _change_flow(self, flow_id: str, change: Callable[[Transaction, _FlowRecord], None]) -> None:
        def body(tx: Transaction, fx: _Effects) -> None:
            record = self._flow(tx, flow_id)
            change(tx, record)
            self._save_flow(tx, record)
            self._flow_event(tx, fx, events.FLOW_UPDATED, record.flow)

        with self._locks.session() as held:
            held.catalog().flows([flow_id])
            self._write(body)

    def set_flow_tag(self, flow_id: str, name: str, value: str | None) -> None:
        def change(tx: Transaction, record: _FlowRecord) -> None:
            rules.ensure_writable(record.flow)
            rules.set_tag(record.flow, name, value, "metadata_updated")

        self._change_flow(flow_id, change)

    def set_flow_field(self, flow_id: str, name: FlowField, value: Any) -> None:
        def change(tx: Transaction, record: _FlowRecord) -> None:
            flow = record.flow
            if name != "read_only":
                rules.ensure_writable(flow)
            if name == "flow_collection":
                rules.check_collection({**flow, "flow_collection": value or []}, lambda f: self._flow_exists(tx, f))
                self._drop_collection_edges(tx, flow_id)
                members = list(dict.fromkeys(item["id"] for item in value or []))
                if members:
                    edges = [{"collector_id": flow_id, "member_id": m} for m in members]
                    tx.insert(COLLECTIONS.name, COLLECTIONS.rows(edges))
            rules.set_field(flow, name, value, "metadata_updated")

        self._change_flow(flow_id, change)

    # --- segments ------------------------------------------------------------------------------
    def list_segments(self, flow_id: str, query: SegmentQuery, urls: UrlOptions, page: PageRequest) -> SegmentPage:
        limit = rules.page_limit(page.limit)
        cursor = rules.segment_cursor_key(page.page) if page.page is not None else None
        where = overlapping(flow_id, query.timerange)
        if cursor is not None:
            where = _conjoin(where, _after_cursor(cursor, query.reverse_order))
        if query.object_id is not None:
            where = _conjoin(where, col("object_id") == query.object_id)

        def body(tx: Transaction) -> SegmentPage:
            if where is None:
                return SegmentPage([], limit, None, TimeRange.never())
            rows = self._page_of_segments(tx, flow_id, where, query, cursor, limit + 1)
            chosen = [_segment(r) for r in rows[:limit]]
            next_key = rules.encode_cursor(str(chosen[-1].timerange)) if len(rows) > limit else None
            storage = self._storage_ids(tx, [s.object_id for s in chosen]) if urls.accept_get_urls != () else {}
            items = [rules.segment_view(s, self._get_urls(s, storage, urls)) for s in chosen]
            return SegmentPage(items, limit, next_key, rules.segments_extent(chosen))

        return self._read(body)

    def _page_of_segments(
        self,
        tx: Transaction,
        flow_id: str,
        where: Where,
        query: SegmentQuery,
        cursor: tuple[int, int, int] | None,
        need: int,
    ) -> list[Json]:
        """The first ``need`` segments of a listing, in order; reads only about a page of rows.

        Matching segments start within the flow's extent (kept by every segment write and delete,
        in the same transaction, under the flow's lock), before the query's end and after the
        cursor. At most one starts before the query's start (segments of a flow never overlap):
        going forward, it is read on its own, so the read of the others starts at the query's
        start rather than walking from the flow's first segment.
        """
        columns = list(SEGMENT_COLUMNS)
        if not self._engine.sorts_on_client:
            return self._in_start_order(tx, where, need, query.reverse_order, None, None, columns)
        record = self._flow_or_none(tx, flow_id)
        if record is None or record.extent.is_empty:
            return []
        lo, hi = record.extent.start, _earliest(record.extent.end, query.timerange.end)
        if cursor is not None and cursor[0] == 1:  # segments after the cursor's start (before, in reverse)
            lo, hi = (lo, _earliest(hi, cursor[1])) if query.reverse_order else (_latest(lo, cursor[1]), hi)
        first: list[Json] = []
        q_start = query.timerange.start
        if not query.reverse_order and cursor is None and q_start is not None and (lo is None or q_start > lo):
            before = where & (col("start_ns") < saturate(q_start))
            first = self._rows(tx, SEGMENTS, before, columns=columns, order=[Order("start_key")])
            lo = q_start
        rest = self._in_start_order(tx, where, need - len(first), query.reverse_order, lo, hi, columns)
        return (first + rest)[:need]

    def _storage_ids(self, tx: Transaction, object_ids: Iterable[str]) -> dict[str, str | None]:
        rows = self._rows_in(tx, OBJECTS, "id", object_ids, columns=["id", "storage_id"])
        return {r["id"]: r["storage_id"] for r in rows}

    def _controlled_urls(self, segment: rules.Segment, storage_id: str | None) -> list[rules.ControlledUrl]:
        store = self._stores.get(storage_id) if storage_id is not None else None
        if store is None:
            return []
        url, presigned = store.download_url(segment.object_id)
        return [rules.ControlledUrl(url, presigned, store.info)]

    def _get_urls(
        self, segment: rules.Segment, storage: dict[str, str | None], options: UrlOptions
    ) -> list[Json] | None:
        if options.accept_get_urls == ():
            return None  # the client wants no URLs: skip signing them
        controlled = self._controlled_urls(segment, storage.get(segment.object_id))
        return rules.get_urls(segment, controlled, options)

    def add_segments(self, flow_id: str, segments: list[Json]) -> list[FailedSegment]:
        object_ids = [b["object_id"] for b in segments if isinstance(b.get("object_id"), str)]
        with self._locks.session() as held:
            held.flows([flow_id]).objects(object_ids)
            return self._write(lambda tx, fx: self._add_segments(tx, fx, flow_id, segments))

    def _add_segments(self, tx: Transaction, fx: _Effects, flow_id: str, bodies: list[Json]) -> list[FailedSegment]:
        record = self._flow(tx, flow_id)
        rules.check_segment_post(record.flow)
        labels = [s.info.label for s in self._stores.values()]
        parsed: list[tuple[Json, rules.Segment | TamsError]] = []
        for body in bodies:
            try:
                parsed.append((body, rules.parse_segment(body, labels)))
            except TamsError as exc:
                parsed.append((body, exc))
        valid = [s for _, s in parsed if isinstance(s, rules.Segment)]
        checker = _OverlapChecker(self, tx, flow_id, valid)
        objects = self._object_states(tx, [s.object_id for s in valid])
        references = self._flow_references(tx, flow_id, [s.object_id for s in valid])
        failed: list[FailedSegment] = []
        added: list[rules.Segment] = []
        clock = time.time()
        for body, segment in parsed:
            try:
                if isinstance(segment, TamsError):
                    raise segment
                checker.check(segment)
                self._reference(objects, references, segment.object_id, flow_id, clock)
                checker.accept(segment)
                added.append(segment)
            except TamsError as exc:
                failed.append(FailedSegment(body.get("object_id", ""), body.get("timerange"), exc.summary))
        if added:
            tx.insert(SEGMENTS.name, SEGMENTS.rows([_segment_row(flow_id, s) for s in added]))
            self._save_objects(tx, objects)
            self._save_references(tx, flow_id, references)
            record.flow["segments_updated"] = rules.now()
            for segment in added:
                record.extent = record.extent.extend_to_encompass(segment.timerange)
            changed = {"segments_updated": record.flow["segments_updated"], "extent": str(record.extent)}
            tx.update(FLOWS.name, _changes(FLOWS, [record.row_id], [changed]))
            if not fx.wanted:
                return failed
            views = [
                rules.segment_view(
                    s, rules.all_get_urls(s, self._controlled_urls(s, objects[s.object_id].row["storage_id"]))
                )
                for s in added
            ]
            self._flow_event(tx, fx, events.SEGMENTS_ADDED, record.flow, {"flow_id": flow_id, "segments": views})
        return failed

    def _object_states(self, tx: Transaction, object_ids: Iterable[str]) -> dict[str, _ObjectState]:
        return {r["id"]: _ObjectState(r) for r in self._rows_in(tx, OBJECTS, "id", object_ids, row_ids=True)}

    def _flow_references(self, tx: Transaction, flow_id: str, object_ids: Iterable[str]) -> dict[str, _ObjectState]:
        rows = self._rows_in(tx, OBJECT_FLOWS, "object_id", object_ids, col("flow_id") == flow_id, row_ids=True)
        return {r["object_id"]: _ObjectState(r) for r in rows}

    @staticmethod
    def _reference(
        objects: dict[str, _ObjectState],
        references: dict[str, _ObjectState],
        object_id: str,
        flow_id: str,
        clock: float,
    ) -> None:
        """Count one more segment of ``flow_id`` on the object (``memory._add_segment``'s object half)."""
        state = objects.get(object_id)
        if state is None:
            row = {
                "id": object_id,
                "storage_id": None,
                "allocated_for": None,
                "first_referenced_by": None,
                "segments": 0,
                "allocated_at": clock,
                "unreferenced_since": None,
            }
            state = objects[object_id] = _ObjectState(row, new=True)
        elif state.row["allocated_for"] not in (None, flow_id):
            raise BadRequest(
                f"object {object_id} was allocated for flow {state.row['allocated_for']} and is not registered yet"
            )
        row = state.row
        row["allocated_for"] = None
        if not row["segments"]:
            row["first_referenced_by"] = flow_id
        row["segments"] += 1
        row["unreferenced_since"] = None
        state.dirty = True
        ref = references.get(object_id)
        if ref is None:
            ref = references[object_id] = _ObjectState(
                {"object_id": object_id, "flow_id": flow_id, "segments": 0}, new=True
            )
        ref.row["segments"] += 1
        ref.dirty = True

    def _save_objects(self, tx: Transaction, objects: dict[str, _ObjectState]) -> None:
        _save_states(tx, OBJECTS, objects.values())

    def _save_references(self, tx: Transaction, flow_id: str, references: dict[str, _ObjectState]) -> None:
        gone = [s.row[ROW_ID] for s in references.values() if s.row["segments"] <= 0 and not s.new]
        tx.delete(OBJECT_FLOWS.name, gone)
        _save_states(tx, OBJECT_FLOWS, [s for s in references.values() if s.row["segments"] > 0])

    def _drop_references(self, tx: Transaction, flow_id: str, object_ids: list[str]) -> None:
        """One segment of ``flow_id`` fewer per entry (``memory._drop_reference``)."""
        if not object_ids:
            return
        objects = self._object_states(tx, object_ids)
        references = self._flow_references(tx, flow_id, object_ids)
        clock = time.time()
        for object_id in object_ids:
            row = objects[object_id].row
            ref = references[object_id].row
            ref["segments"] -= 1
            references[object_id].dirty = True
            if ref["segments"] <= 0 and row["first_referenced_by"] == flow_id:
                row["first_referenced_by"] = None
            row["segments"] -= 1
            objects[object_id].dirty = True
        gone = []
        for state in objects.values():
            row = state.row
            if row["segments"] <= 0:
                if row["storage_id"] is None:
                    gone.append(row[ROW_ID])  # an external object nobody references is forgotten
                    state.dirty = False
                else:
                    row["unreferenced_since"] = clock
        tx.delete(OBJECTS.name, gone)
        self._save_objects(tx, objects)
        self._save_references(tx, flow_id, references)

    def delete_segments(self, flow_id: str, timerange: TimeRange, object_id: str | None) -> Json | None:
        def body(tx: Transaction, fx: _Effects) -> Json | None:
            record = self._flow(tx, flow_id)
            rules.ensure_writable(record.flow)
            threshold = self._policy.async_delete_threshold
            where = covered(flow_id, timerange, object_id)
            if (
                where is not None
                and len(self._rows(tx, SEGMENTS, where, columns=["start_ns"], limit=threshold + 1)) > threshold
            ):
                return self._start_deletion(tx, fx, record.flow, timerange, object_id, delete_flow=False)
            self._delete_covered(tx, fx, record, timerange, object_id, limit=None)
            return None

        with self._locks.session() as held:
            held.flows([flow_id]).requests().all_objects()
            return self._write(body)

    def _delete_covered(
        self,
        tx: Transaction,
        fx: _Effects,
        record: _FlowRecord,
        timerange: TimeRange,
        object_id: str | None,
        limit: int | None,
    ) -> TimeRange:
        """Delete covered segments (at most ``limit``); return the part of ``timerange`` still to do."""
        flow_id = record.flow["id"]
        where = covered(flow_id, timerange, object_id)
        rows = (
            []
            if where is None
            else self._in_start_order(
                tx,
                where,
                limit,
                False,
                _latest(timerange.start, record.extent.start),
                _earliest(timerange.end, record.extent.end),
                ["timerange", "object_id"],
                row_ids=True,
            )
        )
        if rows:
            tx.delete(SEGMENTS.name, [r[ROW_ID] for r in rows])
            self._drop_references(tx, flow_id, [r["object_id"] for r in rows])
            chosen = [TimeRange.parse(r["timerange"]) for r in rows]
            record.flow["segments_updated"] = rules.now()
            record.extent = self._extent(tx, flow_id, record.extent)
            self._save_flow(tx, record)
            extent = str(_span(chosen))
            self._flow_event(tx, fx, events.SEGMENTS_DELETED, record.flow, {"flow_id": flow_id, "timerange": extent})
        if limit is None or len(rows) < limit:
            return TimeRange.never()
        return rules.remaining_after(timerange, TimeRange.parse(rows[-1]["timerange"]))

    def _extent(self, tx: Transaction, flow_id: str, within: TimeRange) -> TimeRange:
        """The span of a flow's segments, from its first and last segment (all start ``within``)."""
        where = col("flow_id") == flow_id
        if within.is_empty:
            return TimeRange.never()
        first = self._in_start_order(tx, where, 1, False, within.start, within.end, ["timerange"])
        if not first:
            return TimeRange.never()
        last = self._in_start_order(tx, where, 1, True, within.start, within.end, ["timerange"])
        return TimeRange.parse(first[0]["timerange"]).extend_to_encompass(TimeRange.parse(last[0]["timerange"]))

    def _in_start_order(
        self,
        tx: Transaction,
        where: Where,
        need: int | None,
        reverse: bool,
        lo: int | None,
        hi: int | None,
        columns: list[str],
        row_ids: bool = False,
    ) -> list[Json]:
        """The first ``need`` segment rows matching ``where`` by start (last first with ``reverse``);
        every row that can match starts at ``lo`` ns or later and at ``hi`` or earlier (None: unbounded).

        An engine that sorts in the database does this in one select. One that sorts on the client
        (VAST DB returns rows in no order) would read every match to find the first few, so the rows
        are read in windows of start time from the near end of ``lo``-``hi``: the first window allows
        ``WINDOW_NS`` per wanted row, and a window that finds too few makes the next one wider
        (by the density seen, or four times when it found none), until enough rows or the far end.
        """
        order = [Order("start_key", reverse)]
        kw: dict[str, Any] = {"columns": columns, "order": order, "row_ids": row_ids}
        if need is None or not self._engine.sorts_on_client:
            return self._rows(tx, SEGMENTS, where, limit=need, **kw)
        lo = INT64_MIN if lo is None else saturate(lo)
        hi = INT64_MAX if hi is None else saturate(hi)
        if lo > hi or need <= 0:
            return []
        found: list[Json] = []
        width = need * WINDOW_NS
        near = hi if reverse else lo
        while True:
            w_lo, w_hi = (max(lo, near - width + 1), near) if reverse else (near, min(hi, near + width - 1))
            window = where & (col("start_ns") >= w_lo) & (col("start_ns") <= w_hi)
            rows = self._rows(tx, SEGMENTS, window, **kw)
            found += rows
            if len(found) >= need or (w_lo <= lo if reverse else w_hi >= hi):
                return found[:need]
            near = w_lo - 1 if reverse else w_hi + 1
            width = width * 4 if not rows else max(width * 2, width * (need - len(found)) // len(rows) * 5 // 4)

    # --- deletion requests ---------------------------------------------------------------------
    def _start_deletion(
        self,
        tx: Transaction,
        fx: _Effects,
        flow: Json,
        timerange: TimeRange,
        object_id: str | None,
        delete_flow: bool,
    ) -> Json:
        request = deletion.new_request(flow["id"], timerange, object_id, delete_flow)
        self._insert_request(tx, request)
        if delete_flow:
            self._flow_event(tx, fx, events.FLOW_DELETED, flow, {"flow_id": flow["id"]})
        fx.after.append(lambda: self._worker.submit(request["id"]))
        return deletion.request_view(request)

    def _insert_request(self, tx: Transaction, request: Json) -> None:
        rows = tx.select(DELETE_REQUESTS.name, ["seq"], order=[Order("seq", True)], limit=1).to_pylist()
        seq = rows[0]["seq"] + 1 if rows else 0
        row = {"id": request["id"], "seq": seq, "status": request["status"], "doc": json.dumps(request)}
        tx.insert(DELETE_REQUESTS.name, DELETE_REQUESTS.rows([row]))

    def load_delete_request(self, request_id: str) -> Json:
        rows = self._read(lambda tx: self._rows(tx, DELETE_REQUESTS, col("id") == request_id, columns=["doc"]))
        if not rows:
            raise KeyError(request_id)
        return json.loads(rows[0]["doc"])

    def save_delete_request(self, request: Json) -> None:
        def body(tx: Transaction, fx: _Effects) -> None:
            rows = self._rows(tx, DELETE_REQUESTS, col("id") == request["id"], row_ids=True, columns=[])
            if not rows:
                self._insert_request(tx, request)
                return
            changes = {"status": request["status"], "doc": json.dumps(request)}
            tx.update(DELETE_REQUESTS.name, _changes(DELETE_REQUESTS, [rows[0][ROW_ID]], [changes]))

        with self._locks.session() as held:
            held.requests()
            self._write(body)

    def delete_chunk(self, request: Json, limit: int) -> TimeRange:
        flow_id = request["flow_id"]

        def body(tx: Transaction, fx: _Effects) -> TimeRange:
            record = self._flow_or_none(tx, flow_id)
            if record is None:
                return TimeRange.never()
            remaining = TimeRange.parse(request["timerange_remaining"])
            return self._delete_covered(tx, fx, record, remaining, request.get("object_id"), limit)

        with self._locks.session() as held:
            held.flows([flow_id]).all_objects()
            return self._write(body)

    def finish_flow_delete(self, request: Json) -> None:
        flow_id = request["flow_id"]
        with self._locks.session() as held:
            held.catalog()
            collectors = self._read(lambda tx: self._collectors_of(tx, [flow_id]).get(flow_id, set()))
            held.flows([flow_id, *collectors]).all_objects()

            def body(tx: Transaction, fx: _Effects) -> None:
                record = self._flow_or_none(tx, flow_id)
                if record is not None:
                    self._remove_flow(tx, fx, record, announce=False)

            self._write(body)

    def list_delete_requests(self) -> list[Json]:
        def body(tx: Transaction, fx: _Effects) -> list[Json]:
            rows = self._rows(tx, DELETE_REQUESTS, ALL, row_ids=True, order=[Order("seq")])
            requests = [(r[ROW_ID], json.loads(r["doc"])) for r in rows]
            tx.delete(DELETE_REQUESTS.name, [row_id for row_id, r in requests if deletion.expired(r)])
            return [deletion.request_view(r) for _, r in requests if not deletion.expired(r)]

        with self._locks.session() as held:
            held.requests()
            return self._write(body)

    def get_delete_request(self, request_id: str) -> Json:
        rows = self._read(lambda tx: self._rows(tx, DELETE_REQUESTS, col("id") == request_id, columns=["doc"]))
        request = json.loads(rows[0]["doc"]) if rows else None
        if request is None or deletion.expired(request):
            raise NotFound(f"deletion request {request_id} not found")
        return deletion.request_view(request)

    def resume_deletions(self) -> list[str]:
        """Queue the deletion requests a stop interrupted (status created or started)."""
        where = col("status").isin(["created", "started"])
        rows = self._read(lambda tx: self._rows(tx, DELETE_REQUESTS, where, columns=["id"], order=[Order("seq")]))
        for row in rows:
            log.info("resuming deletion request %s", row["id"])
            self._worker.submit(row["id"])
        return [r["id"] for r in rows]

    # --- storage and objects -------------------------------------------------------------------
    def allocate_storage(self, flow_id: str, request: StorageRequest) -> Json:
        def body(tx: Transaction, fx: _Effects) -> Json:
            record = self._flow(tx, flow_id)
            rules.check_storage_request(record.flow, request)
            info = rules.choose_storage([s.info for s in self._stores.values()], request.storage_id)
            store = self._stores[info.id]
            if request.object_ids is not None:
                ids = list(request.object_ids)
                existing = {r["id"] for r in self._rows_in(tx, OBJECTS, "id", ids, columns=["id"])}
                taken = [i for i in ids if i in existing]
                if taken or len(set(ids)) != len(ids):
                    raise BadRequest(f"object ids already exist or repeat: {', '.join(taken) or 'duplicates'}")
            else:
                ids = [store.new_object_id() for _ in range(request.limit or rules.DEFAULT_STORAGE_LIMIT)]
            content_type = record.flow["container"]
            clock = time.time()
            rows = [
                {"id": i, "storage_id": info.id, "allocated_for": flow_id, "segments": 0, "allocated_at": clock}
                for i in ids
            ]
            tx.insert(OBJECTS.name, OBJECTS.rows(rows))
            return {"media_objects": [{"object_id": i, "put_url": store.upload_url(i, content_type)} for i in ids]}

        with self._locks.session() as held:
            held.flows([flow_id]).objects(request.object_ids or ())
            return self._write(body)

    def get_object(self, object_id: str, page: PageRequest) -> tuple[Json, Page[str]]:
        def body(tx: Transaction) -> tuple[Json, Page[str]]:
            rows = self._rows(tx, OBJECTS, col("id") == object_id)
            if not rows:
                raise NotFound(f"object {object_id} not found")
            refs = self._rows(tx, OBJECT_FLOWS, col("object_id") == object_id, columns=["flow_id", "segments"])
            flows = rules.paged(sorted(r["flow_id"] for r in refs if r["segments"] > 0), page, key=None)
            result: Json = {"id": object_id, "referenced_by_flows": flows.items}
            if rows[0]["first_referenced_by"] is not None:
                result["first_referenced_by_flow"] = rows[0]["first_referenced_by"]
            return result, flows

        return self._read(body)

    def object_store(self, storage_id: str) -> ObjectStore | None:
        return self._stores.get(storage_id)

    def reclaim_objects(self) -> int:
        """Forget objects past their grace period and delete their bytes."""
        clock = time.time()
        policy = self._policy
        unused = col("storage_id").notnull() & (col("segments") == 0)

        def doomed(rows: list[Json]) -> list[Json]:
            return [
                r
                for r in rows
                if r["storage_id"] is not None
                and not r["segments"]
                and rules.reclaimable(
                    r["allocated_for"] is not None, r["allocated_at"], r["unreferenced_since"], clock, policy
                )
            ]

        candidates = doomed(self._read(lambda tx: self._rows(tx, OBJECTS, unused)))
        if not candidates:
            return 0
        with self._locks.session() as held:
            held.objects(r["id"] for r in candidates)

            def body(tx: Transaction, fx: _Effects) -> list[Json]:
                rows = doomed(self._rows_in(tx, OBJECTS, "id", [r["id"] for r in candidates], unused, row_ids=True))
                tx.delete(OBJECTS.name, [r[ROW_ID] for r in rows])
                return rows

            gone = self._write(body)
            for row in gone:
                store = self._stores.get(row["storage_id"])
                if store is not None:
                    store.delete(row["id"])
        return len(gone)

    # --- webhooks ------------------------------------------------------------------------------
    def _load_webhooks(self) -> list[Json]:
        with self._webhooks_lock:
            if self._webhooks is None:
                rows = self._read(lambda tx: self._rows(tx, WEBHOOKS, ALL, columns=["doc"], order=[Order("seq")]))
                self._webhooks = [json.loads(r["doc"]) for r in rows]
            return self._webhooks

    def list_webhooks(self) -> list[Json]:
        return [dict(w) for w in self._load_webhooks()]

    def register_webhook(self, webhook: Json) -> bool:
        webhook = events.prepare_webhook(webhook)
        identity = events.identity(webhook)

        def body(tx: Transaction, fx: _Effects) -> bool:
            where = ALL
            for name, value in zip(events.IDENTITY, identity, strict=True):
                where &= col(name) == value  # == None is isnull
            rows = self._rows(tx, WEBHOOKS, where, row_ids=True, columns=["seq"])
            if not webhook["events"]:
                tx.delete(WEBHOOKS.name, [r[ROW_ID] for r in rows])
                return False
            if rows:
                tx.update(WEBHOOKS.name, _changes(WEBHOOKS, [rows[0][ROW_ID]], [{"doc": json.dumps(webhook)}]))
            else:
                last = tx.select(WEBHOOKS.name, ["seq"], order=[Order("seq", True)], limit=1).to_pylist()
                row = dict(zip(events.IDENTITY, identity, strict=True))
                row.update(seq=last[0]["seq"] + 1 if last else 0, doc=json.dumps(webhook))
                tx.insert(WEBHOOKS.name, WEBHOOKS.rows([row]))
            return True

        with self._locks.session() as held:
            held.catalog()
            registered = self._write(body)
            with self._webhooks_lock:
                self._webhooks = None  # reloaded, in table order, on next use
            return registered

    # --- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._closed:
            return
        self._worker.start()
        self.resume_deletions()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._worker.close()
        self._locks.close()
        for object_store in self._stores.values():
            close = getattr(object_store, "close", None)
            if callable(close):
                close()
        if self._owns_engine:
            self._engine.close()


class _OverlapChecker:
    """Whether posted segments overlap the flow's stored segments or each other.

    The stored segments the batch spans are read in one select (at most ``SPAN_READ_LIMIT``);
    beyond that, each segment is checked with a select of its own. The first clash reported is the
    earliest overlapping segment, as the in-memory backend reports it.
    """

    def __init__(self, backend: TabularBackend, tx: Transaction, flow_id: str, batch: Sequence[rules.Segment]) -> None:
        self._backend = backend
        self._tx = tx
        self._flow_id = flow_id
        self._known: SortedKeyList = SortedKeyList(key=TimeRange.start_key)
        self._per_segment = False
        if not batch:
            return
        span = _span([s.timerange for s in batch])
        where = overlapping(flow_id, span)
        rows = (
            []
            if where is None
            else backend._rows(tx, SEGMENTS, where, columns=["timerange"], limit=SPAN_READ_LIMIT + 1)
        )
        if len(rows) > SPAN_READ_LIMIT:
            self._per_segment = True
        else:
            self._known.update(TimeRange.parse(r["timerange"]) for r in rows)

    def check(self, segment: rules.Segment) -> None:
        query = segment.timerange
        clashes = [self._known[i] for i in _overlap_indices(self._known, query)[:1]]
        if self._per_segment:
            where = overlapping(self._flow_id, query)
            rows = self._backend._rows(
                self._tx, SEGMENTS, where, columns=["timerange"], order=[Order("start_key")], limit=1
            )
            clashes += [TimeRange.parse(r["timerange"]) for r in rows]
        if clashes:
            other = min(clashes, key=TimeRange.start_key)
            raise BadRequest(f"segment {query} overlaps segment {other} of this flow")

    def accept(self, segment: rules.Segment) -> None:
        self._known.add(segment.timerange)


def _overlap_indices(ranges: SortedKeyList, query: TimeRange) -> range:
    if query.is_empty or not ranges:
        return range(0)
    lo = bisect.bisect_left(ranges, query.start_key(), key=TimeRange.end_key)
    hi = bisect.bisect_right(ranges, query.end_key(), key=TimeRange.start_key)
    return range(lo, max(lo, hi))


def _span(ranges: Iterable[TimeRange]) -> TimeRange:
    extent = TimeRange.never()
    for r in ranges:
        extent = extent.extend_to_encompass(r)
    return extent


def _changes(spec: TableSpec, row_ids: Sequence[Any], rows: Sequence[Json]) -> pa.Table:
    """Rows for ``update``: the row ids (in the type the engine gave them) and the changed columns."""
    names = [n for n in spec.schema.names if n in rows[0]]
    columns = {ROW_ID: pa.array(list(row_ids))}
    for name in names:
        columns[name] = pa.array([r[name] for r in rows], type=spec.schema.field(name).type)
    return pa.table(columns)


def _save_states(tx: Transaction, spec: TableSpec, states: Iterable[_ObjectState]) -> None:
    new = [s.row for s in states if s.new and s.dirty]
    changed = [s.row for s in states if not s.new and s.dirty]
    tx.insert(spec.name, spec.rows([{k: v for k, v in r.items() if k != ROW_ID} for r in new]))
    if changed:
        tx.update(spec.name, _changes(spec, [r[ROW_ID] for r in changed], changed))


def new_storage_id() -> str:
    return str(uuid.uuid4())


def persistent_value(engine: TableEngine, key: str, default: Callable[[], str]) -> str:
    """A value kept in the ``meta`` table (created with ``default()`` the first time)."""
    engine.ensure_tables([META])
    with engine.transaction(write=True) as tx:
        rows = tx.select(META.name, ["value"], col("key") == key).to_pylist()
        if rows:
            return rows[0]["value"]
        value = default()
        tx.insert(META.name, META.rows([{"key": key, "value": value}]))
        return value


def s3_stores(
    options: Mapping[str, Any], engine: TableEngine, services: BackendServices, locks: LockManager | None = None
) -> list[ObjectStore]:
    """The S3 object stores ``options`` configure (``backends.s3store.parse_storage``), each checked
    reachable; a store keeps the id it was first given (in ``meta``, by label) unless configured.
    With ``locks``, the first id is chosen under the catalog lock (servers starting together agree)."""
    from backends.s3store import S3ObjectStore, parse_storage, storage_info

    stores: list[ObjectStore] = []
    for config in parse_storage(options, services.url_lifetime):
        storage_id = config.storage_id
        if not storage_id:
            with (locks or LockManager()).session() as held:
                held.catalog()
                storage_id = persistent_value(engine, f"s3_storage_id/{config.label}", new_storage_id)
        store = S3ObjectStore(storage_info(config, storage_id), config)
        store.check()
        stores.append(store)
    return stores
