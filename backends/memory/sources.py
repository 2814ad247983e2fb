"""The sources of the in-memory store: reads, views (collections derived from their flows), tags
and fields.
"""

from __future__ import annotations

from backends import events, ordering, rules
from backends.base import Json, Page, PageRequest, SourceField, SourceQuery
from backends.errors import NotFound
from backends.memory.core import MemoryCore, _set_field, _set_tag


class SourcesMixin(MemoryCore):
    """``/sources``; sources are created by the flows that name them (``flows``)."""

    # --- sources -----------------------------------------------------------------------------
    def _source(self, source_id: str) -> Json:
        try:
            return self._sources[source_id]
        except KeyError:
            raise NotFound(f"source {source_id} not found") from None

    def _source_view(self, source_id: str) -> Json:
        flows = [self._flows[f] for f in self._flows_of_source.get(source_id, ())]
        collectors = {c for flow in flows for c in self._collectors.get(flow["id"], ())}
        collection, collected_by = rules.source_collections(source_id, flows, self._source_of, collectors)
        return rules.source_view(self._sources[source_id], collection, collected_by)

    def _source_of(self, flow_id: str) -> str | None:
        flow = self._flows.get(flow_id)
        return None if flow is None else flow["source_id"]

    def list_sources(self, query: SourceQuery, page: PageRequest) -> Page[Json]:
        with self._lock:
            views = (self._source_view(i) for i in self._sources)
            return ordering.ordered_page([v for v in views if rules.matches_source(v, query)], query.order, page)

    def get_source(self, source_id: str) -> Json:
        with self._lock:
            self._source(source_id)
            return self._source_view(source_id)

    def set_source_tag(self, source_id: str, name: str, value: str | list[str] | None) -> None:
        with self._lock:
            _set_tag(self._source(source_id), name, value, "updated")
            self._events.publish(events.source_event(events.SOURCE_UPDATED, self._source_view(source_id)))

    def set_source_field(self, source_id: str, name: SourceField, value: str | None) -> None:
        with self._lock:
            _set_field(self._source(source_id), name, value, "updated")
            self._events.publish(events.source_event(events.SOURCE_UPDATED, self._source_view(source_id)))
