"""The embedded table engine of the ``local`` backend: SQLite (the standard library's), WAL mode.

Why SQLite rather than DuckDB (which this engine replaced; see the README's comparison): a TAMS
request is a handful of point lookups and short range reads, which SQLite answers in microseconds
from B-tree indexes (a DuckDB statement costs ~0.3 ms before it reads anything, and its indexes
serve equality only, so a time range is a scan).

Reads
    Each read transaction takes a connection of its own from a pool; WAL gives it one snapshot
    (from its first select) while writers go on.
Writes: group commit
    One connection writes. A write transaction runs on it under a mutex, inside a SAVEPOINT of a
    transaction that several writers share: when a writer's block ends and others are already
    waiting for the connection, it leaves the commit to them; the last writer of such a burst
    commits for all of them (one COMMIT, one fsync) and wakes the others. A block that raises rolls
    back to its savepoint only. No writer returns before the COMMIT that holds its writes is on
    disk (``synchronous=FULL``: the WAL is synced at each commit), so a 2xx still means durable
    across a crash or a power cut. Writers of one transaction hold different locks of the store
    (each waits for its commit holding its own), so sharing a commit reorders nothing.
Indexes
    ``lookup`` columns get an index each and ``order`` columns one composite index, so selects by
    id and time ranges of a flow's segments (``flow_id, start_key``) are B-tree seeks.
Row ids
    SQLite's ``rowid``: stable within a transaction, as the interface asks.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from backends.errors import StorageFull
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
)

log = logging.getLogger("tams_server.sqlite")

_TYPES = {
    pa.string(): "TEXT",
    pa.int64(): "INTEGER",
    pa.int32(): "INTEGER",
    pa.float64(): "REAL",
    pa.bool_(): "INTEGER",
    pa.binary(): "BLOB",
}
_SQL_OPS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
BUSY_TIMEOUT_MS = 10_000
ID_CHUNK = 500  # row ids per DELETE


class EngineStorageFull(EngineError, StorageFull):
    """The database's disk (or quota) is full: the write was not made (HTTP 507, not a conflict)."""

    def __init__(self, summary: str) -> None:
        StorageFull.__init__(self, summary)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_type(arrow_type: pa.DataType) -> str:
    try:
        return _TYPES[arrow_type]
    except KeyError:
        raise EngineError(f"no SQLite column type for Arrow {arrow_type}") from None


def _param(value: Any) -> Any:
    return bytes(value) if isinstance(value, bytearray | memoryview) else value


def where_sql(where: Where) -> tuple[str, list[Any]]:
    """The SQL condition and its parameters for a predicate (``1`` for none)."""
    return _condition(_shape(where)), _params(where)


def _shape(where: Where) -> tuple[tuple[tuple[str, str, int], ...], ...]:
    """What a predicate's SQL text depends on: its columns and operators (and list lengths), not its values."""
    return tuple(
        tuple((t.column, t.op, len(t.value) if t.op == "isin" else 0) for t in clause) for clause in where.clauses
    )


def _params(where: Where) -> list[Any]:
    params: list[Any] = []
    for clause in where.clauses:
        for term in clause:
            if term.op == "isin":
                params += [_param(v) for v in term.value]
            elif term.op not in ("isnull", "notnull"):
                params.append(_param(term.value))
    return params


def _condition(shape: tuple[tuple[tuple[str, str, int], ...], ...]) -> str:
    parts: list[str] = []
    for clause in shape:
        terms = []
        for column, op, count in clause:
            quoted = _quote(column)
            if op == "isin":
                terms.append(f"{quoted} IN ({', '.join('?' * count)})")
            elif op == "isnull":
                terms.append(f"{quoted} IS NULL")
            elif op == "notnull":
                terms.append(f"{quoted} IS NOT NULL")
            else:
                terms.append(f"{quoted} {_SQL_OPS[op]} ?")
        parts.append(terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")")
    return " AND ".join(parts) or "1"


