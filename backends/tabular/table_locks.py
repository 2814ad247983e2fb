"""Write locks shared by several server processes, kept in a table of the store itself.

VAST DB has no unique constraints and no lock service, so "segments of a flow never overlap" across
several ``tams-server`` processes needs writers of one flow serialised between processes too. A
claim is a row ``(name, owner, expires)`` in the ``tams_locks`` table:

1. insert my claim rows for every name, and commit;
2. read back every claim row on those names (a transaction begun after my commit);
3. if a live claim of anybody else is there, delete mine and try again after a random, growing
   pause; otherwise the names are mine until I delete my rows.

Why it is safe: of two processes claiming the same name, the one whose read (step 2) starts last
started it after *both* commits, so it sees the other's claim and backs off. Both may back off
(then both retry), but both can never go on. This needs only what VAST DB documents: a
transaction sees what was committed before it began. It does not rely on row-level write
conflicts or on row ids being allocated in commit order (neither is documented).

Claims expire so that a crashed process cannot block a flow for ever: each row carries an expiry
time (``ttl`` seconds ahead), renewed every ``ttl / 3`` by a background thread while held; an
expired claim counts as absent and is removed by the next claimant.

Failure modes (documented in the README):

* a process frozen or cut off from the database for longer than ``ttl`` loses its claims without
  knowing; if it then commits, its write was not serialised with the next holder's (two segments
  could overlap). Keep ``ttl`` far above the longest pause (default 60 s) and clocks in sync
  (expiry compares the wall clocks of different machines);
* heavy contention on one name costs retries (each attempt is three short transactions), and there
  is no fairness; ``wait`` (default 60 s) bounds the wait, after which the request fails with 503;
* the table is a single hot spot for writes (one insert and one delete per locked operation).

Within one process the in-process locks (``locks``) are taken first, so threads of one process
never compete through the table, and a thread that already holds a name does not claim it again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from backends.tabular.engine import ROW_ID, Conflict, TableEngine, TableSpec, col
from backends.tabular.locks import STRIPES, LockManager, LockTimeout

log = logging.getLogger("tams_server.locks")

LOCKS = TableSpec(
    "tams_locks",
    pa.schema([("name", pa.string()), ("owner", pa.string()), ("expires", pa.float64())]),
    lookup=("name",),
)


@dataclass
class _Claim:
    owner: str
    names: list[str]
    guard: threading.Lock = field(default_factory=threading.Lock)  # renewal vs release
    released: bool = False


class TableLockManager(LockManager):
    """In-process locks plus claims in ``tams_locks`` that other processes on the same tables respect."""

    def __init__(
        self, engine: TableEngine, ttl: float = 60.0, wait: float = 60.0, stripes: int = STRIPES, renew: bool = True
    ) -> None:
        super().__init__(stripes)
        if ttl <= 0 or wait <= 0:
            raise ValueError("lock ttl and wait must be positive")
        self._engine = engine
        self.ttl = ttl
        self.wait = wait  # also bounds waits for this process's own locks (LockManager.wait)
        self.process = uuid.uuid4().hex[:12]  # in owner ids, to tell processes apart when debugging
        engine.ensure_tables([LOCKS])
        self._mine = threading.local()  # names this thread holds -> depth
        self._live: dict[str, _Claim] = {}
        self._live_lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        if renew:
            self._renewer = threading.Thread(target=self._renew_loop, name="tams-lock-renewer", daemon=True)
            self._renewer.start()

    # --- the LockManager hooks ---------------------------------------------------------------
    def claim(self, names: list[str]) -> object | None:
        held: Counter[str] = self._held_names()
        wanted = sorted({n for n in names if held[n] == 0})
        for n in names:
            held[n] += 1
        claim = None
        if wanted:
            try:
                claim = self._acquire(wanted)
            except BaseException:
                _forget(held, names)
                raise
        return (names, claim)

    def unclaim(self, handle: object) -> None:
        names, claim = handle  # type: ignore[misc]
        _forget(self._held_names(), names)
        if claim is not None:
            self._release(claim)

    def _held_names(self) -> Counter[str]:
        held = getattr(self._mine, "names", None)
        if held is None:
            held = self._mine.names = Counter()
        return held

    # --- claims in the table -------------------------------------------------------------------
    def _acquire(self, names: list[str]) -> _Claim:
        claim = _Claim(owner=f"{self.process}-{uuid.uuid4().hex}", names=names)
        deadline = time.monotonic() + self.wait
        pause = 0.002
        while True:
            try:
                if self._try(claim):
                    return claim
            except Conflict:
                self._withdraw(claim)  # a collision in the lock table itself: just another retry
            if time.monotonic() > deadline:
                raise LockTimeout(f"{', '.join(names)} held by another server for over {self.wait:.0f} s")
            time.sleep(random.uniform(pause / 2, pause))
            pause = min(pause * 2, 0.5)

    def _try(self, claim: _Claim) -> bool:
        """One attempt: claim, read back, keep (True) or withdraw (False)."""
        names = claim.names
        with self._engine.transaction(write=True) as tx:
            rows = [{"name": n, "owner": claim.owner, "expires": time.time() + self.ttl} for n in names]
            tx.insert(LOCKS.name, LOCKS.rows(rows))
        with self._engine.transaction(write=False) as tx:
            found = tx.select(LOCKS.name, ["name", "owner", "expires"], col("name").isin(names)).to_pylist()
        now = time.time()
        if any(r["owner"] != claim.owner and r["expires"] > now for r in found):
            self._withdraw(claim)
            return False
        if len(found) > len(names):  # claims left by crashed servers: clear them, if we can
            try:
                self._delete(names, None, drop_expired=True)
            except Exception:
                log.warning("could not clear expired lock claims on %s", names, exc_info=True)
        with self._live_lock:
            self._live[claim.owner] = claim
        return True

    def _withdraw(self, claim: _Claim) -> None:
        self._delete(claim.names, claim.owner, drop_expired=True)

    def _release(self, claim: _Claim) -> None:
        with self._live_lock:
            self._live.pop(claim.owner, None)
        try:
            with claim.guard:  # not while the renewer is writing new expiries to these rows
                claim.released = True
                self._delete(claim.names, claim.owner)
        except Exception:
            # The claim expires by itself; meanwhile other processes wait for it (at most ttl).
            log.exception("could not release locks %s; they expire in at most %.0f s", claim.names, self.ttl)

    def _delete(self, names: list[str], owner: str | None, drop_expired: bool = False) -> None:
        with self._engine.transaction(write=True) as tx:
            rows = tx.select(LOCKS.name, ["owner", "expires"], col("name").isin(names), row_ids=True).to_pylist()
            now = time.time()
            doomed = [r[ROW_ID] for r in rows if r["owner"] == owner or (drop_expired and r["expires"] <= now)]
            if doomed:
                tx.delete(LOCKS.name, doomed)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            with self._live_lock:
                claims = list(self._live.values())
            for claim in claims:
                try:
                    self._renew(claim)
                except Exception:
                    log.exception("could not renew locks %s", claim.names)

    def _renew(self, claim: _Claim) -> None:
        with claim.guard:
            if not claim.released:
                self._extend(claim)

    def _extend(self, claim: _Claim) -> None:
        with self._engine.transaction(write=True) as tx:
            rows = tx.select(LOCKS.name, ["owner"], col("name").isin(claim.names), row_ids=True).to_pylist()
            ids = [r[ROW_ID] for r in rows if r["owner"] == claim.owner]
            if ids:
                expires = pa.array([time.time() + self.ttl] * len(ids), pa.float64())
                tx.update(LOCKS.name, pa.table({ROW_ID: pa.array(ids), "expires": expires}))

    def close(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)


def _forget(held: Counter[str], names: list[str]) -> None:
    """One hold less on each name (names no longer held leave the counter)."""
    for n in names:
        held[n] -= 1
        if held[n] <= 0:
            del held[n]
