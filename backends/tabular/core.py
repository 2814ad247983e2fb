"""What every resource of the tabular store shares: units of work (transactions, retries, events
published after commit) and small reads. The resources are mixins of :class:`TabularCore`
(``sources``, ``flows``, ``segments``, ``objects``, ``deletions``, ``webhooks``, ``service``),
composed into the backend by ``store``.

Writes
    One transaction per API write, spanning every table it touches, begun only after the
    operation's locks are taken (``locks``). Segment registration holds the flow's lock, so
    concurrent writers to one flow are serialised and each checks for overlaps inside its own
    transaction, which already sees what the previous one committed. A transaction that collides
    with a concurrent one (``Conflict``) is run again. Events are published after the commit,
    still under the locks, so receivers see them in commit order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from backends import events, rules, telemetry
from backends.base import Backend, BackendServices, Json, Page, PageRequest
from backends.deletion import BackgroundWorker
from backends.objectstore import ObjectStore
from backends.tabular.engine import (
    ALL,
    Conflict,
    EngineUnavailable,
    Order,
    TableEngine,
    TableSpec,
    Transaction,
    Where,
    chunks,
    col,
)
from backends.tabular.locks import LockManager
from backends.tabular.tables import TABLES, select_rows

if TYPE_CHECKING:
    from backends.tabular.objects import _ObjectState
    from backends.tabular.tables import _FlowRecord
    from backends.timerange import TimeRange

log = logging.getLogger("tams_server.tabular")
T = TypeVar("T")

SCAN_CHUNK = 256  # rows per select when listing sources or flows
ID_CHUNK = 1000  # ids per isin
RETRIES = 10


def _busy(exc: Conflict) -> EngineUnavailable:
    # The engine's message may name files and internals: it goes to the log, not to the client.
    log.warning("the store stays busy after %d attempts: %s", RETRIES, exc)
    return EngineUnavailable("the store stays busy: try again")


class _TransactionCounts:
    """The store-transaction counters of one engine and kind (read or write), looked up once."""

    def __init__(self, engine: TableEngine, kind: str) -> None:
        name = type(engine).__name__.removesuffix("Engine").lower() or "tabular"  # sqlite, vast, ...
        self.began = telemetry.bound(telemetry.STORE_TRANSACTIONS, name, kind)
        self.conflict = telemetry.bound(telemetry.STORE_CONFLICTS, name, kind)
        self.retry = telemetry.bound(telemetry.STORE_RETRIES, name, kind)
        self.busy = telemetry.bound(telemetry.STORE_BUSY, name, kind)


@dataclass
class _Effects:
    """What a transaction does besides writing: events to publish and work to start after commit."""

    wanted: bool = True  # False when no receiver would get an event: skip building them
    events: list[events.Event] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)


class TabularCore(Backend):
    """A TAMS store whose state lives in the tables of ``engine``; media in ``stores``."""

    def __init__(
        self,
        engine: TableEngine,
        stores: Iterable[ObjectStore],
        services: BackendServices,
        locks: LockManager | None = None,
        owns_engine: bool = True,
    ) -> None:
        self._engine = engine
        self._owns_engine = owns_engine
        self._stores = {s.info.id: s for s in stores}
        self._events = services.events
        self._policy = services.policy
        self._url_lifetime = services.url_lifetime
        self._locks = locks or LockManager()
        self._reads, self._writes = _TransactionCounts(engine, "read"), _TransactionCounts(engine, "write")
        self._worker = BackgroundWorker(self, services.policy)
        engine.ensure_tables(TABLES)
        self._webhooks: list[Json] | None = None
        self._webhooks_lock = threading.Lock()
        self._closed = False

    @property
    def engine(self) -> TableEngine:
        return self._engine

    # --- units of work ---------------------------------------------------------------------
    def _read(self, body: Callable[[Transaction], T]) -> T:
        count = self._reads
        for attempt in range(RETRIES):
            count.began()
            try:
                with self._engine.transaction(write=False) as tx:
                    return body(tx)
            except Conflict as exc:
                count.conflict()
                if attempt == RETRIES - 1:
                    count.busy()
                    raise _busy(exc) from exc
                count.retry()
                time.sleep(0.001 * (attempt + 1))
        raise AssertionError("unreachable")

    def _write(self, body: Callable[[Transaction, _Effects], T]) -> T:
        """Run ``body`` in a write transaction (again on a conflict); then publish its effects.

        The caller holds the operation's locks, so the transaction begins after them.
        """
        count = self._writes
        for attempt in range(RETRIES):
            effects = _Effects(wanted=self._wants_events())
            count.began()
            try:
                with self._engine.transaction(write=True) as tx:
                    result = body(tx, effects)
            except Conflict as exc:
                count.conflict()
                if attempt == RETRIES - 1:
                    count.busy()
                    raise _busy(exc) from exc
                count.retry()
                log.debug("transaction conflict, retrying (%d)", attempt + 1)
                time.sleep(0.002 * (attempt + 1))
                continue
            for event in effects.events:
                self._events.publish(event)
            for action in effects.after:
                action()
            return result
        raise AssertionError("unreachable")

    def _wants_events(self) -> bool:
        return events.wanted(self._events)

    # --- small reads -----------------------------------------------------------------------
    @staticmethod
    def _rows(tx: Transaction, spec: TableSpec, where: Where, row_ids: bool = False, **kw: Any) -> list[Json]:
        return select_rows(tx, spec, where, row_ids=row_ids, **kw)

    def _rows_in(
        self, tx: Transaction, spec: TableSpec, column: str, values: Iterable[str], extra: Where = ALL, **kw: Any
    ) -> list[Json]:
        found: list[Json] = []
        for part in chunks(sorted(set(values)), ID_CHUNK):
            found += self._rows(tx, spec, col(column).isin(part) & extra, **kw)
        return found

    def _scan_page(
        self,
        tx: Transaction,
        spec: TableSpec,
        where: Where,
        page: PageRequest,
        select: Callable[[list[Json]], list[Json]],
    ) -> Page[Json]:
        """``rules.paged`` over a table sorted by id, read in chunks until the page is full."""
        limit = rules.page_limit(page.limit)
        after = rules.decode_cursor(page.page) if page.page is not None else None
        chosen: list[Json] = []
        while True:
            bound = where if after is None else where & (col("id") > after)
            rows = self._rows(tx, spec, bound, order=[Order("id")], limit=SCAN_CHUNK)
            chosen += select(rows)
            if len(chosen) > limit or len(rows) < SCAN_CHUNK:
                break
            after = rows[-1]["id"]
        more = len(chosen) > limit
        chosen = chosen[:limit]
        return Page(chosen, limit, rules.encode_cursor(chosen[-1]["id"]) if more else None)

    # --- what one resource's mixin offers the others (declared here for type checkers) ---------
    if TYPE_CHECKING:
        # flows
        def _flow_or_none(self, tx: Transaction, flow_id: str) -> _FlowRecord | None: ...
        def _flow(self, tx: Transaction, flow_id: str) -> _FlowRecord: ...
        def _save_flow(self, tx: Transaction, record: _FlowRecord) -> None: ...
        def _collectors_of(self, tx: Transaction, member_ids: Iterable[str]) -> dict[str, set[str]]: ...
        def _flow_event(
            self, tx: Transaction, fx: _Effects, kind: str, flow: Json, payload: Json | None = None
        ) -> None: ...
        def _remove_flow(self, tx: Transaction, fx: _Effects, record: _FlowRecord, announce: bool) -> None: ...

        # sources
        def _source_doc(self, tx: Transaction, source_id: str) -> tuple[Json, Any] | None: ...
        def _source_view_by_id(self, tx: Transaction, source_id: str) -> Json: ...
        def _leave_source(self, tx: Transaction, fx: _Effects, source_id: str) -> None: ...

        # segments
        def _may_overlap(self, tx: Transaction, flow_id: str, query: TimeRange) -> bool: ...
        def _overlapping(self, tx: Transaction, flow_id: str, query: TimeRange) -> Where | None: ...
        def _delete_covered(
            self,
            tx: Transaction,
            fx: _Effects,
            record: _FlowRecord,
            timerange: TimeRange,
            object_id: str | None,
            limit: int | None,
        ) -> TimeRange: ...

        # objects
        def _storage_ids(self, tx: Transaction, object_ids: Iterable[str]) -> dict[str, str | None]: ...
        def _controlled_urls(self, segment: rules.Segment, storage_id: str | None) -> list[rules.ControlledUrl]: ...
        def _object_states(self, tx: Transaction, object_ids: Iterable[str]) -> dict[str, _ObjectState]: ...
        def _flow_references(
            self, tx: Transaction, flow_id: str, object_ids: Iterable[str]
        ) -> dict[str, _ObjectState]: ...
        @staticmethod
        def _reference(
            objects: dict[str, _ObjectState],
            references: dict[str, _ObjectState],
            object_id: str,
            flow_id: str,
            clock: float,
        ) -> None: ...
        def _save_objects(self, tx: Transaction, objects: dict[str, _ObjectState]) -> None: ...
        def _save_references(self, tx: Transaction, flow_id: str, references: dict[str, _ObjectState]) -> None: ...
        def _drop_references(self, tx: Transaction, flow_id: str, object_ids: list[str]) -> None: ...

        # profiles
        def _profile_or_none(self, tx: Transaction, profile_id: str) -> Json | None: ...

        # deletions
        def _start_deletion(
            self,
            tx: Transaction,
            fx: _Effects,
            flow: Json,
            timerange: TimeRange,
            object_id: str | None,
            delete_flow: bool,
        ) -> Json: ...
