"""A table engine on DuckDB, in one file (or in memory): the ``local`` backend's before 8.x, kept
to read such stores (``local.migrate_legacy`` copies them into SQLite) and as a second embedded
implementation of the interface.

One DuckDB database per engine; each transaction runs on its own DuckDB connection (a cursor of
the database, taken from a small pool), so threads never share one. DuckDB's MVCC gives every
transaction a snapshot; two transactions changing the same row raise a conflict, surfaced as
:class:`~backends.tabular.engine.Conflict` for the caller to retry. A commit is on disk when it
returns (DuckDB writes its WAL before acknowledging), which is what the server's 201 promises.

Row ids are DuckDB's ``rowid``: stable within a transaction, which is all the interface asks.
``lookup`` columns get a (non-unique) ART index, so point lookups by id stay O(log n); other
selects are sequential scans that DuckDB prunes by min/max zone maps, which is what keeps time
queries on segments (inserted roughly in time order) fast at millions of rows.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from backends.tabular.engine import (
    ALL,
    ROW_ID,
    Conflict,
    EngineError,
    Order,
    TableEngine,
    TableSpec,
    Transaction,
    Where,
)
from backends.tabular.sqlite_engine import EngineStorageFull

_TYPES = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.binary(): "BLOB",
}
_SQL_OPS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_names = itertools.count()
log = logging.getLogger("tams_server.duckdb")
SMALL_BATCH = 16  # rows: fewer go as SQL literals, more as a registered Arrow table


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_type(arrow_type: pa.DataType) -> str:
    try:
        return _TYPES[arrow_type]
    except KeyError:
        raise EngineError(f"no DuckDB column type for Arrow {arrow_type}") from None


class _Inline(Exception):
    """A value that cannot be written as an SQL literal (it goes as a parameter instead)."""


def literal(value: Any) -> str:
    """``value`` as a DuckDB SQL literal.

    Literals rather than ``?`` parameters: DuckDB's Python binding looks for pandas on every bound
    parameter, which costs more than the query itself on the small statements a request makes.
    Strings are quoted by doubling ``'`` (DuckDB strings have no backslash escapes); bytes are
    written as ``\\xHH`` escapes of a BLOB literal. A string holding NUL goes as a parameter.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and value not in (float("inf"), float("-inf")) else f"'{value}'::DOUBLE"
    if isinstance(value, str):
        if "\x00" in value:
            raise _Inline
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bytes | bytearray | memoryview):
        return "'" + "".join(f"\\x{b:02X}" for b in bytes(value)) + "'::BLOB"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def _value(value: Any, params: list[Any]) -> str:
    try:
        return literal(value)
    except _Inline:
        params.append(value)
        return "?"


def where_sql(where: Where) -> tuple[str, list[Any]]:
    """The SQL condition (and parameters, rarely) of a predicate (``TRUE`` for none)."""
    parts: list[str] = []
    params: list[Any] = []
    for clause in where.clauses:
        terms = []
        for term in clause:
            column = _quote(term.column)
            if term.op == "isin":
                terms.append(f"{column} IN ({', '.join(_value(v, params) for v in term.value)})")
            elif term.op == "isnull":
                terms.append(f"{column} IS NULL")
            elif term.op == "notnull":
                terms.append(f"{column} IS NOT NULL")
            else:
                terms.append(f"{column} {_SQL_OPS[term.op]} {_value(term.value, params)}")
        parts.append(terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")")
    return (" AND ".join(parts) or "TRUE"), params


# DuckDB reports a failed write in its message only (a commit that cannot write its WAL is a
# TransactionException, which would otherwise read as a conflict and be retried).
_FULL = ("No space left on device", "Disk quota exceeded", "File too large")


def _translate(exc: duckdb.Error) -> EngineError:
    if any(sign in str(exc) for sign in _FULL):
        log.error("the database cannot write: %s", exc)  # the message names the file: logged, not shown
        return EngineStorageFull("the database's disk is full: the change was not made")
    if isinstance(exc, duckdb.TransactionException):
        return Conflict(str(exc))
    return EngineError(f"{type(exc).__name__}: {exc}")


