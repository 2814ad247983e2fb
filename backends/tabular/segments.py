"""The segments of the tabular store: listing, registration (with the overlap check) and deletion
of covered segments, over predicates on their time keys.

Each row keeps its bounds as exact sortable keys and as saturated int64 nanoseconds (see
``timekeys``). A timerange query is one pushed-down select: ``flow_id == f AND start_key <=
query_end AND end_key >= query_start`` (plus the int64 twins for pruning), sorted by ``start_key``
and limited to one page. Nothing reads a flow's segments to filter them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sortedcontainers import SortedKeyList, SortedList

from backends import events, rules
from backends import media_objects as mo
from backends.base import FailedSegment, Json, PageRequest, SegmentPage, SegmentQuery, UrlOptions
from backends.errors import BadRequest, TamsError
from backends.tabular.core import TabularCore, _Effects
from backends.tabular.engine import ALL, ROW_ID, Order, Transaction, Where, col
from backends.tabular.objects import _external
from backends.tabular.tables import FLOWS, SEGMENTS, _FlowRecord, insert_rows, update_rows
from backends.tabular.timekeys import INT64_MAX, INT64_MIN, encode_key, saturate
from backends.timerange import BoundKey, TimeRange

SEGMENT_COLUMNS = ("timerange", "object_id", "fields", "external_urls")
# Key in a segment row's ``fields`` JSON: its object's init object (a copy of objects.init_object_id).
INIT_FIELD = "init_object_id"


def _init_field(object_row: Json) -> Json:
    init_id = object_row.get("init_object_id")
    return {INIT_FIELD: init_id} if init_id else {}


# A batch of posted segments is checked against the stored ones it spans, read in one select,
# unless they are more than this; then each segment is checked with a select of its own.
SPAN_READ_LIMIT = 10_000
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
        # Implied (a segment starts before it ends), but it bounds an index range on start keys.
        where &= (col("start_ns") <= saturate(e_ns)) & (col("start_key") <= _key_bytes(query.end_key()))
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


# --- rows <-> segments -------------------------------------------------------------------------


def _segment_row(
    flow_id: str,
    segment: rules.Segment,
    keys: tuple[BoundKey, BoundKey] | None = None,
    registered_at: float | None = None,
) -> Json:
    tr = segment.timerange
    start, end = keys or (tr.start_key(), tr.end_key())
    return {
        "flow_id": flow_id,
        "start_ns": saturate(start[1]),
        "end_ns": saturate(end[1]),
        "start_key": _key_bytes(start),
        "end_key": _key_bytes(end),
        "timerange": str(tr),
        "object_id": segment.object_id,
        "fields": json.dumps(segment.fields) if segment.fields else "{}",
        "external_urls": json.dumps(segment.external_urls) if segment.external_urls else "[]",
        "registered_at": registered_at,
    }


def _segment(row: Json) -> rules.Segment:
    fields, urls = row["fields"], row["external_urls"]
    return rules.Segment(
        row["object_id"],
        TimeRange.parse(row["timerange"]),
        {} if fields == "{}" else json.loads(fields),  # most rows: spare the decoder
        [] if urls == "[]" else json.loads(urls),
    )


class _MoreObjects(Exception):
    """Stored objects name init objects whose locks the write does not hold (it rolls back)."""

    def __init__(self, ids: set[str]) -> None:
        super().__init__(sorted(ids))
        self.ids = ids


class SegmentsMixin(TabularCore):
    """``/flows/{id}/segments``; the objects they reference are counted in ``objects``."""

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
            # Init object ids are on the segment rows: objects are read only for URLs or object_timerange.
            wanted = urls.accept_get_urls != () or query.include_object_timerange
            objects = self._object_rows(tx, [s.object_id for s in chosen]) if wanted else {}
            items = [self._segment_view(s, objects, urls, query.include_object_timerange) for s in chosen]
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
            where &= self._seek_from(tx, flow_id, query.timerange)
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

    def _seek_from(self, tx: Transaction, flow_id: str, query: TimeRange) -> Where:
        """A lower bound on the start keys of the flow's segments that overlap ``query``.

        Engines that sort in the database keep segments in an index by (flow, start key): with both
        ends bounded a time query is a short range of it, not a walk from the flow's first segment.
        Of the segments starting before the query, only the last can reach into it (segments of a
        flow never overlap), so that one is read alone (a seek) and, if it does, the bound is its
        start; otherwise the query's.
        """
        tier, ns, _ = start = query.start_key()
        if tier != 1:
            return ALL
        key = _key_bytes(start)
        before = (col("flow_id") == flow_id) & (col("start_ns") <= saturate(ns)) & (col("start_key") < key)
        columns = ["start_ns", "start_key", "end_key"]
        last = self._rows(tx, SEGMENTS, before, columns=columns, order=[Order("start_key", True)], limit=1)
        if last and last[0]["end_key"] >= key:
            return (col("start_ns") >= last[0]["start_ns"]) & (col("start_key") >= last[0]["start_key"])
        return (col("start_ns") >= saturate(ns)) & (col("start_key") >= key)

    def _may_overlap(self, tx: Transaction, flow_id: str, query: TimeRange) -> bool:
        """False when no segment of the flow overlaps ``query`` (True: some may).

        On engines that seek, one read settles the common cases (appending, filling a gap): of the
        segments starting before the query ends, the last one ends last (segments of a flow never
        overlap), so if it ends before the query starts, none reaches into it.
        """
        start, end = query.start_key(), query.end_key()
        if self._engine.sorts_on_client or start[0] != 1:
            return True
        before_end = _starts_at_or_before(end)
        if before_end is None:
            return False
        columns = ["end_key"]
        where = (col("flow_id") == flow_id) & before_end
        last = self._rows(tx, SEGMENTS, where, columns=columns, order=[Order("start_key", True)], limit=1)
        return bool(last) and last[0]["end_key"] >= _key_bytes(start)

    def _overlapping(self, tx: Transaction, flow_id: str, query: TimeRange) -> Where | None:
        """``overlapping``, bounded below for engines that seek (see ``_seek_from``)."""
        where = overlapping(flow_id, query)
        if where is None or self._engine.sorts_on_client:
            return where
        return where & self._seek_from(tx, flow_id, query)

    def _segment_view(
        self, segment: rules.Segment, objects: dict[str, Json], options: UrlOptions, include_object_timerange: bool
    ) -> Json:
        """A segment with its object's instances (``memory._segment_view``); ``objects``: rows by id."""
        row = objects.get(segment.object_id)
        if row is not None and segment.external_urls:
            # Uncontrolled URLs stored on the segment row by a server before 8.x: instances of the object.
            try:
                external = mo.add_instances(segment.object_id, _external(row), segment.external_urls)
                row = {**row, "external": json.dumps(external)}
            except TamsError:
                pass
        init_id = segment.fields.get(INIT_FIELD)
        shown = rules.Segment(
            segment.object_id, segment.timerange, {k: v for k, v in segment.fields.items() if k != INIT_FIELD}
        )
        view = rules.segment_view(shown, self._object_urls(segment.object_id, row, options))
        if row is not None and include_object_timerange and row.get("object_timerange"):
            view["object_timerange"] = row["object_timerange"]
        if init_id:
            urls = self._object_urls(init_id, objects.get(init_id), options)
            view["init_object"] = mo.init_view(init_id, urls, "object_id")
        return view

    def add_segments(self, flow_id: str, segments: list[Json]) -> list[FailedSegment]:
        object_ids = [b["object_id"] for b in segments if isinstance(b.get("object_id"), str)]
        object_ids += [b["init_object_id"] for b in segments if isinstance(b.get("init_object_id"), str)]
        # Parsed before the locks and the transaction: it needs neither, and writers of other flows
        # wait for this transaction's turn on the database (engines that serialise writes).
        labels = [s.info.label for s in self._stores.values()]
        parsed: list[tuple[Json, rules.Segment | TamsError]] = []
        posted: dict[int, tuple[mo.PostedFacts, list[Json]]] = {}
        for body in segments:
            try:
                segment = rules.parse_segment(body, labels)
                posted[id(segment)] = (mo.posted_facts(body, segment.timerange), mo.posted_instances(body, labels))
                parsed.append((body, segment))
            except TamsError as exc:
                parsed.append((body, exc))
        while True:
            with self._locks.session() as held:
                held.flows([flow_id]).objects(object_ids)
                locked = set(object_ids)
                try:
                    return self._write(
                        lambda tx, fx, locked=locked: self._add_segments(tx, fx, flow_id, parsed, posted, locked)
                    )
                except _MoreObjects as more:  # rolled back: run again with their stripes locked too
                    object_ids += sorted(more.ids)

    def _add_segments(
        self,
        tx: Transaction,
        fx: _Effects,
        flow_id: str,
        parsed: list[tuple[Json, rules.Segment | TamsError]],
        posted: dict[int, tuple[mo.PostedFacts, list[Json]]],
        locked: set[str],
    ) -> list[FailedSegment]:
        record = self._flow(tx, flow_id)
        rules.check_segment_post(record.flow)
        valid = [s for _, s in parsed if isinstance(s, rules.Segment)]
        checker = _OverlapChecker(self, tx, flow_id, valid)
        objects = self._object_states(tx, [s.object_id for s in valid])
        # Stored objects may name init objects the body does not: their locks are needed too. An
        # init id never changes once set, so reading it here (one transaction, not one more before
        # the locks) and running again when one is missing is enough.
        unlocked = {s.row["init_object_id"] for s in objects.values() if s.row.get("init_object_id")} - locked
        if unlocked:
            raise _MoreObjects(unlocked)
        init_ids = {f.init_object_id for f, _ in posted.values() if f.init_object_id is not None}
        init_ids |= {s.row["init_object_id"] for s in objects.values() if s.row.get("init_object_id")}
        objects.update(self._object_states(tx, init_ids - objects.keys()))
        references = self._flow_references(tx, flow_id, [*(s.object_id for s in valid), *init_ids])
        failed: list[FailedSegment] = []
        added: list[tuple[rules.Segment, tuple[BoundKey, BoundKey]]] = []
        clock = time.time()
        for body, segment in parsed:
            try:
                if isinstance(segment, TamsError):
                    raise segment
                keys = checker.check(segment)
                facts, instances = posted[id(segment)]
                self._register(objects, references, segment.object_id, facts, instances, flow_id, clock)
                checker.accept(segment, keys)
                added.append((segment, keys))
            except TamsError as exc:
                failed.append(FailedSegment(body.get("object_id", ""), body.get("timerange"), exc.summary))
        if added:
            # Uncontrolled URLs are instances of the object now; the (immutable) init object id is
            # copied onto the row so listings need not read objects when they show no URLs.
            stored = [
                rules.Segment(s.object_id, s.timerange, {**s.fields, **_init_field(objects[s.object_id].row)})
                for s, _ in added
            ]
            rows = [_segment_row(flow_id, s, keys, clock) for s, (_, keys) in zip(stored, added, strict=True)]
            insert_rows(tx, SEGMENTS, rows)
            self._save_objects(tx, objects)
            self._save_references(tx, flow_id, references)
            record.flow["segments_updated"] = rules.now()
            first = min(added, key=lambda a: a[1][0])[0].timerange
            last = max(added, key=lambda a: a[1][1])[0].timerange
            record.extent = record.extent.extend_to_encompass(first).extend_to_encompass(last)
            changed = {"segments_updated": record.flow["segments_updated"], "extent": str(record.extent)}
            update_rows(tx, FLOWS, [record.row_id], [changed])
            if not fx.wanted:
                return failed
            object_rows = {i: s.row for i, s in objects.items()}
            options = UrlOptions(verbose_storage=True, for_events=True)
            views = [self._segment_view(s, object_rows, options, True) for s in stored]
            self._flow_event(tx, fx, events.SEGMENTS_ADDED, record.flow, {"flow_id": flow_id, "segments": views})
        return failed

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


