"""Store reports: what is in a TAMS store, worked out by DuckDB over Arrow record batches.

A backend hands its tables over as record batch readers of the schemas in ``TABLES``
(:meth:`backends.base.Backend.report_tables`: the tabular store reads them through its table
engine, one batch at a time, in one read transaction; the memory store from its records under its
lock, one batch at a time). Each reader is streamed once into an in-process DuckDB database, which
keeps them in its own columnar form; every figure below is one SQL statement over those tables. No
table is ever turned into Python rows as a whole.

Time is exact: segment bounds are the integer nanoseconds the store keeps (``start_ns``,
``end_ns``), and the maths is done on 128-bit integers. A bound beyond the int64 range (past
year 2262) is saturated in those columns: such segments are counted apart
(``segments_beyond_int64``) and left out of the time figures rather than measured wrongly. Time
ranges are shown half-open, ``[start_end)``, as segments are.

Bytes: a store records an object's size only when it knows it (``objects.size``: set when bytes
are uploaded through the server's own media URLs). Sizes are summed where known and the objects
whose size is unknown are counted next to the sum: an unknown size never counts as 0.

:func:`build` makes the report (a JSON-ready dict); ``backends.report_text.text`` renders it for people.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

import pyarrow as pa

from backends.timerange import TimeRange, Timestamp

Json = dict[str, Any]
_S, _I, _F, _B = pa.string(), pa.int64(), pa.float64(), pa.bool_()


def _schema(*columns: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, kind) for name, kind in columns])


# What a backend hands over: one reader per table, of exactly these schemas.
TABLES: dict[str, pa.Schema] = {
    "storage": _schema(("id", _S), ("label", _S), ("product", _S)),
    "sources": _schema(("id", _S), ("label", _S), ("format", _S)),
    "flows": _schema(("id", _S), ("source_id", _S), ("label", _S), ("format", _S), ("codec", _S)),
    # start_ns/end_ns: the bounds saturated to int64 (exact inside that range).
    # registered_at: Unix time the segment was registered, null when the store does not record it.
    "segments": _schema(("flow_id", _S), ("start_ns", _I), ("end_ns", _I), ("object_id", _S), ("registered_at", _F)),
    # storage_id: its first controlled instance (null: external, the bytes are elsewhere); registered:
    # a segment has registered it (else only allocated); references: segments using it (as media or
    # init, all flows); allocated_at: when it was allocated or, if never allocated, first registered;
    # size: its bytes, null when the store does not know them.
    "objects": _schema(
        ("id", _S),
        ("storage_id", _S),
        ("registered", _B),
        ("allocated_for", _S),
        ("allocated_at", _F),
        ("references", _I),
        ("size", _I),
    ),
    # Controlled instances besides an object's first (TAMS 8.x copies): rare.
    "copies": _schema(("object_id", _S), ("storage_id", _S)),
}
ReportTables = Mapping[str, pa.RecordBatchReader]

BATCH_ROWS = 65_536  # rows per record batch a backend hands over
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
LARGEST_GAPS = 3  # gaps listed per flow and per source


def reader(name: str, batches: Iterable[pa.RecordBatch]) -> pa.RecordBatchReader:
    """A reader of report table ``name`` over ``batches`` (pulled lazily, as DuckDB reads)."""
    schema = TABLES[name]

    def checked() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.schema != schema:
                batch = pa.RecordBatch.from_arrays([batch.column(f.name).cast(f.type) for f in schema], schema=schema)
            yield batch

    return pa.RecordBatchReader.from_batches(schema, checked())


def batch_of(name: str, rows: dict[str, list[Any]]) -> pa.RecordBatch:
    """A batch of report table ``name`` from columns of Python values (absent columns are null)."""
    schema = TABLES[name]
    count = len(next(iter(rows.values()))) if rows else 0
    arrays = [pa.array(rows[f.name], f.type) if f.name in rows else pa.nulls(count, f.type) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# --- the report ----------------------------------------------------------------------------------


def build(
    backend: Any,
    batch_rows: int = BATCH_ROWS,
    now: float | None = None,
    unregistered_ttl_s: float | None = None,
) -> Json:
    """The report of a backend's store (any :class:`backends.base.Backend` with ``report_tables``)."""
    return build_from(
        backend.report_tables(batch_rows),
        backend=type(backend).__name__,
        now=now,
        unregistered_ttl_s=unregistered_ttl_s,
    )


