"""Write locks shared by several server processes, kept in a table of the store itself.

VAST DB has no unique constraints and no lock service, so "segments of a flow never overlap" across
several ``tams-server`` processes needs writers of one flow serialised between processes too. A
claim is a row ``(name, owner, expires)`` in the ``tams_locks`` table. An operation's names (its
flow, its objects' stripes...) are claimed together, just before its first transaction:

1. insert my claim rows for every name, and commit (the *claim* transaction);
2. begin the operation's transaction and, in it, read every claim row on those names;
3. if a live claim of anybody else is there, roll it back, delete my rows and try again after a
   random, growing pause; otherwise go on: the names are mine until my rows are deleted;
4. the operation's first write transaction deletes my rows itself, committing with its writes (an
   operation whose block ends without such a commit deletes them in a transaction of its own).

Why it is safe: take two processes that both go on with a name, P's transaction TP beginning
before Q's TQ. P committed its claim before TP began, so before TQ began: TQ's snapshot holds P's
claim unless a commit deleted it before TQ began. P's rows are deleted only by TP's own commit
(then TQ's snapshot holds all TP wrote: the writes are serialised), by P's release after TP ended
(likewise), or as expired (the failure mode below). Otherwise TQ sees P's live claim and Q backs
off. Both may back off (then both retry), but both can never go on unserialised. This needs only
what VAST DB documents: a transaction sees what was committed before it began. It does not rely on
row-level write conflicts or on row ids being allocated in commit order (neither is documented).
An uncontended write thus costs two transactions (the claim, then the write); the read-back and
the release ride in the write's transaction.

Claim transactions carry no commit marker (``vast_engine``): a claim whose commit reply is lost
fails the request (503) after an attempt to delete its rows, which otherwise expire unrenewed;
deletions are repeatable.

Claims expire so that a crashed process cannot block a flow for ever: each row carries an expiry
time (``ttl`` seconds ahead), renewed every ``ttl / 3`` by a background thread while held; an
expired claim counts as absent and is removed by the next claimant.

Failure modes (documented in the README):

* a process frozen or cut off from the database for longer than ``ttl`` loses its claims without
  knowing; if it then commits, its write was not serialised with the next holder's (two segments
  could overlap). Keep ``ttl`` far above the longest pause (default 60 s) and clocks in sync
  (expiry compares the wall clocks of different machines);
* heavy contention on one name costs retries (each attempt is three short transactions: claim,
  read-back, withdrawal), and there is no fairness; ``wait`` (default 60 s) bounds the wait, after
  which the request fails with 503;
* the table is a single hot spot for writes (one insert and one delete per locked operation).

Claims held after use ("sticky", renewed until idle) were weighed and left out: a write would
skip its claim transaction only if every name were already held, but an operation's names include
object stripes shared by all flows, which processes behind one load balancer would pass back and
forth (each handover costing the waiter a poll of the holder's table and a wait), and a flow fed
by a load balancer is written by a different process from one segment to the next.

Within one process the in-process locks (``locks``) are taken first, so threads of one process
never compete through the table, and a thread that already holds a name does not claim it again.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from backends import telemetry
from backends.tabular.engine import ROW_ID, Conflict, TableEngine, TableSpec, Transaction, col
from backends.tabular.locks import STRIPES, LockManager, LockTimeout

log = logging.getLogger("tams_server.locks")

LOCKS = TableSpec(
    "tams_locks",
    pa.schema([("name", pa.string()), ("owner", pa.string()), ("expires", pa.float64())]),
    lookup=("name",),
)


class _Contested(Exception):
    """Another process holds a live claim on one of the names (internal: retried)."""


@dataclass
class _Claim:
    """The rows one claim transaction inserted (one owner id), while some of them are held."""

    owner: str
    names: list[str]
    guard: threading.Lock = field(default_factory=threading.Lock)  # renewal vs release


@dataclass
class _Seen:
    """Claim rows the read-back found: mine (name -> row id) and others' expired ones (row ids)."""

    owner: str | None = None
    mine: dict[str, Any] = field(default_factory=dict)
    expired: list[Any] = field(default_factory=list)


@dataclass
class _Thread:
    """What one thread holds against other processes."""

    held: Counter[str] = field(default_factory=Counter)  # names held (re-entrant depth)
    pending: set[str] = field(default_factory=set)  # held, but not claimed in the table (yet, or any more)
    claims: dict[str, _Claim] = field(default_factory=dict)  # held names claimed in the table
    keep: int = 0  # blocks that keep their claims to the end (LockSet.keep_claims)