class _OverlapChecker:
    """Whether posted segments overlap the flow's stored segments or each other.

    The stored segments the batch spans are read in one select (at most ``SPAN_READ_LIMIT``);
    beyond that, each segment is checked with a select of its own. The first clash reported is the
    earliest overlapping segment, as the in-memory backend reports it. Known ranges never overlap,
    so sorted by start they are sorted by end too: a clash is found by two bisections.
    """

    def __init__(self, backend: TabularCore, tx: Transaction, flow_id: str, batch: Sequence[rules.Segment]) -> None:
        self._backend = backend
        self._tx = tx
        self._flow_id = flow_id
        self._known: SortedKeyList = SortedKeyList(key=lambda known: known[0])  # (start key, end key, range)
        self._ends: SortedList = SortedList()
        self._per_segment = False
        # Each posted segment's keys, worked out once (they bound the span and place the segment).
        self._keys = {id(s): (s.timerange.start_key(), s.timerange.end_key()) for s in batch}
        if not batch:
            return
        first = min(batch, key=lambda s: self._keys[id(s)][0])
        last = max(batch, key=lambda s: self._keys[id(s)][1])
        span = _span([first.timerange, last.timerange])
        if not backend._may_overlap(tx, flow_id, span):
            return
        where = backend._overlapping(tx, flow_id, span)
        rows = (
            []
            if where is None
            else backend._rows(tx, SEGMENTS, where, columns=["timerange"], limit=SPAN_READ_LIMIT + 1)
        )
        if len(rows) > SPAN_READ_LIMIT:
            self._per_segment = True
            return
        for row in rows:
            tr = TimeRange.parse(row["timerange"])
            self._add((tr.start_key(), tr.end_key()), tr)

    def _add(self, keys: tuple[BoundKey, BoundKey], tr: TimeRange) -> None:
        self._known.add((*keys, tr))
        self._ends.add(keys[1])

    def check(self, segment: rules.Segment) -> tuple[BoundKey, BoundKey]:
        """The segment's start and end keys, if it overlaps nothing known (else BadRequest)."""
        query = segment.timerange
        keys = self._keys[id(segment)]
        first = self._ends.bisect_left(keys[0])  # the first known range ending at or after the start
        clashes = [self._known[first][2]] if first < self._known.bisect_key_right(keys[1]) else []
        if self._per_segment:
            where = self._backend._overlapping(self._tx, self._flow_id, query)
            rows = (
                []
                if where is None
                else self._backend._rows(
                    self._tx, SEGMENTS, where, columns=["timerange"], order=[Order("start_key")], limit=1
                )
            )
            clashes += [TimeRange.parse(r["timerange"]) for r in rows]
        if clashes:
            other = min(clashes, key=TimeRange.start_key)
            raise BadRequest(f"segment {query} overlaps segment {other} of this flow")
        return keys

    def accept(self, segment: rules.Segment, keys: tuple[BoundKey, BoundKey]) -> None:
        """Count a checked segment (``keys``: what ``check`` gave) as known."""
        self._add(keys, segment.timerange)


def _span(ranges: Iterable[TimeRange]) -> TimeRange:
    extent = TimeRange.never()
    for r in ranges:
        extent = extent.extend_to_encompass(r)
    return extent
