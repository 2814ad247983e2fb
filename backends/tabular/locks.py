"""Write locks of the tabular store, within one process.

Tables offer no unique constraints (VAST DB has none), so the rules "segments of a flow never
overlap" and "an id names one row" hold because writers that could break them are serialised
here, and because each writer begins its transaction only *after* taking its locks (so its
snapshot includes whatever the previous holder committed) and checks the rule inside it.

Lock kinds, always taken in this order (so two writers can never wait for each other):

1. ``catalog``: sources, flows' metadata, flow collections, webhooks, service info;
2. one lock per flow id: the flow's segments and its row (segment writers hold only this one,
   so writers to different flows run side by side); only a holder of ``catalog`` may take
   several flow locks, in any order, as nobody else waits for one flow lock while holding another;
3. ``requests``: the deletion-request table;
4. object stripes: an object's row and its per-flow reference counts, by a hash of its id into
   ``STRIPES`` locks, taken in stripe order (deletes take them all).

The locks are re-entrant per thread. They only protect writers inside this process: the
``local`` backend's data directory is locked to one process (``tams.lock``), so that is enough
there. Stores shared by several processes (VAST DB) add a second layer through :meth:`LockManager.claim`
(see ``table_locks``): the names a thread holds here are claimed for its process, all together,
just before its next transaction, and given up by its first write transaction as it commits; an
operation that needs other processes kept out until its block ends (work after the commit) calls
:meth:`LockSet.keep_claims`.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterable
from types import TracebackType

from backends import telemetry
from backends.tabular.engine import EngineUnavailable

STRIPES = 64


class LockTimeout(EngineUnavailable):
    """A lock stayed taken for longer than the configured wait (HTTP 503)."""


class LockManager:
    # Seconds a thread waits for an in-process lock (None: as long as it takes). Managers whose
    # holders may wait on other processes bound it, so waiting threads cannot pile up for ever.
    wait: float | None = None

    def __init__(self, stripes: int = STRIPES) -> None:
        self.catalog_lock = threading.RLock()
        self.requests_lock = threading.RLock()
        self.stripes = [threading.RLock() for _ in range(stripes)]
        self._guard = threading.Lock()
        self._flows: dict[str, list] = {}  # flow id -> [lock, users]

    def claim(self, names: list[str]) -> object | None:
        """Claim ``names`` against other processes (after this process's locks are held; a manager
        may defer the claim to the thread's next transaction); a handle for :meth:`unclaim`.
        Nothing to do within one process."""
        return None

    def unclaim(self, handle: object) -> None:
        return None

    def keep_claims(self, delta: int) -> None:
        """One more (``delta`` 1) or one fewer (-1) block of this thread that keeps its claims to the end."""
        return None

    def close(self) -> None:
        return None

    def stripe(self, object_id: str) -> int:
        return zlib.crc32(object_id.encode()) % len(self.stripes)

    def session(self) -> LockSet:
        return LockSet(self)

    def _flow_lock(self, flow_id: str) -> threading.RLock:
        with self._guard:
            entry = self._flows.get(flow_id)
            if entry is None:
                entry = self._flows[flow_id] = [threading.RLock(), 0]
            entry[1] += 1
            return entry[0]

    def _release_flow(self, flow_id: str) -> None:
        with self._guard:
            entry = self._flows[flow_id]
            entry[1] -= 1
            if entry[1] == 0:
                del self._flows[flow_id]


class LockSet:
    """The locks one operation holds; released together, in reverse, when the block ends."""

    def __init__(self, manager: LockManager) -> None:
        self._manager = manager
        self._held: list[tuple[threading.RLock, str | None]] = []
        self._claims: list[object] = []
        self._stage = 0  # 1 catalog, 2 flows, 3 requests, 4 stripes
        self._catalog = False
        self._keeps = False

    def __enter__(self) -> LockSet:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if self._keeps:
                self._keeps = False
                self._manager.keep_claims(-1)
            while self._claims:
                self._manager.unclaim(self._claims.pop())
        finally:
            self._release_local()

    def keep_claims(self) -> LockSet:
        """Keep other processes out until this block ends, not only until the first write commits
        (for work after the commit that still needs them out, e.g. deleting forgotten objects' media)."""
        if not self._keeps:
            self._keeps = True
            self._manager.keep_claims(1)
        return self

    def _release_local(self) -> None:
        while self._held:
            lock, flow_id = self._held.pop()
            lock.release()
            if flow_id is not None:
                self._manager._release_flow(flow_id)

    def _take(self, lock: threading.RLock, what: str, kind: str) -> None:
        if lock.acquire(blocking=False):
            return  # free (or already ours): no wait to measure
        wait = self._manager.wait
        started = time.perf_counter()
        taken = lock.acquire(timeout=-1 if wait is None else wait)
        telemetry.lock_wait(kind, time.perf_counter() - started, timed_out=not taken)
        if not taken:
            raise LockTimeout(f"{what} stayed locked for over {wait:.0f} s")

    def _claim(self, names: list[str]) -> None:
        if not names:
            return
        handle = self._manager.claim(names)  # on failure, the with-block's exit releases what is held
        if handle is not None:
            self._claims.append(handle)

    def _advance(self, stage: int, what: str) -> None:
        if stage < self._stage and not (stage == 2 and self._stage == 2):
            raise RuntimeError(f"lock order: {what} after a later kind of lock")
        self._stage = stage

    def catalog(self) -> LockSet:
        self._advance(1, "catalog")
        self._take(self._manager.catalog_lock, "catalog", "catalog")
        self._held.append((self._manager.catalog_lock, None))
        self._catalog = True
        self._claim(["catalog"])
        return self

    def flows(self, flow_ids: Iterable[str]) -> LockSet:
        ids = sorted(set(flow_ids))
        if self._stage == 2 and not self._catalog:
            raise RuntimeError("lock order: several flow locks need the catalog lock")
        self._advance(2, "flows")
        for flow_id in ids:
            lock = self._manager._flow_lock(flow_id)
            try:
                self._take(lock, f"flow {flow_id}", "flow")
            except BaseException:
                self._manager._release_flow(flow_id)
                raise
            self._held.append((lock, flow_id))
        self._claim([f"flow/{i}" for i in ids])
        return self

    def requests(self) -> LockSet:
        self._advance(3, "requests")
        self._take(self._manager.requests_lock, "deletion requests", "requests")
        self._held.append((self._manager.requests_lock, None))
        self._claim(["requests"])
        return self

    def objects(self, object_ids: Iterable[str]) -> LockSet:
        self._advance(4, "objects")
        if self._stage == 4 and any(lock in self._manager.stripes for lock, _ in self._held):
            raise RuntimeError("lock order: object stripes are taken once per operation")
        stripes = sorted({self._manager.stripe(i) for i in object_ids})
        for stripe in stripes:
            lock = self._manager.stripes[stripe]
            self._take(lock, "objects", "objects")
            self._held.append((lock, None))
        self._claim([f"stripe/{n}" for n in stripes])
        return self

    def all_objects(self) -> LockSet:
        self._advance(4, "objects")
        for lock in self._manager.stripes:
            self._take(lock, "objects", "objects")
            self._held.append((lock, None))
        self._claim([f"stripe/{n}" for n in range(len(self._manager.stripes))])
        return self
