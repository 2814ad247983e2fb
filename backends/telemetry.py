"""Prometheus metrics of the stores: defined once per process, here, so backends can count without
importing the server (``tams_server.metrics`` defines the HTTP-side ones and serves them all).

Every metric lives in prometheus_client's default registry and counts for the whole process: apps
or backends made side by side (tests) add to the same series. Label values are bounded: engine
names, transaction kinds, lock kinds, statuses; never ids or paths.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

# Waits for a lock: from under a millisecond (in-process contention) to the 60 s a lock wait may last.
LOCK_WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0)

# --- store transactions (tabular backends: local on SQLite, vast) ------------------------------
STORE_TRANSACTIONS = Counter(
    "tams_store_transactions",
    "Transactions the tabular store began for API work, by engine and kind (read or write); a retried one counts again",
    ["engine", "kind"],
)
STORE_CONFLICTS = Counter(
    "tams_store_conflicts",
    "Transactions that collided with a concurrent one (rolled back), by engine and kind",
    ["engine", "kind"],
)
STORE_RETRIES = Counter(
    "tams_store_retries",
    "Transactions run again after a conflict, by engine and kind",
    ["engine", "kind"],
)
STORE_BUSY = Counter(
    "tams_store_busy",
    "Operations that gave up after repeated conflicts (answered 503), by engine and kind",
    ["engine", "kind"],
)

# --- write locks (tabular backends) ---------------------------------------------------------
# lock: catalog, flow, requests, objects (this process's locks) or claim (a claim in the store's
# lock table held by another server process).
LOCK_WAITS = Counter(
    "tams_store_lock_waits",
    "Lock acquisitions that had to wait for another holder, by lock kind (claim: held by another server process)",
    ["lock"],
)
LOCK_WAIT_SECONDS = Histogram(
    "tams_store_lock_wait_seconds",
    "Time spent waiting for a lock held by another holder (waits that ended in a timeout too), by lock kind",
    ["lock"],
    buckets=LOCK_WAIT_BUCKETS,
)
LOCK_TIMEOUTS = Counter(
    "tams_store_lock_timeouts",
    "Lock waits that ran out of time (the request answered 503), by lock kind",
    ["lock"],
)
LOCK_KINDS = ("catalog", "flow", "requests", "objects", "claim")


def lock_wait(kind: str, seconds: float, timed_out: bool = False) -> None:
    """One wait for a lock of ``kind`` (one of ``LOCK_KINDS``)."""
    LOCK_WAITS.labels(kind).inc()
    LOCK_WAIT_SECONDS.labels(kind).observe(seconds)
    if timed_out:
        LOCK_TIMEOUTS.labels(kind).inc()


# --- deletion requests and reclamation (every backend) ------------------------------------
DELETIONS_CREATED = Counter(
    "tams_deletion_requests_created",
    "Deletion requests created (deletes too large to finish within their API request)",
)
DELETIONS_FINISHED = Counter(
    "tams_deletion_requests_finished",
    "Deletion requests the background worker finished, by final status (done or error)",
    ["status"],
)
OBJECTS_RECLAIMED = Counter(
    "tams_objects_reclaimed",
    "Media objects reclaimed by the background worker (unreferenced past their grace time, or never registered)",
)

_workers: weakref.WeakSet[object] = weakref.WeakSet()
_workers_lock = threading.Lock()


def track_worker(worker: object) -> None:
    """Count ``worker.backlog`` in ``tams_deletion_requests_pending`` while the worker lives."""
    with _workers_lock:
        _workers.add(worker)


def _pending_deletions() -> float:
    with _workers_lock:
        workers = list(_workers)
    return float(sum(getattr(w, "backlog", 0) for w in workers))


DELETIONS_PENDING = Gauge(
    "tams_deletion_requests_pending",
    "Deletion requests queued or running in this process's background workers (the backlog)",
)
DELETIONS_PENDING.set_function(_pending_deletions)


def bound(counter: Counter, *labels: str) -> Callable[..., None]:
    """The ``inc`` of one labelled child, looked up once (``labels()`` costs more than ``inc``)."""
    return counter.labels(*labels).inc
