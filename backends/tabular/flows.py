"""The flows of the tabular store: reads, create/replace, delete (at once or by a deletion request),
tags and fields, collections, and the flow events every resource raises."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from backends import events, ordering, profiles, rules
from backends.base import FlowField, FlowQuery, Json, Page, PageRequest
from backends.errors import NotFound
from backends.tabular.core import SCAN_CHUNK, TabularCore, _Effects
from backends.tabular.engine import ALL, ROW_ID, Transaction, col
from backends.tabular.tables import (
    COLLECTIONS,
    FLOWS,
    OBJECTS,
    SEGMENTS,
    SOURCES,
    _changes,
    _flow_record,
    _flow_row,
    _FlowRecord,
    _source_row,
    insert_rows,
    update_rows,
)
from backends.timerange import TimeRange


class FlowsMixin(TabularCore):
    """``/flows`` and their properties; their segments are in ``segments``."""

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
            insert_rows(tx, FLOWS, [row])
        else:
            update_rows(tx, FLOWS, [record.row_id], [row])

    def _collectors_of(self, tx: Transaction, member_ids: Iterable[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for row in self._rows_in(tx, COLLECTIONS, "member_id", member_ids):
            found.setdefault(row["member_id"], set()).add(row["collector_id"])
        return found

    def _flow_view(self, tx: Transaction, flow: Json) -> Json:
        return rules.flow_view(flow, self._collectors_of(tx, [flow["id"]]).get(flow["id"], ()))

    def _flow_event(self, tx: Transaction, fx: _Effects, kind: str, flow: Json, payload: Json | None = None) -> None:
        if not fx.wanted:
            return
        view = self._flow_view(tx, flow)
        source = self._source_view_by_id(tx, flow["source_id"])
        fx.events.append(events.flow_event(kind, view, source, payload))

    def list_flows(self, query: FlowQuery, page: PageRequest) -> Page[Json]:
        where = ALL
        for column in ("source_id", "format", "codec", "label"):
            value = getattr(query, column)
            if value is not None:
                where &= col(column) == value

        def body(tx: Transaction) -> Page[Json]:
            def views(records: list[_FlowRecord]) -> list[Json]:
                collectors = self._collectors_of(tx, [r.flow["id"] for r in records])
                return [
                    view
                    for r, view in ((r, rules.flow_view(r.flow, collectors.get(r.flow["id"], ()))) for r in records)
                    if rules.matches_flow(view, query)
                    and rules.matches_flow_timerange(self._ranges_overlapping(tx, r, query.timerange), query.timerange)
                ]

            # Sorted on the client (ADR-0052 orders by fields of the stored document); the filters
            # above that the engine can apply narrow the rows read.
            records = [_flow_record(r) for r in self._rows(tx, FLOWS, where)]
            return ordering.ordered_scan(records, query.order, page, lambda r: r.flow, views, SCAN_CHUNK)

        return self._read(body)

    def _ranges_overlapping(self, tx: Transaction, record: _FlowRecord, query: TimeRange | None) -> list[TimeRange]:
        """At most one segment timerange of the flow overlapping ``query`` (any, when None or empty)."""
        if query is None or query.is_empty or query.is_eternity:
            return [record.extent] if not record.extent.is_empty else []
        if not record.extent.overlaps(query):
            return []
        where = self._overlapping(tx, record.flow["id"], query)
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
            body_flow = profiles.expand_flow(
                flow, existing.flow if existing else None, lambda p: self._profile_or_none(tx, p)
            )
            stored = rules.prepare_flow(flow_id, body_flow, existing.flow if existing else None, stamp)
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
            profiles.check_field_change(flow, name, value)
            if name == "flow_collection":
                rules.check_collection({**flow, "flow_collection": value or []}, lambda f: self._flow_exists(tx, f))
                self._drop_collection_edges(tx, flow_id)
                members = list(dict.fromkeys(item["id"] for item in value or []))
                if members:
                    edges = [{"collector_id": flow_id, "member_id": m} for m in members]
                    tx.insert(COLLECTIONS.name, COLLECTIONS.rows(edges))
            rules.set_field(flow, name, value, "metadata_updated")

        self._change_flow(flow_id, change)
