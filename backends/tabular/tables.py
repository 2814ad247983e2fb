"""The tables the tabular store keeps, and the rows <-> TAMS values several resources share.

Tables (see ``TABLES``)
    ``meta`` (service info, persistent ids), ``sources``, ``flows``, ``flow_collections`` (who
    collects whom), ``segments``, ``objects``, ``object_flows`` (segment count per object and
    flow), ``webhooks``, ``delete_requests``, ``profiles``. Documents (a flow, a source, a webhook, a deletion
    request) are JSON in a ``doc`` column; what is filtered on is in columns of its own.

Rows that only one resource reads or writes are converted in that resource's module (segments in
``segments``, object counts in ``objects``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from backends.base import Json
from backends.tabular.engine import ROW_ID, TableEngine, TableSpec, Transaction, Where, col
from backends.timerange import TimeRange

_S, _I, _F, _B = pa.string(), pa.int64(), pa.float64(), pa.binary()


def _schema(*columns: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, kind) for name, kind in columns])


META = TableSpec("meta", _schema(("key", _S), ("value", _S)), lookup=("key",))
SOURCES = TableSpec(
    "sources",
    _schema(("id", _S), ("format", _S), ("label", _S), ("doc", _S)),
    lookup=("id",),
    order=("id",),
)
FLOWS = TableSpec(
    "flows",
    _schema(
        ("id", _S),
        ("source_id", _S),
        ("format", _S),
        ("codec", _S),
        ("label", _S),
        ("doc", _S),  # the stored flow, without segments_updated
        ("segments_updated", _S),
        ("extent", _S),  # the timerange its segments span, kept up to date by every segment write
    ),
    lookup=("id", "source_id"),
    order=("id",),
)
COLLECTIONS = TableSpec(
    "flow_collections",
    _schema(("collector_id", _S), ("member_id", _S)),
    lookup=("collector_id", "member_id"),
)
SEGMENTS = TableSpec(
    "segments",
    _schema(
        ("flow_id", _S),
        ("start_ns", _I),
        ("end_ns", _I),
        ("start_key", _B),
        ("end_key", _B),
        ("timerange", _S),
        ("object_id", _S),
        ("fields", _S),  # JSON: the client's other fields
        ("external_urls", _S),  # JSON: get_urls the client gave
        ("registered_at", _F),  # Unix seconds (null on rows written before it was recorded): reports
    ),
    order=("flow_id", "start_key"),
)
OBJECTS = TableSpec(
    "objects",
    _schema(
        ("id", _S),
        ("storage_id", _S),  # null: an external object, its bytes are elsewhere
        ("allocated_for", _S),  # the flow that allocated it, until first registered
        ("first_referenced_by", _S),
        ("segments", _I),  # segments referencing it, over all flows
        ("allocated_at", _F),
        ("unreferenced_since", _F),
        # 8.x (backends.media_objects); NULL in rows written before: the 7.0 defaults (see objects.py).
        ("kind", _S),  # "media", "init", or "allocated" until registered
        ("object_timerange", _S),
        ("key_frame_count", _I),
        ("init_object_id", _S),
        ("external", _S),  # JSON: uncontrolled instances [{url, label, minted?}]
        ("copies", _S),  # JSON: storage ids of controlled copies besides storage_id
        ("size", _I),  # bytes, when an upload through the server's media route recorded it; else null
    ),
    lookup=("id",),
)
OBJECT_FLOWS = TableSpec(
    "object_flows",
    _schema(("object_id", _S), ("flow_id", _S), ("segments", _I)),
    lookup=("object_id",),
    order=("object_id", "flow_id"),
)
WEBHOOKS = TableSpec(
    "webhooks",
    # ``id`` (8.0+): null in rows the 7.0-era server wrote, until ``webhooks`` gives them one.
    _schema(("seq", _I), ("url", _S), ("api_key_name", _S), ("api_key_value", _S), ("doc", _S), ("id", _S)),
    lookup=("id",),
    order=("seq",),
)
DELETE_REQUESTS = TableSpec(
    "delete_requests",
    _schema(("id", _S), ("seq", _I), ("status", _S), ("doc", _S)),
    lookup=("id",),
    order=("seq",),
)
# Flow profiles (TAMS 8.x): immutable, so written once; filtered on format, codec and label.
PROFILES = TableSpec(
    "profiles",
    _schema(("id", _S), ("format", _S), ("codec", _S), ("label", _S), ("doc", _S)),
    lookup=("id",),
    order=("id",),
)
TABLES = (
    META,
    SOURCES,
    FLOWS,
    COLLECTIONS,
    SEGMENTS,
    OBJECTS,
    OBJECT_FLOWS,
    WEBHOOKS,
    DELETE_REQUESTS,
    PROFILES,
)


# --- rows <-> TAMS values ----------------------------------------------------------------------


@dataclass
class _FlowRecord:
    flow: Json  # as the memory backend stores it (segments_updated included)
    extent: TimeRange
    row_id: Any = None


def _flow_record(row: Json) -> _FlowRecord:
    flow = json.loads(row["doc"])
    if row.get("segments_updated") is not None:
        flow["segments_updated"] = row["segments_updated"]
    extent = TimeRange.parse(row["extent"]) if row.get("extent") else TimeRange.never()
    return _FlowRecord(flow, extent, row.get(ROW_ID))


def _flow_row(record: _FlowRecord) -> Json:
    flow = record.flow
    doc = {k: v for k, v in flow.items() if k != "segments_updated"}
    return {
        "id": flow["id"],
        "source_id": flow["source_id"],
        "format": flow.get("format"),
        "codec": flow.get("codec"),
        "label": flow.get("label"),
        "doc": json.dumps(doc),
        "segments_updated": flow.get("segments_updated"),
        "extent": str(record.extent),
    }


def _source_row(source: Json) -> Json:
    return {"id": source["id"], "format": source.get("format"), "label": source.get("label"), "doc": json.dumps(source)}


# --- rows in and out, with or without Arrow ------------------------------------------------------
# The engine interface moves rows as Arrow tables (what VAST DB takes and gives). An engine whose
# database speaks Python values (SQLite) may also offer ``select_rows``, ``insert_rows`` and
# ``update_rows`` taking and giving dicts: the store's small, frequent reads and writes use them
# when offered, sparing two conversions per statement (which cost more than SQLite's statement).


def select_rows(tx: Transaction, spec: TableSpec, where: Where, **kw: Any) -> list[Json]:
    """The rows ``tx.select(spec.name, where=where, **kw)`` returns, as dicts."""
    direct = getattr(tx, "select_rows", None)
    if direct is not None:
        return direct(spec.name, where=where, **kw)
    return tx.select(spec.name, where=where, **kw).to_pylist()


def insert_rows(tx: Transaction, spec: TableSpec, rows: Sequence[Json]) -> None:
    """Insert Python rows (missing keys are null)."""
    if not rows:
        return
    direct = getattr(tx, "insert_rows", None)
    if direct is not None:
        direct(spec.name, rows)
    else:
        tx.insert(spec.name, spec.rows(rows))


def update_rows(
    tx: Transaction, spec: TableSpec, row_ids: Sequence[Any], rows: Sequence[Json], columns: Sequence[str] = ()
) -> None:
    """Set ``columns`` (default: the schema's columns ``rows[0]`` has) of the rows named by ``row_ids``."""
    if not rows:
        return
    names = list(columns) or [n for n in spec.schema.names if n in rows[0]]
    direct = getattr(tx, "update_rows", None)
    if direct is not None:
        direct(spec.name, names, row_ids, rows)
    else:
        tx.update(spec.name, _changes(spec, row_ids, [{n: r[n] for n in names} for r in rows]))


def _changes(spec: TableSpec, row_ids: Sequence[Any], rows: Sequence[Json]) -> pa.Table:
    """Rows for ``update``: the row ids (in the type the engine gave them) and the changed columns."""
    names = [n for n in spec.schema.names if n in rows[0]]
    columns = {ROW_ID: pa.array(list(row_ids))}
    for name in names:
        columns[name] = pa.array([r[name] for r in rows], type=spec.schema.field(name).type)
    return pa.table(columns)


# --- the meta table outside a backend ----------------------------------------------------------


def persistent_value(engine: TableEngine, key: str, default: Callable[[], str]) -> str:
    """A value kept in the ``meta`` table (created with ``default()`` the first time)."""
    engine.ensure_tables([META])
    with engine.transaction(write=True) as tx:
        rows = tx.select(META.name, ["value"], col("key") == key).to_pylist()
        if rows:
            return rows[0]["value"]
        value = default()
        tx.insert(META.name, META.rows([{"key": key, "value": value}]))
        return value