def _translate(exc: sqlite3.Error) -> EngineError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "disk is full" in str(exc):
        log.error("the database cannot write: %s", exc)
        return EngineStorageFull("the database's disk is full: the change was not made")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc):
        return Conflict(str(exc))
    return EngineError(f"{type(exc).__name__}: {exc}")


def _select_sql(
    table: str,
    names: Sequence[str],
    shape: tuple[tuple[tuple[str, str, int], ...], ...],
    order: Sequence[Order],
    limit: int | None,
    row_ids: bool,
) -> str:
    expressions = [_quote(c) for c in names] + (["rowid"] if row_ids else [])
    sql = f"SELECT {', '.join(expressions) or 'NULL'} FROM {_quote(table)} WHERE {_condition(shape)}"
    if order:
        sql += " ORDER BY " + ", ".join(_quote(o.column) + (" DESC" if o.descending else "") for o in order)
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql


class _Statements(dict):
    """SQL text by what it depends on, so that a request's selects are not written out again each
    time (SQLite's own cache then finds the prepared statement by that text). Bounded: a flood of
    distinct shapes (long ``isin`` lists of every length) empties it rather than growing it."""

    LIMIT = 4096

    def __setitem__(self, key: Any, value: str) -> None:
        if len(self) >= self.LIMIT:
            self.clear()
        super().__setitem__(key, value)


