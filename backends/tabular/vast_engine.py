"""The VAST DB table engine: the tabular TAMS store's tables in a VAST database, through ``vastdb``.

How the engine interface maps onto the SDK (``vastdb`` 2.1, see ``shared/notes/vastdb.md``):

* tables live in ``<bucket>/<schema>``; the bucket (a VAST view with the database protocol) must
  exist, the schema and tables are created at start-up and evolved by adding columns, never
  dropped. Table metadata is loaded once, then every transaction opens its tables with
  ``tx.table_from_metadata`` (no RPC), so a request costs begin + its selects/writes + commit;
* each thread keeps its own SDK session (the SDK's sessions are not documented as thread-safe),
  so connections are reused and never shared between concurrent transactions;
* predicates become ibis expressions of the SDK's pushdown shape (the interface's builder allows
  nothing else); selects ask for one split (metadata-sized tables) and any ORDER BY / LIMIT is
  done here, on the client, because VAST returns rows in no particular order;
* update and delete go by ``$row_id`` (uint64), as the SDK requires.

Writes whose commit reply is lost. A connection error or a 5xx reply to the commit leaves its
outcome unknown, and retrying blindly could apply a write twice. Every write transaction therefore
also inserts a marker row (a fresh id) into ``tams_commits``; when the commit's outcome is
unknown, the engine tries to roll the transaction back, then looks for the marker in a new
transaction: found means committed (the block ends normally), absent means not committed
(:class:`Conflict`, so the caller runs the whole operation again). If the database cannot be
reached to settle it, the request fails with 503 rather than guess. Markers older than an hour
are deleted from time to time. The marker is one insert inside the write's own transaction (no
transaction of its own).

A guard (:meth:`VastEngine.set_guard`, the cross-process locks of ``table_locks``) may wrap every
transaction: it is handed the unguarded transactions, which it uses for its own table.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, NoReturn, Protocol

import pyarrow as pa

from backends.tabular.engine import (
    ALL,
    ROW_ID,
    Conflict,
    EngineError,
    EngineUnavailable,
    Order,
    TableEngine,
    TableSpec,
    Transaction,
    Where,
    col,
)

log = logging.getLogger("tams_server.vast")

COMMITS = TableSpec("tams_commits", pa.schema([("write_id", pa.string()), ("at", pa.float64())]), lookup=("write_id",))
MARKER_TTL = 3600.0  # seconds a commit marker is kept (far longer than any retry of its write)
SWEEP_EVERY = 512  # write commits between sweeps of old markers
ROW_ID_TYPE = pa.uint64()


RawTransaction = Callable[[bool], AbstractContextManager[Transaction]]


class TransactionGuard(Protocol):
    def transaction(self, run: RawTransaction, write: bool) -> AbstractContextManager[Transaction]:
        """A transaction (begun with ``run``) with whatever the guard adds around it."""
        ...


def _sdk() -> Any:
    try:
        import vastdb
        import vastdb.errors
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError("the vast backend needs the VAST DB SDK: pip install 'tams-server[vast]'") from exc
    return vastdb


def _unknown_outcome_errors() -> tuple[type[BaseException], ...]:
    """Errors after which a commit may or may not have happened."""
    errors = _sdk().errors
    kinds: list[type[BaseException]] = [errors.ConnectionError, errors.InternalServerError, errors.ServiceUnavailable]
    with contextlib.suppress(ImportError):
        import requests

        kinds.append(requests.exceptions.RequestException)
    return tuple(kinds)


def _translate(exc: BaseException) -> BaseException:
    """An SDK error as an engine error (others pass through unchanged)."""
    errors = _sdk().errors
    if isinstance(exc, errors.Conflict):
        return Conflict(f"VAST DB conflict: {exc}")
    busy = (errors.RequestTimeout, errors.InsufficientCapacity, errors.MissingTransaction)
    if isinstance(exc, _unknown_outcome_errors() + busy):
        return EngineUnavailable(f"VAST DB unavailable: {type(exc).__name__}")
    if isinstance(exc, errors.HttpError | errors.InvalidArgument):
        return EngineError(f"VAST DB error: {type(exc).__name__}: {exc}")
    return exc


def _reraise(exc: BaseException) -> NoReturn:
    """Raise ``exc`` as the engine error it stands for (unchanged when it is not an SDK error)."""
    translated = _translate(exc)
    if translated is exc:
        raise exc
    raise translated from exc


def to_predicate(table: Any, where: Where) -> Any:
    """``where`` as an ibis boolean expression over ``table``'s columns (None: every row)."""
    predicate = None
    for clause in where.clauses:
        column = table[clause[0].column]
        ored = None
        for term in clause:
            if term.op == "isin":
                expr = column.isin(list(term.value))
            elif term.op == "isnull":
                expr = column.isnull()
            elif term.op == "notnull":
                expr = ~column.isnull()  # the one negation VAST pushes down (ibis' notnull() is refused)
            else:
                expr = {
                    "==": column.__eq__,
                    "!=": column.__ne__,
                    "<": column.__lt__,
                    "<=": column.__le__,
                    ">": column.__gt__,
                    ">=": column.__ge__,
                }[term.op](term.value)
            ored = expr if ored is None else ored | expr
        predicate = ored if predicate is None else predicate & ored
    return predicate


