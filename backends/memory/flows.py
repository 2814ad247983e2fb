"""The flows of the in-memory store: reads, writes, collections, deletion, and a source's end with
its last flow.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from backends import events, ordering, profiles, rules
from backends.base import FlowField, FlowQuery, Json, Page, PageRequest
from backends.errors import NotFound
from backends.memory.core import MemoryCore, _overlapping, _set_field, _set_tag
from backends.timerange import TimeRange


class FlowsMixin(MemoryCore):
    """``/flows``: flow documents, their collections and events."""

    # --- flows -------------------------------------------------------------------------------
    def _flow(self, flow_id: str) -> Json:
        try:
            return self._flows[flow_id]
        except KeyError:
            raise NotFound(f"flow {flow_id} not found") from None

    def _flow_view(self, flow_id: str) -> Json:
        return rules.flow_view(self._flows[flow_id], self._collectors.get(flow_id, ()))

    def _flow_event(self, kind: str, flow_id: str, payload: Json | None = None) -> None:
        if not events.wanted(self._events):
            return
        flow = self._flow_view(flow_id)
        self._events.publish(events.flow_event(kind, flow, self._source_view(flow["source_id"]), payload))

    def list_flows(self, query: FlowQuery, page: PageRequest) -> Page[Json]:
        with self._lock:
            views = (self._flow_view(i) for i in self._flows)
            selected = [
                view
                for view in views
                if rules.matches_flow(view, query)
                and rules.matches_flow_timerange(self._ranges_overlapping(view["id"], query.timerange), query.timerange)
            ]
            return ordering.ordered_page(selected, query.order, page)

    def _ranges_overlapping(self, flow_id: str, query: TimeRange | None) -> Iterable[TimeRange]:
        segments = self._segments.get(flow_id)
        if not segments:
            return []
        if query is None or query.is_empty:
            return [s.timerange for s in segments[:1]]
        return [segments[i].timerange for i in _overlapping(segments, query)[:1]]

    def get_flow(
        self,
        flow_id: str,
        include_timerange: bool = False,
        timerange: TimeRange | None = None,
    ) -> Json:
        with self._lock:
            self._flow(flow_id)
            view = self._flow_view(flow_id)
            if include_timerange:
                segments = self._segments.get(flow_id)
                extent = (
                    segments[0].timerange.extend_to_encompass(segments[-1].timerange) if segments else TimeRange.never()
                )
                view["timerange"] = rules.flow_timerange_view(extent, timerange)
            return view

    def put_flow(self, flow_id: str, flow: Json) -> tuple[Json, bool]:
        with self._lock:
            existing = self._flows.get(flow_id)
            stamp = rules.now()
            flow = profiles.expand_flow(flow, existing, self._profiles.get)
            stored = rules.prepare_flow(flow_id, flow, existing, stamp)
            rules.check_collection(stored, lambda f: f in self._flows)
            if existing is not None:
                self._drop_collection_edges(existing)
                if existing["source_id"] != stored["source_id"]:
                    self._leave_source(existing)
            new_source = stored["source_id"] not in self._sources
            if new_source:
                self._sources[stored["source_id"]] = rules.new_source(stored, stamp)
            self._flows[flow_id] = stored
            self._flows_of_source.setdefault(stored["source_id"], set()).add(flow_id)
            for member in rules.collection_members(stored):
                self._collectors.setdefault(member, set()).add(flow_id)
            if new_source:
                source = self._source_view(stored["source_id"])
                self._events.publish(events.source_event(events.SOURCE_CREATED, source))
            self._flow_event(events.FLOW_UPDATED if existing else events.FLOW_CREATED, flow_id)
            return self._flow_view(flow_id), existing is None

    def _drop_collection_edges(self, flow: Json) -> None:
        for member in rules.collection_members(flow):
            self._collectors.get(member, set()).discard(flow["id"])

    def _leave_source(self, flow: Json) -> None:
        """Take a flow off its source; a source goes with its last flow."""
        source_id = flow["source_id"]
        source_flows = self._flows_of_source[source_id]
        source_flows.discard(flow["id"])
        if not source_flows:
            source = self._source_view(source_id)
            del self._flows_of_source[source_id]
            del self._sources[source_id]
            self._events.publish(events.source_event(events.SOURCE_DELETED, source, {"source_id": source_id}))

    def delete_flow(self, flow_id: str) -> Json | None:
        with self._lock:
            rules.ensure_writable(self._flow(flow_id))
            if len(self._segments.get(flow_id, ())) > self._policy.async_delete_threshold:
                return self._start_deletion(flow_id, TimeRange.eternity(), None, delete_flow=True)
            self._remove_flow(flow_id, announce=True)
            return None

    def _remove_flow(self, flow_id: str, announce: bool) -> None:
        """Remove a flow, its segments and its place in collections; ``announce`` raises flows/deleted."""
        with self._lock:
            flow = self._flows[flow_id]
            view = self._flow_view(flow_id)
            source = self._source_view(flow["source_id"])
            stamp = rules.now()
            for segment in self._segments.pop(flow_id, ()):
                self._drop_reference(segment.object.id, flow_id)
            # Flows that collected this one no longer can: drop it from their collections.
            for collector in self._collectors.pop(flow_id, set()):
                owner = self._flows[collector]
                remaining = [i for i in owner["flow_collection"] if i["id"] != flow_id]
                _set_field(owner, "flow_collection", remaining or None, "metadata_updated", stamp)
            # Objects it allocated but never registered become free for any flow to register.
            for object_id in self._allocations.pop(flow_id, set()):
                self._objects[object_id].allocated_for = None
            self._drop_collection_edges(flow)
            del self._flows[flow_id]
            if announce:
                self._events.publish(events.flow_event(events.FLOW_DELETED, view, source, {"flow_id": flow_id}))
            self._leave_source(flow)

    def set_flow_tag(self, flow_id: str, name: str, value: str | list[str] | None) -> None:
        with self._lock:
            flow = self._flow(flow_id)
            rules.ensure_writable(flow)
            _set_tag(flow, name, value, "metadata_updated")
            self._flow_event(events.FLOW_UPDATED, flow_id)

    def set_flow_field(self, flow_id: str, name: FlowField, value: Any) -> None:
        with self._lock:
            flow = self._flow(flow_id)
            if name != "read_only":
                rules.ensure_writable(flow)
            profiles.check_field_change(flow, name, value)
            if name == "flow_collection":
                rules.check_collection({**flow, "flow_collection": value or []}, lambda f: f in self._flows)
                self._drop_collection_edges(flow)
                for item in value or []:
                    self._collectors.setdefault(item["id"], set()).add(flow_id)
            _set_field(flow, name, value, "metadata_updated")
            self._flow_event(events.FLOW_UPDATED, flow_id)