class DuckDBTransaction(Transaction):
    def __init__(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self._cursor = cursor

    def _run(self, sql: str, params: Sequence[Any] = ()) -> duckdb.DuckDBPyConnection:
        try:
            return self._cursor.execute(sql, list(params))
        except duckdb.Error as exc:
            raise _translate(exc) from exc

    @contextlib.contextmanager
    def _registered(self, rows: pa.Table) -> Iterator[str]:
        name = f"_tams_rows_{next(_names)}"
        self._cursor.register(name, rows)
        try:
            yield name
        finally:
            self._cursor.unregister(name)

    def select(
        self,
        table: str,
        columns: Sequence[str] | None = None,
        where: Where = ALL,
        order: Sequence[Order] = (),
        limit: int | None = None,
        row_ids: bool = False,
    ) -> pa.Table:
        expressions = ["*"] if columns is None else [_quote(c) for c in columns]
        if row_ids:
            expressions.append(f"rowid AS {_quote(ROW_ID)}")
        selected = ", ".join(expressions) or "NULL AS _none"
        condition, params = where_sql(where)
        sql = f"SELECT {selected} FROM {_quote(table)} WHERE {condition}"
        if order:
            sql += " ORDER BY " + ", ".join(_quote(o.column) + (" DESC" if o.descending else "") for o in order)
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._run(sql, params).to_arrow_table()

    def insert(self, table: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        names = ", ".join(_quote(c) for c in rows.column_names)
        if rows.num_rows <= SMALL_BATCH:
            params: list[Any] = []
            values = ", ".join(
                "(" + ", ".join(_value(v, params) for v in row.values()) + ")" for row in rows.to_pylist()
            )
            self._run(f"INSERT INTO {_quote(table)} ({names}) VALUES {values}", params)
            return
        with self._registered(rows) as view:
            self._run(f"INSERT INTO {_quote(table)} ({names}) SELECT {names} FROM {view}")

    def update(self, table: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        if ROW_ID not in rows.column_names:
            raise EngineError("update needs the rows' row ids")
        target = _quote(table)
        if rows.num_rows <= SMALL_BATCH:
            for row in rows.to_pylist():
                params: list[Any] = []
                row_id = int(row.pop(ROW_ID))
                assignments = ", ".join(f"{_quote(c)} = {_value(v, params)}" for c, v in row.items())
                self._run(f"UPDATE {target} SET {assignments} WHERE rowid = {row_id}", params)
            return
        assignments = ", ".join(f"{_quote(c)} = v.{_quote(c)}" for c in rows.column_names if c != ROW_ID)
        with self._registered(rows) as view:
            self._run(f"UPDATE {target} SET {assignments} FROM {view} AS v WHERE {target}.rowid = v.{_quote(ROW_ID)}")

    def delete(self, table: str, row_ids: Sequence[Any]) -> None:
        ids = [int(i) for i in row_ids]
        for start in range(0, len(ids), 1000):
            chunk = ", ".join(str(i) for i in ids[start : start + 1000])
            self._run(f"DELETE FROM {_quote(table)} WHERE rowid IN ({chunk})")


class DuckDBEngine(TableEngine):
    """Tables in one DuckDB file (``path``), or in memory when ``path`` is None."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        try:
            self._db = duckdb.connect(str(path) if path is not None else ":memory:")
        except duckdb.Error as exc:
            raise EngineError(f"cannot open the database {path}: {exc}") from exc
        self._pool: list[duckdb.DuckDBPyConnection] = []
        self._pool_lock = threading.Lock()
        self._closed = False

    @property
    def description(self) -> str:
        return f"DuckDB {duckdb.__version__} at {self.path or 'memory'}"

    def _take(self) -> duckdb.DuckDBPyConnection:
        with self._pool_lock:
            if self._closed:
                raise EngineError("the database is closed")
            if self._pool:
                return self._pool.pop()
        return self._db.cursor()

    def _give_back(self, cursor: duckdb.DuckDBPyConnection) -> None:
        with self._pool_lock:
            if not self._closed and len(self._pool) < 32:
                self._pool.append(cursor)
                return
        cursor.close()

    def columns(self) -> dict[str, dict[str, str]]:
        """Table -> column -> DuckDB type, as stored."""
        rows = self._db.cursor().execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
        )
        found: dict[str, dict[str, str]] = {}
        for table, column, kind in rows.fetchall():
            found.setdefault(table, {})[column] = kind
        return found

    def arrow_schema(self, table: str) -> pa.Schema:
        """The Arrow schema of a stored table (every column, as stored)."""
        arrow = {sql: arrow for arrow, sql in _TYPES.items()}
        try:
            return pa.schema([pa.field(c, arrow[kind]) for c, kind in self.columns()[table].items()])
        except KeyError as exc:
            raise EngineError(f"no Arrow type for column type {exc} of {table}") from None

    def batches(self, table: str, size: int = 50_000) -> Iterator[pa.RecordBatch]:
        """Every row of a table, in row id order, a batch at a time (to copy a database out)."""
        cursor = self._db.cursor()
        try:
            reader = cursor.execute(f"SELECT * FROM {_quote(table)} ORDER BY rowid").to_arrow_reader(size)
            yield from reader
        except duckdb.Error as exc:
            raise _translate(exc) from exc
        finally:
            cursor.close()

    def ensure_tables(self, specs: Iterable[TableSpec]) -> None:
        cursor = self._db.cursor()
        try:
            existing = self.columns()
            for spec in specs:
                have = existing.get(spec.name)
                if have is None:
                    columns = ", ".join(f"{_quote(f.name)} {_sql_type(f.type)}" for f in spec.schema)
                    cursor.execute(f"CREATE TABLE {_quote(spec.name)} ({columns})")
                else:
                    for f in spec.schema:
                        if f.name not in have:
                            cursor.execute(
                                f"ALTER TABLE {_quote(spec.name)} ADD COLUMN {_quote(f.name)} {_sql_type(f.type)}"
                            )
                for column in spec.lookup:
                    index = _quote(f"idx_{spec.name}_{column}")
                    cursor.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {_quote(spec.name)} ({_quote(column)})")
        except duckdb.Error as exc:
            raise _translate(exc) from exc
        finally:
            cursor.close()

    @contextlib.contextmanager
    def transaction(self, write: bool) -> Iterator[Transaction]:
        cursor = self._take()
        healthy = True
        try:
            try:
                cursor.execute("BEGIN TRANSACTION")
            except duckdb.Error as exc:
                healthy = False
                raise _translate(exc) from exc
            try:
                yield DuckDBTransaction(cursor)
            except BaseException:
                try:
                    cursor.execute("ROLLBACK")
                except duckdb.Error:
                    healthy = False
                raise
            try:
                cursor.execute("COMMIT")
            except duckdb.Error as exc:
                with contextlib.suppress(duckdb.Error):
                    cursor.execute("ROLLBACK")
                raise _translate(exc) from exc
        finally:
            if healthy:
                self._give_back(cursor)
            else:
                cursor.close()

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file."""
        self._db.cursor().execute("CHECKPOINT")

    def close(self) -> None:
        with self._pool_lock:
            if self._closed:
                return
            self._closed = True
            pool, self._pool = self._pool, []
        for cursor in pool:
            cursor.close()
        self._db.close()
