"""The table engine interface: the only thing the tabular TAMS store knows about its database.

It is deliberately narrow, so that a VAST DB engine (whose SDK offers no joins, aggregates, ORDER
BY or unique constraints) implements it as easily as the embedded SQLite one:

* tables are declared by Arrow schemas and created or evolved at start-up (missing columns are
  added, nothing is ever dropped);
* rows go in as Arrow tables and come out of ``select`` as Arrow tables, optionally with their
  row id (``ROW_ID``), which ``update`` and ``delete`` take back in the same transaction;
* predicates are built with :func:`col` and can only express what VAST DB pushes down: an AND of
  clauses, each clause an OR of ``column OP literal`` terms on **one** column, with ``==``, ``!=``,
  ``<``, ``<=``, ``>``, ``>=``, ``isin`` (non-empty), ``isnull`` and ``notnull``. There is no
  negated ``isin``, no column-to-column comparison and no expression on a column: the builder
  refuses them, so the store cannot come to depend on them;
* ``select`` may ask for an order and a row limit. An engine without ORDER BY (VAST) sorts on the
  client; the store keeps those selects narrow (a bounded time window, a handful of ids);
* every read and write runs in a transaction; a write transaction that loses a race with another
  raises :class:`Conflict` and is retried by the caller as a whole.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from backends.errors import Unavailable

ROW_ID = "$row_id"

_OPS = ("==", "!=", "<", "<=", ">", ">=", "isin", "isnull", "notnull")
_LITERALS = (str, bytes, int, float, bool)


class EngineError(Exception):
    """A table engine failed (I/O, corruption, a broken invariant)."""


class Conflict(EngineError):
    """The transaction collided with a concurrent one and was rolled back: run it again."""


class EngineUnavailable(EngineError, Unavailable):
    """The database cannot be reached, or a write's outcome could not be settled (HTTP 503)."""

    def __init__(self, summary: str) -> None:
        Unavailable.__init__(self, summary)


@dataclass(frozen=True)
class Term:
    """``column OP value``: one comparison against a literal."""

    column: str
    op: str
    value: Any = None

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"unsupported operator {self.op!r}")
        if self.op == "isin":
            values = tuple(self.value)
            if not values:
                raise ValueError("isin needs at least one value")
            if not all(isinstance(v, _LITERALS) for v in values):
                raise TypeError("isin takes literals only")
            object.__setattr__(self, "value", values)
        elif self.op in ("isnull", "notnull"):
            if self.value is not None:
                raise ValueError(f"{self.op} takes no value")
        elif not isinstance(self.value, _LITERALS):
            raise TypeError(f"{self.column} {self.op} needs a literal, not {type(self.value).__name__}")


@dataclass(frozen=True)
class Where:
    """An AND of clauses; each clause is an OR of terms on one column (VAST DB's pushdown shape)."""

    clauses: tuple[tuple[Term, ...], ...] = ()

    def __post_init__(self) -> None:
        for clause in self.clauses:
            if not clause:
                raise ValueError("an empty OR clause")
            if len({t.column for t in clause}) != 1:
                raise ValueError("an OR clause may only compare one column: " + ", ".join(t.column for t in clause))

    def __and__(self, other: Where) -> Where:
        return Where(self.clauses + other.clauses)

    def __or__(self, other: Where) -> Where:
        if len(self.clauses) != 1 or len(other.clauses) != 1:
            raise ValueError("only single-column comparisons can be ORed (no AND inside an OR)")
        return Where((self.clauses[0] + other.clauses[0],))

    def __bool__(self) -> bool:
        raise TypeError("a Where is not a boolean: combine predicates with & and |")

    @property
    def columns(self) -> set[str]:
        return {clause[0].column for clause in self.clauses}


ALL = Where()


def all_of(predicates: Iterable[Where]) -> Where:
    result = ALL
    for p in predicates:
        result = result & p
    return result