def build_from(
    tables: AbstractContextManager[ReportTables],
    backend: str,
    now: float | None = None,
    unregistered_ttl_s: float | None = None,
) -> Json:
    """The report over the tables a context hands over (read while it is open, then closed)."""
    import duckdb  # only reports need it

    clock = datetime.datetime.now(datetime.UTC).timestamp() if now is None else now
    db = duckdb.connect(":memory:")
    try:
        with tables as readers:
            for name, schema in TABLES.items():
                incoming = readers[name]
                if incoming.schema != schema:
                    raise ValueError(f"report table {name}: schema {incoming.schema} is not {schema}")
                db.register("incoming", incoming)
                db.execute(f"CREATE TABLE {name} AS SELECT * FROM incoming")
                db.unregister("incoming")
        return _Report(db, clock, unregistered_ttl_s).build(backend)
    finally:
        db.close()


# Segment bounds as exact 128-bit integers (HUGEINT); saturated ones are set apart.
_BEYOND = f"(start_ns IN ({INT64_MIN}, {INT64_MAX}) OR end_ns IN ({INT64_MIN}, {INT64_MAX}))"
_SEGMENTS = f"""
    SELECT s.flow_id, f.source_id, s.start_ns::HUGEINT AS s, s.end_ns::HUGEINT AS e
    FROM segments s LEFT JOIN flows f ON f.id = s.flow_id
    WHERE NOT {_BEYOND}
"""