def _conform(rows: pa.Table, schema: pa.Schema, keep_row_id: bool = False) -> pa.Table:
    """``rows`` with exactly the types of ``schema``; with ``keep_row_id``, only the given columns plus
    ``$row_id`` (updates), else every column of the table, missing ones null (inserts)."""
    arrays: list[pa.Array | pa.ChunkedArray] = []
    fields: list[pa.Field] = []
    if keep_row_id:
        arrays.append(rows.column(ROW_ID).cast(ROW_ID_TYPE))
        fields.append(pa.field(ROW_ID, ROW_ID_TYPE))
    for f in schema:
        if f.name in rows.column_names:
            arrays.append(rows.column(f.name).cast(f.type))
        elif keep_row_id:
            continue
        else:
            arrays.append(pa.nulls(rows.num_rows, f.type))
        fields.append(f)
    unknown = set(rows.column_names) - set(schema.names) - {ROW_ID}
    if unknown:
        raise EngineError(f"no such columns: {', '.join(sorted(unknown))}")
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


class VastTransaction(Transaction):
    def __init__(self, engine: VastEngine, tx: Any) -> None:
        self._engine = engine
        self._tx = tx
        self._tables: dict[str, Any] = {}
        self.wrote = False

    def _table(self, name: str) -> Any:
        handle = self._tables.get(name)
        if handle is None:
            try:
                metadata = self._engine._metadata[name]
            except KeyError:
                raise EngineError(f"unknown table {name!r} (not ensured at start-up)") from None
            handle = self._tables[name] = self._tx.table_from_metadata(metadata)
        return handle

    def _call(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except Exception as exc:
            _reraise(exc)

    def select(
        self,
        table: str,
        columns: Sequence[str] | None = None,
        where: Where = ALL,
        order: Sequence[Order] = (),
        limit: int | None = None,
        row_ids: bool = False,
    ) -> pa.Table:
        handle = self._table(table)
        wanted = list(handle.arrow_schema.names if columns is None else columns)
        fetched = wanted + [o.column for o in order if o.column not in wanted]
        if not fetched and not row_ids:
            fetched = [handle.arrow_schema.names[0]]  # the SDK needs a column to return row counts
        predicate = to_predicate(handle, where)
        # Without an order, any `limit` rows will do, and the SDK can stop early.
        limit_rows = limit if limit is not None and not order else None
        if limit == 0:
            return _empty(handle.arrow_schema, wanted, row_ids)
        result = self._call(
            lambda: handle.select(
                columns=list(fetched),
                predicate=predicate,
                config=self._engine.query_config(),
                internal_row_id=row_ids,
                limit_rows=limit_rows,
            ).read_all()
        )
        self._engine.rows_read += result.num_rows
        if order:
            result = result.sort_by([(o.column, "descending" if o.descending else "ascending") for o in order])
        if limit is not None:
            result = result.slice(0, limit)
        return result.select(wanted + ([ROW_ID] if row_ids else []))

    def scan(self, table: str, columns: Sequence[str], batch_rows: int, where: Where = ALL) -> Iterator[pa.RecordBatch]:
        """The rows as the SDK's reader streams them, re-cut to at most ``batch_rows`` rows."""
        handle = self._table(table)
        fetched = list(columns) or [handle.arrow_schema.names[0]]
        predicate = to_predicate(handle, where)
        config = self._engine.query_config()
        reader = self._call(lambda: handle.select(columns=fetched, predicate=predicate, config=config))
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except Exception as exc:
                _reraise(exc)
            self._engine.rows_read += batch.num_rows
            batch = batch.select(list(columns))
            for start in range(0, batch.num_rows, batch_rows):
                yield batch.slice(start, batch_rows)

    def insert(self, table: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        handle = self._table(table)
        batch = _conform(rows, handle.arrow_schema)
        self.wrote = True
        self._call(lambda: handle.insert(batch))

    def update(self, table: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        if ROW_ID not in rows.column_names:
            raise EngineError("update needs the rows' row ids")
        handle = self._table(table)
        batch = _conform(rows, handle.arrow_schema, keep_row_id=True)
        self.wrote = True
        self._call(lambda: handle.update(batch))

    def delete(self, table: str, row_ids: Sequence[Any]) -> None:
        if not row_ids:
            return
        handle = self._table(table)
        ids = pa.table({ROW_ID: pa.array([int(i) for i in row_ids], ROW_ID_TYPE)})
        self.wrote = True
        self._call(lambda: handle.delete(ids))


def _empty(schema: pa.Schema, columns: list[str], row_ids: bool) -> pa.Table:
    fields = [schema.field(c) for c in columns] + ([pa.field(ROW_ID, ROW_ID_TYPE)] if row_ids else [])
    return pa.schema(fields).empty_table()


class VastEngine(TableEngine):
    """Tables in ``bucket``/``schema`` of a VAST database; ``connect()`` makes one SDK session.

    ``connect`` is called once per thread that uses the engine. ``query`` holds ``QueryConfig``
    fields for every select (``num_splits`` defaults to 1: these are metadata tables).
    """

    sorts_on_client = True
    # Seconds between looks for the marker of a commit that could not be rolled back (it may still land).
    settle_pauses: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)

    def __init__(
        self,
        connect: Callable[[], Any],
        bucket: str,
        schema: str,
        query: dict[str, Any] | None = None,
        description: str = "VAST DB",
        commit_markers: bool = True,
    ) -> None:
        self._connect = connect
        self.bucket = bucket
        self.schema = schema
        self._query = {"num_splits": 1, "num_sub_splits": 1, **(query or {})}
        self._description = description
        self._commit_markers = commit_markers
        self._local = threading.local()
        self._metadata: dict[str, Any] = {}
        self._ddl_lock = threading.Lock()
        self._writes = 0
        self._closed = False
        self._guard: TransactionGuard | None = None
        self.rows_read = 0  # rows returned by selects (not exact under threads; for benchmarks)
        if commit_markers:
            self.ensure_tables([COMMITS])

    @property
    def description(self) -> str:
        return self._description

    def query_config(self) -> Any:
        from vastdb.config import QueryConfig

        return QueryConfig(**self._query)

    def session(self) -> Any:
        """This thread's SDK session (made on first use)."""
        if self._closed:
            raise EngineError("the VAST engine is closed")
        session = getattr(self._local, "session", None)
        if session is None:
            try:
                session = self._local.session = self._connect()
            except Exception as exc:
                _reraise(exc)
        return session

    # --- schema ------------------------------------------------------------------------------
    def ensure_tables(self, specs: Iterable[TableSpec]) -> None:
        specs = list(specs)
        with self._ddl_lock:
            for attempt in range(5):
                try:
                    self._ensure(specs)
                    return
                except Exception as exc:
                    if not isinstance(_translate(exc), Conflict) or attempt == 4:
                        _reraise(exc)
                    time.sleep(0.05 * (attempt + 1))  # another server is creating the same tables

    def _ensure(self, specs: list[TableSpec]) -> None:
        sdk = _sdk()
        from vastdb.table_metadata import TableMetadata, TableRef, TableType

        with self.session().transaction() as tx:
            try:
                bucket = tx.bucket(self.bucket)
            except sdk.errors.MissingBucket:
                raise EngineError(
                    f"the VAST bucket {self.bucket!r} does not exist: create it (a view with the database "
                    "protocol) in VMS; the SDK cannot create buckets"
                ) from None
            schema = bucket.schema(self.schema, fail_if_missing=False)
            if schema is None:
                schema = bucket.create_schema(self.schema, fail_if_exists=False)
            for spec in specs:
                table = schema.table(spec.name, fail_if_missing=False)
                if table is None:
                    log.info("creating table %s/%s/%s", self.bucket, self.schema, spec.name)
                    table = schema.create_table(spec.name, spec.schema, fail_if_exists=False)
                have = {f.name: f.type for f in table.arrow_schema}
                for f in spec.schema:
                    if f.name not in have:
                        log.info("adding column %s to %s", f.name, spec.name)
                        table.add_column(pa.schema([f]))
                    elif have[f.name] != f.type:
                        found = have[f.name]
                        raise EngineError(f"column {spec.name}.{f.name} is {found} in VAST DB, expected {f.type}")
                current = table.arrow_schema if all(f.name in have for f in spec.schema) else None
                if current is None:
                    current = schema.table(spec.name).arrow_schema
                ref = TableRef(self.bucket, self.schema, spec.name)
                self._metadata[spec.name] = TableMetadata(ref, arrow_schema=current, table_type=TableType.Regular)

    # --- transactions --------------------------------------------------------------------------
    def set_guard(self, guard: TransactionGuard) -> RawTransaction:
        """Run every transaction through ``guard``; returns the unguarded transactions, for its own use."""
        self._guard = guard
        return self._transaction

    def transaction(self, write: bool) -> AbstractContextManager[Transaction]:
        guard = self._guard
        return self._transaction(write) if guard is None else guard.transaction(self._transaction, write)

    @contextlib.contextmanager
    def _transaction(self, write: bool) -> Iterator[Transaction]:
        session = self.session()
        sdk_tx = session.transaction()
        try:
            sdk_tx.__enter__()
        except Exception as exc:
            _reraise(exc)
        wrapper = VastTransaction(self, sdk_tx)
        try:
            yield wrapper
            marker = None
            if write and wrapper.wrote and self._commit_markers:
                marker = uuid.uuid4().hex
                wrapper.insert(COMMITS.name, COMMITS.rows([{"write_id": marker, "at": time.time()}]))
        except BaseException:
            _rollback(session, sdk_tx)
            raise
        txid = getattr(sdk_tx, "txid", None)
        try:
            sdk_tx.__exit__(None, None, None)
        except Exception as exc:
            if isinstance(_translate(exc), Conflict) or not isinstance(exc, _unknown_outcome_errors()):
                _reraise(exc)
            if not wrapper.wrote:
                log.warning("commit of a read-only transaction failed (%s); its reads stand", type(exc).__name__)
            elif marker is None:
                raise EngineUnavailable(f"VAST DB unreachable at commit: {type(exc).__name__}") from exc
            else:
                self._settle(session, txid, marker, exc)
        if marker is not None:
            self._after_write()

    def _settle(self, session: Any, txid: Any, marker: str, cause: BaseException) -> None:
        """Decide whether a commit whose reply was lost happened (return) or not (Conflict: run the
        write again). An absent marker proves nothing while the commit may still be in flight, so
        it is trusted only once the transaction has been rolled back; otherwise the marker is
        looked for a few times more, and if it never shows, the request fails with 503."""
        log.warning("commit outcome unknown (%s); settling it by its marker", type(cause).__name__)
        aborted = False
        api = getattr(session, "api", None)
        if txid is not None and api is not None:
            try:
                api.rollback_transaction(txid)
                aborted = True
            except Exception:
                log.info("could not roll back the transaction (committed, expired or unreachable)")
        for pause in self.settle_pauses:
            try:
                with self._transaction(write=False) as tx:
                    found = tx.select(COMMITS.name, ["write_id"], _marker(marker)).num_rows
            except EngineUnavailable:
                found = 0
            if found:
                log.info("the commit had happened")
                return
            if aborted:
                raise Conflict("the commit did not happen; running the write again")
            time.sleep(pause)
        raise EngineUnavailable("VAST DB: a write could not be settled (it may have been applied)") from cause

    def _after_write(self) -> None:
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            try:
                self.sweep_markers()
            except Exception:
                log.warning("could not delete old commit markers", exc_info=True)

    def sweep_markers(self, older_than: float = MARKER_TTL) -> int:
        """Delete commit markers older than ``older_than`` seconds."""
        with self._transaction(write=False) as tx:
            old = tx.select(COMMITS.name, [], col("at") < time.time() - older_than, row_ids=True)
            ids = old.column(ROW_ID).to_pylist()
            if ids:
                tx.delete(COMMITS.name, ids)
        return len(ids)

    def close(self) -> None:
        self._closed = True


def _rollback(session: Any, sdk_tx: Any) -> None:
    """Roll back quietly: the SDK's own rollback logs a traceback, and a rollback follows every
    ordinary refusal (404, 400) of the TAMS rules."""
    api, txid = getattr(session, "api", None), getattr(sdk_tx, "txid", None)
    try:
        if api is not None and txid is not None:
            sdk_tx.txid = None
            api.rollback_transaction(txid)
        else:
            sdk_tx.__exit__(RuntimeError, RuntimeError("rollback"), None)
    except Exception:
        log.warning("rollback failed (the transaction expires on the server)", exc_info=True)


def _marker(marker: str) -> Where:
    return col("write_id") == marker
