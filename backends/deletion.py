"""Deletions that outlive their request, and the background thread every backend runs them on.

A delete touching more segments than the policy's threshold answers 202 with a deletion request;
the worker then deletes in chunks, moving the request from ``created`` to ``started`` to ``done``
(or ``error``) and shrinking ``timerange_remaining`` as it goes. The same thread reclaims media
objects nobody needs any more.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import uuid
from typing import Protocol

from backends import telemetry
from backends.base import Json, StorePolicy, current_actor
from backends.rules import now
from backends.timerange import TimeRange

log = logging.getLogger("tams_server.deletion")

# Fields of a stored request that the deletion-request schema does not have.
_PRIVATE = ("object_id",)


def new_request(flow_id: str, timerange: TimeRange, object_id: str | None, delete_flow: bool) -> Json:
    stamp = now()
    request: Json = {
        "id": str(uuid.uuid4()),
        "flow_id": flow_id,
        "timerange_to_delete": str(timerange),
        "timerange_remaining": str(timerange),
        "delete_flow": delete_flow,
        "status": "created",
        "created": stamp,
        "updated": stamp,
        "object_id": object_id,
    }
    if current_actor() is not None:
        request["created_by"] = current_actor()
    return request


def request_view(request: Json) -> Json:
    return {k: v for k, v in request.items() if k not in _PRIVATE and v is not None}


def expired(request: Json) -> bool:
    """A finished request is listed until its ``expiry``."""
    if request["status"] not in ("done", "error") or "expiry" not in request:
        return False
    return dt.datetime.fromisoformat(request["expiry"].replace("Z", "+00:00")) < dt.datetime.now(dt.UTC)


class DeletionStore(Protocol):
    """What a backend provides so the worker can run its deletions."""

    def load_delete_request(self, request_id: str) -> Json: ...

    def save_delete_request(self, request: Json) -> None: ...

    def delete_chunk(self, request: Json, limit: int) -> TimeRange:
        """Delete up to ``limit`` segments the request covers; return what remains (empty when done)."""
        ...

    def finish_flow_delete(self, request: Json) -> None: ...

    def reclaim_objects(self) -> int: ...


class BackgroundWorker:
    """One daemon thread per backend: runs queued deletions, and reclaims objects periodically."""

    def __init__(self, store: DeletionStore, policy: StorePolicy) -> None:
        self._store = store
        self._policy = policy
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.idle = threading.Event()
        self.idle.set()
        self.backlog = 0  # requests submitted and not finished (tams_deletion_requests_pending)
        telemetry.track_worker(self)

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="tams-background", daemon=True)
                self._thread.start()

    def submit(self, request_id: str) -> None:
        self.idle.clear()
        with self._lock:
            self.backlog += 1
        self._queue.put(request_id)
        self.start()

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=10)
        with self._lock:
            self.backlog = 0  # what is left resumes when the store opens again, in another worker

    def _run(self) -> None:
        while True:
            try:
                request_id = self._queue.get(timeout=self._policy.reclaim_interval_s)
            except queue.Empty:
                self._reclaim()
                continue
            if request_id is None:
                return
            try:
                self._process(request_id)
            finally:
                with self._lock:
                    self.backlog = max(0, self.backlog - 1)
            if self._queue.empty():
                self.idle.set()

    def _reclaim(self) -> None:
        try:
            count = self._store.reclaim_objects()
            telemetry.OBJECTS_RECLAIMED.inc(count)
            if count:
                log.info("reclaimed %d media objects", count)
        except Exception:
            log.exception("object reclamation failed")

    def _process(self, request_id: str) -> None:
        request = self._store.load_delete_request(request_id)
        try:
            self._update(request, status="started")
            while True:
                remaining = self._store.delete_chunk(request, self._policy.delete_chunk)
                self._update(request, timerange_remaining=str(remaining))
                if remaining.is_empty:
                    break
            if request["delete_flow"]:
                self._store.finish_flow_delete(request)
            self._finish(request, "done")
        except Exception as exc:
            log.exception("deletion request %s failed", request_id)
            request["error"] = {"type": type(exc).__name__, "summary": str(exc) or "deletion failed", "time": now()}
            self._finish(request, "error")

    def _update(self, request: Json, **changes: object) -> None:
        request.update(changes, updated=now())
        self._store.save_delete_request(request)

    def _finish(self, request: Json, status: str) -> None:
        expiry = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self._policy.delete_request_ttl_s)
        self._update(request, status=status, expiry=expiry.isoformat(timespec="seconds").replace("+00:00", "Z"))
        telemetry.DELETIONS_FINISHED.labels(status).inc()


def count_created() -> None:
    """A deletion request was created (its backend calls this once the request is stored)."""
    telemetry.DELETIONS_CREATED.inc()
