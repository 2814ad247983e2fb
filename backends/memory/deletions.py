"""Deletion requests of the in-memory store and the background worker's chunks."""

from __future__ import annotations

from backends import deletion, events
from backends.base import Json
from backends.errors import NotFound
from backends.memory.core import MemoryCore
from backends.timerange import TimeRange


class DeletionsMixin(MemoryCore):
    """``/flow-delete-requests`` and the worker's side of them."""

    # --- deletion requests -------------------------------------------------------------------
    def _start_deletion(self, flow_id: str, timerange: TimeRange, object_id: str | None, delete_flow: bool) -> Json:
        request = deletion.new_request(flow_id, timerange, object_id, delete_flow)
        self._delete_requests[request["id"]] = request
        deletion.count_created()
        if delete_flow:
            self._flow_event(events.FLOW_DELETED, flow_id, {"flow_id": flow_id})
        self._worker.submit(request["id"])
        return deletion.request_view(request)

    def load_delete_request(self, request_id: str) -> Json:
        with self._lock:
            return dict(self._delete_requests[request_id])

    def save_delete_request(self, request: Json) -> None:
        with self._lock:
            self._delete_requests[request["id"]] = dict(request)

    def delete_chunk(self, request: Json, limit: int) -> TimeRange:
        with self._lock:
            if request["flow_id"] not in self._flows:
                return TimeRange.never()
            remaining = TimeRange.parse(request["timerange_remaining"])
            return self._delete_covered(request["flow_id"], remaining, request.get("object_id"), limit)

    def finish_flow_delete(self, request: Json) -> None:
        with self._lock:
            if request["flow_id"] in self._flows:
                self._remove_flow(request["flow_id"], announce=False)

    def list_delete_requests(self) -> list[Json]:
        with self._lock:
            for request_id in [i for i, r in self._delete_requests.items() if deletion.expired(r)]:
                del self._delete_requests[request_id]
            return [deletion.request_view(r) for r in self._delete_requests.values()]

    def get_delete_request(self, request_id: str) -> Json:
        with self._lock:
            request = self._delete_requests.get(request_id)
            if request is None or deletion.expired(request):
                raise NotFound(f"deletion request {request_id} not found")
            return deletion.request_view(request)
