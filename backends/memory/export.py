"""The in-memory store's tables for a store report (``backends.report``).

The store lives in the server's process, so its records are turned into the report's record
batches here, one batch at a time, each under the store's lock: the lock is never held for a whole
report (the API goes on between batches), and no batch is larger than ``batch_rows``. Segments are
read flow by flow, resuming after the last start key read, so a concurrent write cannot make the
export skip or repeat a segment that stays put; the report is of the store as it was while it was
read (a write in between may or may not show), which is all a report of a live store can be.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import pyarrow as pa

from backends import report
from backends.memory.core import MemoryCore, _bound, _Object
from backends.tabular.timekeys import saturate


class ExportMixin(MemoryCore):
    """:meth:`backends.base.Backend.report_tables` for the in-memory store."""

    def report_tables(self, batch_rows: int) -> AbstractContextManager[report.ReportTables]:
        if batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        return _export(self, batch_rows)


@contextlib.contextmanager
def _export(store: ExportMixin, batch_rows: int) -> Iterator[report.ReportTables]:
    storage = [s.info for s in store._stores.values()]
    yield {
        "storage": report.reader(
            "storage",
            [
                report.batch_of(
                    "storage",
                    {
                        "id": [s.id for s in storage],
                        "label": [s.label for s in storage],
                        "product": [s.store_product for s in storage],
                    },
                )
            ],
        ),
        "sources": report.reader("sources", _documents(store, store._sources, "sources", batch_rows)),
        "flows": report.reader("flows", _documents(store, store._flows, "flows", batch_rows)),
        "segments": report.reader("segments", _segments(store, batch_rows)),
        "objects": report.reader("objects", _objects(store, batch_rows)),
        "copies": report.reader("copies", _copies(store, batch_rows)),
    }


_COLUMNS = {"sources": ("id", "label", "format"), "flows": ("id", "source_id", "label", "format", "codec")}


def _ids(store: ExportMixin, records: dict[str, Any]) -> list[str]:
    """The keys as they are now (references to the ids the store holds: no copy of a record)."""
    with store._lock:
        return list(records)


def _documents(store: ExportMixin, records: dict[str, Any], name: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    ids = _ids(store, records)
    columns = _COLUMNS[name]
    for start in range(0, len(ids), batch_rows):
        with store._lock:
            docs = [d for d in (records.get(i) for i in ids[start : start + batch_rows]) if d is not None]
            values = {c: [d.get(c) for d in docs] for c in columns}
        yield report.batch_of(name, values)


def _segments(store: ExportMixin, batch_rows: int) -> Iterator[pa.RecordBatch]:
    for flow_id in _ids(store, store._segments):
        after: int | None = None  # the start key of the last segment read
        while True:
            with store._lock:
                segments = store._segments.get(flow_id)
                if segments is None:
                    break
                if after is None:
                    run = segments.islice(0, batch_rows)
                else:
                    run = segments.irange_key(after, inclusive=(False, True))
                chosen = [(s.start, s.end, s.object.id) for _, s in zip(range(batch_rows), run, strict=False)]
            if not chosen:
                break
            after = chosen[-1][0]
            yield report.batch_of(
                "segments",
                {
                    "flow_id": [flow_id] * len(chosen),
                    "start_ns": [saturate(_bound(s)[0]) for s, _, _ in chosen],
                    "end_ns": [saturate(_bound(e)[0]) for _, e, _ in chosen],
                    "object_id": [o for _, _, o in chosen],
                },
            )
            if len(chosen) < batch_rows:
                break


def _references(record: _Object) -> int:
    refs = record.references
    if refs is None:
        return 0
    return 1 if isinstance(refs, str) else sum(refs.values()) if isinstance(refs, Counter) else 0


def _objects(store: ExportMixin, batch_rows: int) -> Iterator[pa.RecordBatch]:
    ids = _ids(store, store._objects)
    for start in range(0, len(ids), batch_rows):
        with store._lock:
            records = [r for r in (store._objects.get(i) for i in ids[start : start + batch_rows]) if r is not None]
            values = {
                "id": [r.id for r in records],
                "storage_id": [r.stores[0] if r.stores else None for r in records],
                "registered": [r.kind is not None for r in records],
                "allocated_for": [r.allocated_for for r in records],
                # 0.0: never allocated (registered straight away), when is not kept.
                "allocated_at": [r.allocated_at or None for r in records],
                "references": [_references(r) for r in records],
                "size": [r.size for r in records],
            }
        yield report.batch_of("objects", values)


def _copies(store: ExportMixin, batch_rows: int) -> Iterator[pa.RecordBatch]:
    ids = _ids(store, store._objects)
    for start in range(0, len(ids), batch_rows):
        with store._lock:
            pairs = [
                (r.id, s)
                for r in (store._objects.get(i) for i in ids[start : start + batch_rows])
                if r is not None
                for s in r.stores[1:]
            ]
        if pairs:
            yield report.batch_of("copies", {"object_id": [p[0] for p in pairs], "storage_id": [p[1] for p in pairs]})