class SQLiteTransaction(Transaction):
    def __init__(self, engine: SQLiteEngine, connection: sqlite3.Connection) -> None:
        self._engine = engine
        self._connection = connection

    def _run(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._connection.execute(sql, params)
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    def _selected(
        self,
        table: str,
        columns: Sequence[str] | None,
        where: Where,
        order: Sequence[Order],
        limit: int | None,
        row_ids: bool,
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        names = list(self._engine.schema(table).names if columns is None else columns)
        key = (table, tuple(names), _shape(where), tuple(order), limit, row_ids)
        sql = self._engine.statements.get(key)
        if sql is None:
            sql = self._engine.statements[key] = _select_sql(table, names, key[2], order, limit, row_ids)
        rows = self._run(sql, _params(where)).fetchall()
        if not names and not row_ids:
            rows = [()] * len(rows)
        return names, rows

    def select(
        self,
        table: str,
        columns: Sequence[str] | None = None,
        where: Where = ALL,
        order: Sequence[Order] = (),
        limit: int | None = None,
        row_ids: bool = False,
    ) -> pa.Table:
        names, rows = self._selected(table, columns, where, order, limit, row_ids)
        schema = self._engine.schema(table)
        fields = [schema.field(n) for n in names]
        if row_ids:
            fields.append(pa.field(ROW_ID, pa.int64()))
        values = list(zip(*rows, strict=True)) if rows and fields else [()] * len(fields)
        arrays = [pa.array(v, type=f.type) for v, f in zip(values, fields, strict=True)]
        if not fields:
            return pa.table({"_none": pa.nulls(len(rows))}).select([])
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    def select_rows(
        self,
        table: str,
        columns: Sequence[str] | None = None,
        where: Where = ALL,
        order: Sequence[Order] = (),
        limit: int | None = None,
        row_ids: bool = False,
    ) -> list[dict[str, Any]]:
        """``select(...).to_pylist()`` without Arrow in between (what the store's small reads take)."""
        names, rows = self._selected(table, columns, where, order, limit, row_ids)
        keys = [*names, ROW_ID] if row_ids else names
        found = [dict(zip(keys, row, strict=True)) for row in rows]
        for name in self._engine.booleans(table).intersection(names):
            for row in found:
                if row[name] is not None:
                    row[name] = bool(row[name])
        return found

    def scan(self, table: str, columns: Sequence[str], batch_rows: int, where: Where = ALL) -> Iterator[pa.RecordBatch]:
        """The rows through one cursor, ``batch_rows`` at a time (only one batch is held in Python)."""
        schema = self._engine.schema(table)
        fields = [schema.field(n) for n in columns]
        absent = self._engine.absent(table)
        if absent is None:
            return
        listed = ", ".join("NULL" if c in absent else _quote(c) for c in columns) or "NULL"
        condition, params = where_sql(where)
        for name in absent & where.columns:  # a column the file lacks is null in every row
            condition = condition.replace(_quote(name), "NULL")
        cursor = self._run(f"SELECT {listed} FROM {_quote(table)} WHERE {condition}", params)
        while True:
            try:
                rows = cursor.fetchmany(batch_rows)
            except sqlite3.Error as exc:
                raise _translate(exc) from exc
            if not rows:
                return
            values = zip(*rows, strict=True)
            arrays = [pa.array(v, type=f.type) for v, f in zip(values, fields, strict=True)]
            yield pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))

    def insert(self, table: str, rows: pa.Table) -> None:
        if rows.num_rows:
            columns = [rows.column(n).to_pylist() for n in rows.column_names]
            self._insert(table, rows.column_names, zip(*columns, strict=True))

    def insert_rows(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """``insert`` of Python rows (missing keys are null) without Arrow in between."""
        if rows:
            names = [n for n in self._engine.schema(table).names if any(n in r for r in rows)]
            self._insert(table, names, ([r.get(n) for n in names] for r in rows))

    def _insert(self, table: str, names: Sequence[str], values: Iterable[Sequence[Any]]) -> None:
        sql = (
            f"INSERT INTO {_quote(table)} ({', '.join(_quote(n) for n in names)}) "
            f"VALUES ({', '.join('?' * len(names))})"
        )
        try:
            self._connection.executemany(sql, values)
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    def update_rows(
        self, table: str, columns: Sequence[str], row_ids: Sequence[Any], rows: Sequence[dict[str, Any]]
    ) -> None:
        """``update``: set ``columns`` of the rows named by ``row_ids`` to their values in ``rows``."""
        if rows:
            values = ([*(r[c] for c in columns), i] for i, r in zip(row_ids, rows, strict=True))
            self._update(table, columns, values)

    def update(self, table: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        if ROW_ID not in rows.column_names:
            raise EngineError("update needs the rows' row ids")
        names = [n for n in rows.column_names if n != ROW_ID]
        self._update(table, names, zip(*(rows.column(n).to_pylist() for n in [*names, ROW_ID]), strict=True))

    def _update(self, table: str, names: Sequence[str], values: Iterable[Sequence[Any]]) -> None:
        assignments = ", ".join(f"{_quote(n)} = ?" for n in names)
        try:
            self._connection.executemany(f"UPDATE {_quote(table)} SET {assignments} WHERE rowid = ?", values)
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    def delete(self, table: str, row_ids: Sequence[Any]) -> None:
        ids = [int(i) for i in row_ids]
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            self._run(f"DELETE FROM {_quote(table)} WHERE rowid IN ({', '.join('?' * len(chunk))})", chunk)


class _Batch:
    """Writers sharing one transaction; ``error`` is why its COMMIT failed."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = False
        self.error: EngineError | None = None


class SQLiteEngine(TableEngine):
    """Tables in one SQLite file, in WAL mode."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._specs: dict[str, pa.Schema] = {}
        self.statements = _Statements()
        self._booleans: dict[str, frozenset[str]] = {}
        self._pool: list[sqlite3.Connection] = []
        self._pool_lock = threading.Lock()
        self._closed = False
        if read_only:
            # A reader beside a running server (tams-admin report): no writer connection, no
            # journal-mode change; WAL gives each read transaction a snapshot while the server writes.
            # Nothing is created, so a table or column an older server did not make is absent:
            # ``scan`` reads it as empty, or null (table -> absent columns; None: the whole table).
            self._absent: dict[str, frozenset[str] | None] = {}
            if not path.exists():
                raise EngineError(f"no database at {path}")
            self._connection_lock = threading.Lock()
            self._writer = None
            return
        self._writer = self._connect()
        try:
            mode = self._writer.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise EngineError(f"cannot put {path} in WAL mode (it is in {mode} mode)")
            self._writer.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            self._writer.close()
            raise EngineError(f"cannot open the database {path}: {exc}") from exc
        # Group commit: ``_connection_lock`` serialises blocks on the writer connection; ``_state``
        # guards the open batch and the count of writers waiting for the connection.
        self._connection_lock = threading.Lock()
        self._state = threading.Condition(threading.Lock())
        self._batch: _Batch | None = None
        self._waiting = 0
        self._in_write = threading.local()

    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro" if self.read_only else self.path,
                uri=self.read_only,
                isolation_level=None,  # transactions are begun and ended here, explicitly
                check_same_thread=False,  # pooled: used by one thread at a time, not always the same
                cached_statements=512,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
        except sqlite3.Error as exc:
            raise EngineError(f"cannot open the database {self.path}: {exc}") from exc
        return connection

    @property
    def description(self) -> str:
        return f"SQLite {sqlite3.sqlite_version} at {self.path}"

    def absent(self, table: str) -> frozenset[str] | None:
        """Declared columns the file lacks (read-only engines; None: the table is missing)."""
        return getattr(self, "_absent", {}).get(table, frozenset())

    def booleans(self, table: str) -> frozenset[str]:
        """Columns of ``table`` holding booleans (SQLite gives them back as integers)."""
        return self._booleans.get(table, frozenset())

    def schema(self, table: str) -> pa.Schema:
        try:
            return self._specs[table]
        except KeyError:
            raise EngineError(f"table {table} was not declared (ensure_tables)") from None

    # --- tables --------------------------------------------------------------------------------
    def columns(self) -> dict[str, dict[str, str]]:
        """Table -> column -> SQLite type, as stored."""
        found: dict[str, dict[str, str]] = {}
        connection = self._take()
        try:
            tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            for (table,) in tables.fetchall():
                if not table.startswith("sqlite_"):
                    for row in connection.execute(f"PRAGMA table_info({_quote(table)})").fetchall():
                        found.setdefault(table, {})[row[1]] = row[2]
        except sqlite3.Error as exc:
            connection.close()
            raise _translate(exc) from exc
        self._give_back(connection)
        return found

    def ensure_tables(self, specs: Iterable[TableSpec]) -> None:
        specs = list(specs)
        existing = self.columns()
        if self.read_only:
            # Nothing is created: each table is known by the columns it has (a column an older
            # server did not write is left out of the schema, and a missing table reads as empty).
            for spec in specs:
                have = existing.get(spec.name)
                self._absent[spec.name] = None if have is None else frozenset(spec.schema.names) - have.keys()
                self._specs[spec.name] = spec.schema
                self._booleans[spec.name] = frozenset(f.name for f in spec.schema if f.type == pa.bool_())
            return
        with self._connection_lock:
            try:
                for spec in specs:
                    have = existing.get(spec.name)
                    if have is None:
                        columns = ", ".join(f"{_quote(f.name)} {_sql_type(f.type)}" for f in spec.schema)
                        self._writer.execute(f"CREATE TABLE {_quote(spec.name)} ({columns})")
                    else:
                        for f in spec.schema:
                            if f.name not in have:
                                self._writer.execute(
                                    f"ALTER TABLE {_quote(spec.name)} ADD COLUMN {_quote(f.name)} {_sql_type(f.type)}"
                                )
                    # A lookup column that leads the order index is served by it: one index less to write.
                    indexes = [(c,) for c in spec.lookup if spec.order[:1] != (c,)]
                    if spec.order:
                        indexes.append(spec.order)
                    for columns in indexes:
                        name = _quote(f"idx_{spec.name}_{'_'.join(columns)}")
                        listed = ", ".join(_quote(c) for c in columns)
                        self._writer.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {_quote(spec.name)} ({listed})")
                    self._specs[spec.name] = spec.schema
                    self._booleans[spec.name] = frozenset(f.name for f in spec.schema if f.type == pa.bool_())
            except sqlite3.Error as exc:
                raise _translate(exc) from exc

    # --- transactions --------------------------------------------------------------------------
    def transaction(self, write: bool) -> contextlib.AbstractContextManager[Transaction]:
        return self._write() if write else self._read()

    def _take(self) -> sqlite3.Connection:
        with self._pool_lock:
            if self._closed:
                raise EngineError("the database is closed")
            if self._pool:
                return self._pool.pop()
        return self._connect()

    def _give_back(self, connection: sqlite3.Connection) -> None:
        with self._pool_lock:
            if not self._closed and len(self._pool) < 32:
                self._pool.append(connection)
                return
        connection.close()

    @contextlib.contextmanager
    def _read(self) -> Iterator[Transaction]:
        connection = self._take()
        healthy = True
        try:
            try:
                connection.execute("BEGIN")
            except sqlite3.Error as exc:
                healthy = False
                raise _translate(exc) from exc
            try:
                yield SQLiteTransaction(self, connection)
            finally:
                try:
                    connection.execute("COMMIT")  # a read: nothing to write, only the snapshot to end
                except sqlite3.Error:
                    healthy = False
        finally:
            if healthy:
                self._give_back(connection)
            else:
                connection.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[Transaction]:
        if self.read_only:
            raise EngineError(f"{self.path} is open read-only")
        if getattr(self._in_write, "active", False):
            raise EngineError("a write transaction inside another one of the same thread")
        with self._state:
            self._waiting += 1
        self._connection_lock.acquire()
        with self._state:
            self._waiting -= 1
        self._in_write.active = True
        try:
            if self._closed:
                raise EngineError("the database is closed")
            if self._batch is None:
                self._begin()
            self._exec("SAVEPOINT tams_write")
        except BaseException:
            self._finish(self._batch, wait=False)
            raise
        batch = self._batch
        try:
            yield SQLiteTransaction(self, self._writer)
            self._exec("RELEASE tams_write")
        except BaseException:
            try:
                self._exec("ROLLBACK TO tams_write")
                self._exec("RELEASE tams_write")
            except EngineError as exc:  # the batch cannot be trusted any more: none of it commits
                batch.error = exc
            self._finish(batch, wait=False)
            raise
        self._finish(batch, wait=True)
        if batch.error is not None:
            raise batch.error

    def _exec(self, sql: str) -> None:
        try:
            self._writer.execute(sql)
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    def _begin(self) -> None:
        try:
            self._writer.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        self._batch = _Batch()

    def _finish(self, batch: _Batch | None, wait: bool) -> None:
        """Leave the writer connection (held): commit the batch unless others wait to join it (the
        last of them commits); with ``wait``, return once the batch is committed or has failed."""
        with self._state:
            commit = batch is not None and self._waiting == 0
            if commit:
                self._batch = None
        if commit:
            assert batch is not None
            try:
                if batch.error is not None:
                    raise batch.error
                self._writer.execute("COMMIT")
            except BaseException as exc:  # no failure may leave the batch's other writers waiting
                if batch.error is None:
                    batch.error = (
                        _translate(exc)
                        if isinstance(exc, sqlite3.Error)
                        else EngineUnavailable("the commit could not be settled")
                    )
                with contextlib.suppress(sqlite3.Error):
                    self._writer.execute("ROLLBACK")
        self._in_write.active = False
        self._connection_lock.release()
        if batch is None:
            return
        with self._state:
            if commit:
                batch.done = True
                self._state.notify_all()
            elif wait:
                while not batch.done:
                    self._state.wait()

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file."""
        if self._writer is None:
            raise EngineError(f"{self.path} is open read-only")
        with self._connection_lock:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._pool_lock:
            if self._closed:
                return
            self._closed = True
            pool, self._pool = self._pool, []
        for connection in pool:
            connection.close()
        with self._connection_lock:
            if self._writer is not None:
                self._writer.close()