class Col:
    """A column to compare with literals: ``col("flow_id") == x`` is a :class:`Where`."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _term(self, op: str, value: Any = None) -> Where:
        if isinstance(value, Col):
            raise TypeError("column-to-column comparisons cannot be pushed down")
        return Where(((Term(self.name, op, value),),))

    def __eq__(self, value: Any) -> Where:  # type: ignore[override]
        return self.isnull() if value is None else self._term("==", value)

    def __ne__(self, value: Any) -> Where:  # type: ignore[override]
        return self.notnull() if value is None else self._term("!=", value)

    def __lt__(self, value: Any) -> Where:
        return self._term("<", value)

    def __le__(self, value: Any) -> Where:
        return self._term("<=", value)

    def __gt__(self, value: Any) -> Where:
        return self._term(">", value)

    def __ge__(self, value: Any) -> Where:
        return self._term(">=", value)

    def isin(self, values: Iterable[Any]) -> Where:
        return self._term("isin", tuple(values))

    def isnull(self) -> Where:
        return self._term("isnull")

    def notnull(self) -> Where:
        return self._term("notnull")

    __hash__ = None  # type: ignore[assignment]


def col(name: str) -> Col:
    return Col(name)


@dataclass(frozen=True)
class TableSpec:
    """A table: its Arrow schema, the columns it is looked up by, and its natural order.

    ``lookup`` columns are compared for equality on hot paths (an engine may index them);
    ``order`` is how most selects sort it (an engine may keep it clustered or sorted that way).
    """

    name: str
    schema: pa.Schema
    lookup: tuple[str, ...] = ()
    order: tuple[str, ...] = ()

    def rows(self, rows: Sequence[dict[str, Any]]) -> pa.Table:
        """Python rows as an Arrow table of exactly this schema (missing keys are null)."""
        return pa.Table.from_pylist(list(rows), schema=self.schema)


@dataclass(frozen=True)
class Order:
    column: str
    descending: bool = False


class Transaction(abc.ABC):
    """One transaction: every read sees one snapshot, every write commits together or not at all."""

    @abc.abstractmethod
    def select(
        self,
        table: str,
        columns: Sequence[str] | None = None,
        where: Where = ALL,
        order: Sequence[Order] = (),
        limit: int | None = None,
        row_ids: bool = False,
    ) -> pa.Table:
        """Rows matching ``where`` (all columns when ``columns`` is None), first ``limit`` in ``order``.

        With ``row_ids`` the result has a ``ROW_ID`` column for :meth:`update` and :meth:`delete`.
        """

    @abc.abstractmethod
    def insert(self, table: str, rows: pa.Table) -> None:
        """Append rows (a subset of the columns; the others are null)."""

    @abc.abstractmethod
    def update(self, table: str, rows: pa.Table) -> None:
        """Set the given columns of the rows named by their ``ROW_ID`` column."""

    @abc.abstractmethod
    def delete(self, table: str, row_ids: Sequence[Any]) -> None:
        """Delete the rows with these row ids (as :meth:`select` returned them)."""

    def scan(self, table: str, columns: Sequence[str], batch_rows: int, where: Where = ALL) -> Iterator[pa.RecordBatch]:
        """The rows matching ``where`` (these columns), in record batches of at most ``batch_rows``
        rows, in no particular order: for reports over whole tables. This default reads them at
        once; an engine that can stream (a cursor, a reader) overrides it to hold one batch at a time."""
        yield from self.select(table, columns, where).to_batches(max_chunksize=batch_rows)


class TableEngine(abc.ABC):
    """A database of tables. Safe to use from several threads; transactions are per thread."""

    # True when ``order`` and ``limit`` are applied after reading every match (no ORDER BY in the
    # database): callers then bound such selects themselves (the store reads segments in windows).
    sorts_on_client: bool = False

    @abc.abstractmethod
    def ensure_tables(self, specs: Iterable[TableSpec]) -> None:
        """Create missing tables and add missing columns; never drop a table or a column."""

    @abc.abstractmethod
    def transaction(self, write: bool) -> AbstractContextManager[Transaction]:
        """A transaction that commits when the block ends and rolls back if it raises."""

    def close(self) -> None:
        return None

    @property
    def description(self) -> str:
        return type(self).__name__


def pylist(table: pa.Table) -> list[dict[str, Any]]:
    """Rows of a selected table as dicts."""
    return table.to_pylist()


def chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``values`` in slices of at most ``size`` (keep ``isin`` lists small enough for VAST's request cap)."""
    for i in range(0, len(values), size):
        yield values[i : i + size]