class TableLockManager(LockManager):
    """In-process locks plus claims in ``tams_locks`` that other processes on the same tables respect.

    ``engine`` must run its transactions through this manager (``set_guard``; ``VastEngine`` does).
    """

    def __init__(
        self, engine: TableEngine, ttl: float = 60.0, wait: float = 60.0, stripes: int = STRIPES, renew: bool = True
    ) -> None:
        super().__init__(stripes)
        if ttl <= 0 or wait <= 0:
            raise ValueError("lock ttl and wait must be positive")
        set_guard = getattr(engine, "set_guard", None)
        if set_guard is None:
            raise TypeError(f"{type(engine).__name__} cannot run its transactions through table locks")
        self.ttl = ttl
        self.wait = wait  # also bounds waits for this process's own locks (LockManager.wait)
        self.process = uuid.uuid4().hex[:12]  # in owner ids, to tell processes apart when debugging
        engine.ensure_tables([LOCKS])
        self._raw = set_guard(self)  # transactions that bypass the guard: the lock table's own
        self._mine = threading.local()
        self._live: dict[str, _Claim] = {}
        self._live_lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        if renew:
            self._renewer = threading.Thread(target=self._renew_loop, name="tams-lock-renewer", daemon=True)
            self._renewer.start()

    # --- the LockManager hooks: names are only noted; transactions claim them ----------------
    def claim(self, names: list[str]) -> object | None:
        st = self._thread()
        for n in names:
            if st.held[n] == 0:
                st.pending.add(n)
            st.held[n] += 1
        return list(names)

    def unclaim(self, handle: object) -> None:
        st = self._thread()
        gone: dict[str, _Claim] = {}
        for n in handle:  # type: ignore[attr-defined]
            st.held[n] -= 1
            if st.held[n] > 0:
                continue
            del st.held[n]
            st.pending.discard(n)
            claim = st.claims.pop(n, None)
            if claim is not None:
                gone[n] = claim
        if gone:
            self._release(gone)

    def keep_claims(self, delta: int) -> None:
        self._thread().keep += delta

    def _thread(self) -> _Thread:
        st = getattr(self._mine, "state", None)
        if st is None:
            st = self._mine.state = _Thread()
        return st

    # --- the guard: every transaction of the engine passes here -----------------------------
    def transaction(self, run: Any, write: bool) -> contextlib.AbstractContextManager[Transaction]:
        st = self._thread()
        if not st.pending and not (write and st.claims and not st.keep):
            return run(write)  # nothing to claim or to release: a plain transaction
        return self._guarded(run, write, st)

    @contextlib.contextmanager
    def _guarded(self, run: Any, write: bool, st: _Thread) -> Iterator[Transaction]:
        deadline = time.monotonic() + self.wait
        pause = 0.002
        contested: float | None = None  # when another process's claim first kept this one waiting
        claim = self._insert(st, deadline) if st.pending else None
        releasing: dict[str, _Claim] = {}
        committing = False
        while True:
            try:
                with contextlib.ExitStack() as guards:  # exits after the commit (or rollback) below
                    with run(write) as tx:
                        seen = self._verify(tx, claim) if claim is not None else _Seen()
                        if claim is not None:
                            self._adopt(st, claim)
                            claim = None
                            if contested is not None:
                                telemetry.lock_wait("claim", time.monotonic() - contested)
                                contested = None
                        releasing = dict(st.claims) if write and not st.keep else {}
                        yield tx
                        if releasing:
                            for c in _distinct(releasing):
                                guards.enter_context(c.guard)  # no renewal of rows being deleted
                            self._delete_in(tx, releasing, seen)
                        committing = True
                    if releasing:
                        self._unadopt(st, releasing)
                        self._drop_live(releasing)
                return
            except _Contested:
                assert claim is not None
                self._withdraw(claim)
                if contested is None:
                    contested = time.monotonic()
                if time.monotonic() > deadline:
                    telemetry.lock_wait("claim", time.monotonic() - contested, timed_out=True)
                    raise LockTimeout(
                        f"{', '.join(claim.names)} held by another server for over {self.wait:.0f} s"
                    ) from None
                time.sleep(random.uniform(pause / 2, pause))
                pause = min(pause * 2, 0.5)
                claim = self._insert(st, deadline)
            except BaseException as exc:
                if claim is not None:  # claimed but never adopted: leave nothing behind
                    self._withdraw(claim)
                elif releasing and committing and not isinstance(exc, Conflict):
                    # The commit's fate is unknown (Conflict: it did not happen, the claims stand).
                    self._unadopt(st, releasing)
                    self._release(releasing)
                raise

    def _insert(self, st: _Thread, deadline: float) -> _Claim:
        """The claim transaction: my rows for every pending name, committed."""
        names = sorted(st.pending)
        pause = 0.002
        while True:
            claim = _Claim(owner=f"{self.process}-{uuid.uuid4().hex}", names=names)
            try:
                with self._raw(False) as tx:  # no commit marker: see the module's docstring
                    rows = [{"name": n, "owner": claim.owner, "expires": time.time() + self.ttl} for n in names]
                    tx.insert(LOCKS.name, LOCKS.rows(rows))
                return claim
            except Conflict:  # a collision in the lock table itself: just another try
                self._withdraw(claim)
                if time.monotonic() > deadline:
                    raise LockTimeout(f"{', '.join(names)}: the lock table stays busy") from None
                time.sleep(random.uniform(pause / 2, pause))
                pause = min(pause * 2, 0.5)
            except Exception:  # e.g. the commit's reply lost: if the rows landed, take them back
                self._withdraw(claim)
                raise

    def _verify(self, tx: Transaction, claim: _Claim) -> _Seen:
        """In the operation's transaction: raise ``_Contested`` if another live claim is there; else
        what the release will delete (my rows, and expired claims of others)."""
        rows = tx.select(LOCKS.name, ["name", "owner", "expires"], col("name").isin(claim.names), row_ids=True)
        now = time.time()
        seen = _Seen(claim.owner)
        for r in rows.to_pylist():
            if r["owner"] == claim.owner:
                seen.mine[r["name"]] = r[ROW_ID]
            elif r["expires"] > now:
                raise _Contested()
            else:
                seen.expired.append(r[ROW_ID])
        return seen

    def _adopt(self, st: _Thread, claim: _Claim) -> None:
        for n in claim.names:
            st.pending.discard(n)
            st.claims[n] = claim
        with self._live_lock:
            self._live[claim.owner] = claim

    def _delete_in(self, tx: Transaction, names: dict[str, _Claim], seen: _Seen) -> None:
        """Delete my rows on ``names`` (and expired claims seen) in ``tx``; rows of claims adopted
        in earlier transactions are looked up here (row ids are only trusted within a transaction)."""
        doomed = list(seen.expired)
        unseen = {}
        for n, claim in names.items():
            if claim.owner == seen.owner and n in seen.mine:
                doomed.append(seen.mine[n])
            else:
                unseen[n] = claim.owner
        if unseen:
            rows = tx.select(LOCKS.name, ["name", "owner"], col("name").isin(sorted(unseen)), row_ids=True)
            doomed += [r[ROW_ID] for r in rows.to_pylist() if unseen[r["name"]] == r["owner"]]
        if doomed:
            tx.delete(LOCKS.name, doomed)

    @staticmethod
    def _unadopt(st: _Thread, names: dict[str, _Claim]) -> None:
        """``names`` are no longer claimed in the table (still held here: pending again)."""
        for n, claim in names.items():
            if st.claims.get(n) is claim:
                del st.claims[n]
                st.pending.add(n)

    def _drop_live(self, names: dict[str, _Claim]) -> None:
        for claim in _distinct(names):
            left = [n for n in claim.names if n not in names]
            claim.names = left
            if not left:
                with self._live_lock:
                    self._live.pop(claim.owner, None)

    # --- lock-table transactions of their own ------------------------------------------------
    def _withdraw(self, claim: _Claim) -> None:
        try:
            self._delete({n: claim for n in claim.names}, drop_expired=True)
        except Exception:
            log.warning("could not withdraw lock claims on %s; they expire in %.0f s", claim.names, self.ttl)

    def _release(self, names: dict[str, _Claim]) -> None:
        """Delete my rows on ``names`` in a transaction of their own."""
        claims = _distinct(names)
        try:
            with contextlib.ExitStack() as guards:  # not while the renewer writes new expiries to them
                for claim in claims:
                    guards.enter_context(claim.guard)
                self._drop_live(names)
                self._delete(names, drop_expired=True)
        except Exception:
            # The claim expires by itself; meanwhile other processes wait for it (at most ttl).
            log.exception("could not release locks %s; they expire in at most %.0f s", sorted(names), self.ttl)

    def _delete(self, names: dict[str, _Claim], drop_expired: bool = False) -> None:
        with self._raw(False) as tx:
            rows = tx.select(LOCKS.name, ["name", "owner", "expires"], col("name").isin(sorted(names)), row_ids=True)
            now = time.time()
            doomed = [
                r[ROW_ID]
                for r in rows.to_pylist()
                if r["owner"] == names[r["name"]].owner or (drop_expired and r["expires"] <= now)
            ]
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
            if claim.names:
                self._extend(claim)

    def _extend(self, claim: _Claim) -> None:
        with self._raw(False) as tx:
            rows = tx.select(LOCKS.name, ["owner"], col("name").isin(claim.names), row_ids=True).to_pylist()
            ids = [r[ROW_ID] for r in rows if r["owner"] == claim.owner]
            if ids:
                expires = pa.array([time.time() + self.ttl] * len(ids), pa.float64())
                tx.update(LOCKS.name, pa.table({ROW_ID: pa.array(ids), "expires": expires}))

    def close(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)


def _distinct(names: dict[str, _Claim]) -> list[_Claim]:
    """The claims behind some names, each once."""
    return list({id(c): c for c in names.values()}.values())