def _timeline_sql(group: str) -> str:
    """Per ``group`` (flow_id or source_id): segments, their summed duration, the covered timeline,
    its gaps and the largest of them, in one pass over the segments in start order.

    A gap is where a segment starts after every earlier one has ended. In a flow segments never
    overlap (the store refuses it), so the previous segment's end is the furthest; a source's
    flows overlap, so there it is the running maximum of the ends before."""
    if group == "flow_id":
        reach = "lag(e) OVER (PARTITION BY flow_id ORDER BY s, e)"
    else:
        reach = f"max(e) OVER (PARTITION BY {group} ORDER BY s, e ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    return f"""
    WITH ordered AS (
        SELECT {group} AS g, s, e, {reach} AS reach FROM ({_SEGMENTS}) WHERE {group} IS NOT NULL
    )
    SELECT g, count(*) AS segments, sum(e - s) AS duration, min(s) AS first, max(e) AS last,
        count(*) FILTER (WHERE s > reach) AS gaps,
        coalesce(sum(s - reach) FILTER (WHERE s > reach), 0) AS gap_total,
        min(e - s) AS dmin, max(e - s) AS dmax,
        quantile_disc(e - s, 0.5) AS dmedian, quantile_disc(e - s, 0.95) AS dp95,
        max_by(struct_pack(reach, s), struct_pack(len := s - reach, early := -reach), {LARGEST_GAPS})
            FILTER (WHERE s > reach) AS largest
    FROM ordered GROUP BY g
    """


def _ts(ns: int | None) -> str | None:
    return None if ns is None else str(Timestamp(int(ns)))


def _range(start: int | None, end: int | None) -> str | None:
    if start is None or end is None:
        return None
    return str(TimeRange(int(start), int(end)))


def _duration(ns: int | None) -> Json | None:
    return None if ns is None else {"ns": int(ns), "timestamp": _ts(ns)}


def _stats(dmin: Any, dmax: Any, total: Any, count: int, median: Any, p95: Any) -> Json | None:
    if not count:
        return None
    return {
        "min": _duration(dmin),
        "max": _duration(dmax),
        "mean": _duration(int(total) // count),  # exact integer maths, rounded down to the ns
        "median": _duration(median),
        "p95": _duration(p95),
    }


def _hour(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:00:00Z")


def _bytes(known_sum: Any, unknown: int) -> Json:
    """Bytes summed where sizes are known, with the count of objects whose size is not."""
    return {"known": None if known_sum is None else int(known_sum), "objects_of_unknown_size": int(unknown)}


class _Report:
    def __init__(self, db: Any, now: float, unregistered_ttl_s: float | None) -> None:
        self.db = db
        self.now = now
        self.ttl = unregistered_ttl_s

    def rows(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, params or []).fetchall()

    def one(self, sql: str) -> tuple[Any, ...]:
        return self.rows(sql)[0]

    def build(self, backend: str) -> Json:
        notes: list[str] = []
        # Each object's segments and the least and greatest flow using it: shared when they differ.
        self.db.execute(
            "CREATE TEMP TABLE per_object AS SELECT object_id, count(*) AS segments, min(flow_id) AS lo, "
            "max(flow_id) AS hi FROM segments GROUP BY object_id"
        )
        flows = self.flows()
        sources = self.sources(flows)
        report: Json = {
            "generated_at": datetime.datetime.fromtimestamp(self.now, datetime.UTC).isoformat(timespec="seconds"),
            "backend": backend,
            "totals": self.totals(),
            "segment_durations": self.overall_durations(),
            "sources": sources,
            "flows": flows,
            "storage": self.storage(),
            "shared_objects": self.shared(),
            "unregistered_objects": self.unregistered(),
            "ingest": self.ingest(notes),
        }
        (unknown,) = self.one("SELECT count(*) FILTER (WHERE size IS NULL) FROM objects")
        if unknown:
            notes.append(
                f"{unknown} object(s) of unknown size (sizes are recorded for bytes uploaded through this "
                "server's media URLs; not for presigned S3 uploads, nor for objects never uploaded): bytes are "
                "summed only where known and never counted as 0"
            )
        beyond = report["totals"]["segments_beyond_int64"]
        if beyond:
            notes.append(
                f"{beyond} segment(s) with a bound beyond the int64 nanosecond range are left out of time figures"
            )
        report["notes"] = notes
        return report

    # --- totals ---------------------------------------------------------------------------------
    def totals(self) -> Json:
        sources, flows = self.one("SELECT (SELECT count(*) FROM sources), (SELECT count(*) FROM flows)")
        segments, beyond = self.one(f"SELECT count(*), count(*) FILTER (WHERE {_BEYOND}) FROM segments")
        (duration,) = self.one(f"SELECT coalesce(sum(e - s), 0) FROM ({_SEGMENTS})")
        objects, registered, external = self.one(
            "SELECT count(*), count(*) FILTER (WHERE registered), "
            "count(*) FILTER (WHERE storage_id IS NULL AND id NOT IN (SELECT object_id FROM copies)) FROM objects"
        )
        return {
            "sources": sources,
            "flows": flows,
            "segments": segments,
            "segments_beyond_int64": beyond,
            "duration": _duration(duration),
            "objects": objects,
            "objects_registered": registered,
            "objects_external": external,
        }

    def overall_durations(self) -> Json | None:
        row = self.one(
            f"SELECT min(e - s), max(e - s), sum(e - s), count(*), quantile_disc(e - s, 0.5), "
            f"quantile_disc(e - s, 0.95) FROM ({_SEGMENTS})"
        )
        return _stats(*row)

    # --- flows and sources ------------------------------------------------------------------------
    def _timelines(self, group: str) -> dict[str, Json]:
        found: dict[str, Json] = {}
        rows = self.rows(_timeline_sql(group))
        for g, n, duration, first, last, gaps, gap_total, dmin, dmax, dmedian, dp95, largest in rows:
            span = int(last) - int(first)
            # Largest first; equal lengths earliest first.
            ordered = sorted(largest or [], key=lambda gap: (gap["reach"] - gap["s"], gap["reach"]))
            found[g] = {
                "segments": n,
                "duration": _duration(duration),
                "timeline": {
                    "timerange": _range(first, last),
                    "start": _ts(first),
                    "end": _ts(last),
                    "length": _duration(span),
                    "covered": _duration(span - int(gap_total)),
                },
                "gaps": {
                    "count": gaps,
                    "total": _duration(gap_total),
                    "largest": [
                        {"timerange": _range(gap["reach"], gap["s"]), "length": _duration(gap["s"] - gap["reach"])}
                        for gap in ordered
                    ],
                },
                "segment_durations": _stats(dmin, dmax, duration, n, dmedian, dp95),
            }
        return found

    def flows(self) -> list[Json]:
        timelines = self._timelines("flow_id")
        beyond = dict(self.rows(f"SELECT flow_id, count(*) FROM segments WHERE {_BEYOND} GROUP BY flow_id"))
        objects = {
            r[0]: r[1:]
            for r in self.rows(
                """
                WITH shared AS (
                    SELECT flow_id, count(DISTINCT object_id) AS n FROM segments
                    WHERE object_id IN (SELECT object_id FROM per_object WHERE lo <> hi) GROUP BY flow_id
                ), alone AS (SELECT lo AS flow_id, count(*) AS n FROM per_object WHERE lo = hi GROUP BY lo)
                SELECT flow_id, coalesce(alone.n, 0) + coalesce(shared.n, 0), coalesce(shared.n, 0)
                FROM alone FULL JOIN shared USING (flow_id)
                """
            )
        }
        unregistered = dict(
            self.rows(
                "SELECT allocated_for, count(*) FROM objects WHERE NOT registered AND allocated_for IS NOT NULL "
                "GROUP BY allocated_for"
            )
        )
        listed = self.rows(
            """
            SELECT id, source_id, label, format, codec FROM flows
            UNION ALL
            SELECT DISTINCT flow_id, NULL, NULL, NULL, NULL FROM segments WHERE flow_id NOT IN (SELECT id FROM flows)
            ORDER BY 1
            """
        )
        result = []
        for flow_id, source_id, label, fmt, codec in listed:
            entry: Json = {"id": flow_id, "source_id": source_id, "label": label, "format": fmt, "codec": codec}
            entry.update(timelines.get(flow_id) or _empty_timeline())
            entry["segments_beyond_int64"] = beyond.get(flow_id, 0)
            entry["segments"] += entry["segments_beyond_int64"]  # counted, but not in the time figures
            count, shared = objects.get(flow_id, (0, 0))
            entry["objects"] = {"count": count, "shared_with_other_flows": shared}
            entry["unregistered_objects"] = unregistered.get(flow_id, 0)
            result.append(entry)
        return result

    def sources(self, flows: list[Json]) -> list[Json]:
        timelines = self._timelines("source_id")
        flow_counts: dict[str, int] = {}
        beyond: dict[str, int] = {}
        for flow in flows:
            if flow["source_id"] is not None:
                flow_counts[flow["source_id"]] = flow_counts.get(flow["source_id"], 0) + 1
                beyond[flow["source_id"]] = beyond.get(flow["source_id"], 0) + flow["segments_beyond_int64"]
        listed = self.rows(
            """
            SELECT id, label, format FROM sources
            UNION ALL
            SELECT DISTINCT source_id, NULL, NULL FROM flows WHERE source_id NOT IN (SELECT id FROM sources)
            ORDER BY 1
            """
        )
        result = []
        for source_id, label, fmt in listed:
            entry: Json = {"id": source_id, "label": label, "format": fmt, "flows": flow_counts.get(source_id, 0)}
            entry.update(timelines.get(source_id) or _empty_timeline())
            entry["segments_beyond_int64"] = beyond.get(source_id, 0)
            entry["segments"] += entry["segments_beyond_int64"]
            # A source's timeline is the union of its flows': duration sums the segments, covered
            # counts each instant once.
            result.append(entry)
        return result

    # --- objects ----------------------------------------------------------------------------------
    def storage(self) -> list[Json]:
        # Each object's first instance is on its own row; its copies (rare) in ``copies``.
        rows = self.rows(
            """
            WITH instances AS (
                SELECT storage_id, registered, "references", size FROM objects WHERE storage_id IS NOT NULL
                UNION ALL
                SELECT c.storage_id, o.registered, o."references", o.size
                FROM copies c JOIN objects o ON o.id = c.object_id
            ), counted AS (
                SELECT storage_id, count(*) AS objects, count(*) FILTER (WHERE registered) AS registered,
                    count(*) FILTER (WHERE registered AND coalesce("references", 0) = 0) AS unreferenced,
                    sum(size) AS known, count(*) FILTER (WHERE size IS NULL) AS unknown
                FROM instances GROUP BY storage_id
            )
            SELECT coalesce(c.storage_id, st.id), st.label, st.product, coalesce(c.objects, 0),
                coalesce(c.registered, 0), coalesce(c.unreferenced, 0), c.known, coalesce(c.unknown, 0)
            FROM counted c FULL JOIN storage st ON st.id = c.storage_id
            ORDER BY st.label NULLS LAST, 1
            """
        )
        return [
            {
                "id": storage_id,
                "label": label,
                "product": product,
                "objects": objects,
                "registered": registered,
                "unreferenced": unreferenced,
                "allocated_unregistered": objects - registered,
                "bytes": _bytes(known if objects else 0, unknown),
            }
            for storage_id, label, product, objects, registered, unreferenced, known, unknown in rows
        ]

    def shared(self) -> Json:
        count, segments, known, unknown = self.one(
            """
            SELECT count(*), coalesce(sum(p.segments), 0), sum(o.size), count(*) FILTER (WHERE o.size IS NULL)
            FROM per_object p LEFT JOIN objects o ON o.id = p.object_id WHERE p.lo <> p.hi
            """
        )
        return {"count": count, "segments": segments, "bytes": _bytes(known, unknown)}

    def unregistered(self) -> Json:
        count, oldest, newest, median = self.one(
            "SELECT count(*), min(allocated_at), max(allocated_at), quantile_disc(allocated_at, 0.5) "
            "FROM objects WHERE NOT registered"
        )
        result: Json = {
            "count": count,
            "oldest_age_s": None if oldest is None else round(self.now - oldest, 3),
            "newest_age_s": None if newest is None else round(self.now - newest, 3),
            "median_age_s": None if median is None else round(self.now - median, 3),
            "oldest_allocated_at": None if oldest is None else _iso(oldest),
        }
        if self.ttl is not None:
            (expired,) = self.one(
                f"SELECT count(*) FROM objects WHERE NOT registered AND allocated_at < {self.now - self.ttl!r}"
            )
            result["past_ttl"] = expired
            result["ttl_s"] = self.ttl
        return result

    def ingest(self, notes: list[str]) -> Json:
        recorded, total = self.one("SELECT count(registered_at), count(*) FROM segments")
        if recorded == total:
            basis = "segments.registered_at"
            sql = """
                SELECT floor(registered_at / 3600) AS h, count(*) FROM segments
                WHERE registered_at IS NOT NULL GROUP BY h ORDER BY h
            """
        else:
            # Rows written before registration times were kept (or a store that keeps none).
            basis = "objects.allocated_at" if not recorded else "segments.registered_at, else objects.allocated_at"
            notes.append(
                f"{total - recorded} segment(s) have no registration time: they are counted by the time their "
                "object was allocated (or first registered, if never allocated)"
            )
            sql = """
                SELECT floor(coalesce(s.registered_at, o.allocated_at) / 3600) AS h, count(*)
                FROM segments s LEFT JOIN objects o ON o.id = s.object_id
                WHERE coalesce(s.registered_at, o.allocated_at) IS NOT NULL GROUP BY h ORDER BY h
            """
        hours = []
        for hour, segments in self.rows(sql):
            hours.append({"hour": _hour(hour * 3600), "segments": segments})
        # Bytes by the hour their object appeared (each object once).
        sizes = {
            h: (known, unknown)
            for h, known, unknown in self.rows(
                """
                SELECT floor(allocated_at / 3600) AS h, sum(size), count(*) FILTER (WHERE size IS NULL)
                FROM objects WHERE registered AND allocated_at IS NOT NULL GROUP BY h
                """
            )
        }
        by_hour = {entry["hour"]: entry for entry in hours}
        for h, (known, unknown) in sizes.items():
            entry = by_hour.get(_hour(h * 3600))
            if entry is None:
                entry = by_hour[_hour(h * 3600)] = {"hour": _hour(h * 3600), "segments": 0}
            entry["bytes"] = _bytes(known, unknown)
        for entry in by_hour.values():
            entry.setdefault("bytes", _bytes(None, 0))
        return {
            "basis": basis,
            "bytes_basis": "objects.allocated_at (each registered object once)",
            "hours": sorted(by_hour.values(), key=lambda e: e["hour"]),
        }


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat(timespec="seconds")


def _empty_timeline() -> Json:
    return {
        "segments": 0,
        "duration": _duration(0),
        "timeline": None,
        "gaps": {"count": 0, "total": _duration(0), "largest": []},
        "segment_durations": None,
    }
