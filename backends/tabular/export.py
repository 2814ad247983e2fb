"""The tabular store's tables for a store report (``backends.report``), read through the engine.

Every table is scanned once (:meth:`~backends.tabular.engine.Transaction.scan`), in record batches
of a bounded size, inside one read transaction: one snapshot of the whole store (SQLite's WAL
snapshot, a VAST DB transaction), taken beside a server that goes on writing. Rows are reshaped
batch by batch into the report's schemas (``backends.report.TABLES``) with Arrow compute, never
into Python rows.

``tams-admin report`` uses :func:`export_tables` on an engine of its own (the local store's SQLite
file opened read-only, or the VAST schema), with :func:`stored_storage` for the names of the
storage backends; a running backend uses :class:`ExportMixin`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from backends import report
from backends.tabular.core import TabularCore
from backends.tabular.engine import TableEngine, Transaction, col
from backends.tabular.objects import ALLOCATED
from backends.tabular.tables import FLOWS, META, OBJECTS, SEGMENTS, SOURCES

# Columns the store may gain later: read when the table declares them, else null in the report.
_REGISTERED_AT = "registered_at"
_SIZE = "size"


class ExportMixin(TabularCore):
    """:meth:`backends.base.Backend.report_tables` for the tabular store."""

    def report_tables(self, batch_rows: int) -> AbstractContextManager[report.ReportTables]:
        storage = [(s.info.id, s.info.label, s.info.store_product) for s in self._stores.values()]
        return export_tables(self._engine, storage, batch_rows)


def registered(kind: pa.Array, allocated_for: pa.Array) -> pa.Array:
    """Whether each object row is registered: ``objects._kind(row) is not None``, over whole
    columns (a row is unregistered while its kind is "allocated", or, written before 8.x with
    no kind, while it is still allocated for a flow)."""
    allocated = pc.fill_null(pc.equal(kind, ALLOCATED), False)
    legacy_allocated = pc.and_(pc.is_null(kind), pc.is_valid(allocated_for))
    return pc.invert(pc.or_(allocated, legacy_allocated))


@contextlib.contextmanager
def export_tables(
    engine: TableEngine, storage: Sequence[tuple[str, str | None, str | None]], batch_rows: int
) -> Iterator[report.ReportTables]:
    """The report's tables of the store in ``engine``, read in one read transaction while the
    block runs; ``storage``: (id, label, product) of each storage backend."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    with engine.transaction(write=False) as tx:
        yield {
            "storage": report.reader(
                "storage",
                [
                    report.batch_of(
                        "storage", {k: [s[i] for s in storage] for i, k in enumerate(("id", "label", "product"))}
                    )
                ],
            ),
            "sources": report.reader("sources", tx.scan(SOURCES.name, ["id", "label", "format"], batch_rows)),
            "flows": report.reader(
                "flows", tx.scan(FLOWS.name, ["id", "source_id", "label", "format", "codec"], batch_rows)
            ),
            "segments": report.reader("segments", _segments(tx, batch_rows)),
            "objects": report.reader("objects", _objects(tx, batch_rows)),
            "copies": report.reader("copies", _copies(tx)),
        }


def _segments(tx: Transaction, batch_rows: int) -> Iterator[pa.RecordBatch]:
    recorded = _REGISTERED_AT in SEGMENTS.schema.names
    columns = ["flow_id", "start_ns", "end_ns", "object_id", *([_REGISTERED_AT] if recorded else [])]
    for batch in tx.scan(SEGMENTS.name, columns, batch_rows):
        arrays = [batch.column(c) for c in columns[:4]]
        arrays.append(batch.column(_REGISTERED_AT) if recorded else pa.nulls(batch.num_rows, pa.float64()))
        yield pa.RecordBatch.from_arrays(arrays, schema=report.TABLES["segments"])


def _objects(tx: Transaction, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Registered objects (a kind other than "allocated": nearly all rows) are read without the
    columns only an unregistered one needs; the rest (allocated, or from before 8.x with no kind)
    with them, to be told apart as ``objects._kind`` does."""
    sized = _SIZE in OBJECTS.schema.names
    size = [_SIZE] if sized else []
    schema = report.TABLES["objects"]
    columns = ["id", "storage_id", "allocated_at", "segments", *size]
    for batch in tx.scan(OBJECTS.name, columns, batch_rows, col("kind") != ALLOCATED):
        n = batch.num_rows
        arrays = [
            batch.column("id"),
            batch.column("storage_id"),
            pa.repeat(True, n),
            pa.nulls(n, pa.string()),
            batch.column("allocated_at"),
            batch.column("segments"),
            batch.column(_SIZE) if sized else pa.nulls(n, pa.int64()),
        ]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    rest = (col("kind") == ALLOCATED) | col("kind").isnull()
    for batch in tx.scan(OBJECTS.name, [*columns, "kind", "allocated_for"], batch_rows, rest):
        n = batch.num_rows
        arrays = [
            batch.column("id"),
            batch.column("storage_id"),
            registered(batch.column("kind"), batch.column("allocated_for")),
            batch.column("allocated_for"),
            batch.column("allocated_at"),
            batch.column("segments"),
            batch.column(_SIZE) if sized else pa.nulls(n, pa.int64()),
        ]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _copies(tx: Transaction) -> Iterator[pa.RecordBatch]:
    """Controlled copies besides an object's first instance: the few rows with a non-empty list."""
    rows = tx.select(OBJECTS.name, ["id", "copies"], col("copies").notnull() & (col("copies") != "[]"))
    pairs = [(r["id"], s) for r in rows.to_pylist() for s in json.loads(r["copies"])]
    if pairs:
        yield report.batch_of("copies", {"object_id": [p[0] for p in pairs], "storage_id": [p[1] for p in pairs]})


def stored_storage(engine: TableEngine, options: Mapping[str, Any]) -> list[tuple[str, str | None, str | None]]:
    """The storage backends of a store opened without its backend (``tams-admin report``): the ids
    the store keeps in ``meta`` (the local media directory's, each S3 store's by label) or that
    ``options`` configure, with the labels ``options`` give them. Read only; nothing is contacted."""
    from backends.s3store import parse_storage

    with engine.transaction(write=False) as tx:
        meta = {r["key"]: r["value"] for r in tx.select(META.name, ["key", "value"]).to_pylist()}
    found: list[tuple[str, str | None, str | None]] = []
    configs = parse_storage(options)
    for config in configs:
        storage_id = config.storage_id or meta.get(f"s3_storage_id/{config.label}")
        if storage_id:
            found.append((storage_id, config.label, config.store_product or "s3"))
    if not configs and "local_storage_id" in meta:
        found.append((meta["local_storage_id"], str(options.get("storage_label", "local")), "local-disk"))
    return found
