"""The sources of the tabular store: reads, views (collections derived from their flows), tags and
fields, and a source's end with its last flow."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from backends import events, rules
from backends.base import Json, Page, PageRequest, SourceField, SourceQuery
from backends.errors import NotFound
from backends.tabular.core import TabularCore, _Effects
from backends.tabular.engine import ALL, ROW_ID, Order, Transaction, col
from backends.tabular.tables import FLOWS, SOURCES, _changes, _flow_record, _source_row


class SourcesMixin(TabularCore):
    """``/sources``; sources are created by the flows that name them (``flows``)."""

    def _source_doc(self, tx: Transaction, source_id: str) -> tuple[Json, Any] | None:
        rows = self._rows(tx, SOURCES, col("id") == source_id, row_ids=True)
        return (json.loads(rows[0]["doc"]), rows[0][ROW_ID]) if rows else None

    def _source(self, tx: Transaction, source_id: str) -> tuple[Json, Any]:
        found = self._source_doc(tx, source_id)
        if found is None:
            raise NotFound(f"source {source_id} not found")
        return found

    def _flows_of_source(self, tx: Transaction, source_id: str) -> list[Json]:
        rows = self._rows(tx, FLOWS, col("source_id") == source_id, order=[Order("id")])
        return [_flow_record(r).flow for r in rows]

    def _source_ids(self, tx: Transaction, flow_ids: Iterable[str]) -> dict[str, str]:
        return {r["id"]: r["source_id"] for r in self._rows_in(tx, FLOWS, "id", flow_ids, columns=["id", "source_id"])}

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

    def _leave_source(self, tx: Transaction, fx: _Effects, source_id: str) -> None:
        """A source goes with its last flow (call once the flow no longer names it)."""
        if self._rows(tx, FLOWS, col("source_id") == source_id, columns=["id"], limit=1):
            return
        source, row_id = self._source(tx, source_id)
        view = self._source_view(tx, source) if fx.wanted else None
        tx.delete(SOURCES.name, [row_id])
        if view is not None:
            fx.events.append(events.source_event(events.SOURCE_DELETED, view, {"source_id": source_id}))
