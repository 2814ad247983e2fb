"""``python -m tools.bench_report``: how long ``tams-admin report`` takes on a large local store.

It builds a local store (``<dir>/tams.sqlite``) of ``--segments`` segments (default 10^6) over
``--flows`` flows, two flows per source, writing the rows the tabular store writes straight
through the SQLite engine in bulk (no HTTP, no per-segment checks: this is about reading). Each
segment is one second on an object of its own, allocated a second before; every 1,000th segment
is followed by a 3-second gap, and every 100th object is shared with the source's other flow. A
few objects are allocated and never registered.

It then times the report as ``tams-admin report`` makes it (the SQLite file opened read-only, the
tables read through the engine in batches into DuckDB, the figures computed there), ``--repeat``
times, and prints each run with its two halves: reading the tables into DuckDB, and the maths.

``--registration-cost`` measures instead what recording a registration time on each segment row
would cost writes: 1,000-segment inserts (the API's batch) into two fresh stores, the segment
table with and without one more REAL column, alternated, timed side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from backends import report
from backends.tabular.engine import TableSpec
from backends.tabular.export import export_tables, stored_storage
from backends.tabular.sqlite_engine import SQLiteEngine
from backends.tabular.tables import FLOWS, META, OBJECT_FLOWS, OBJECTS, SEGMENTS, SOURCES, TABLES, insert_rows
from backends.tabular.timekeys import encode_key
from backends.timerange import TimeRange

NS = 10**9
WRITE_BATCH = 20_000  # rows per executemany while building


def _segment_row(flow_id: str, start: int, end: int, object_id: str) -> dict[str, Any]:
    """A segment row as ``backends.tabular.segments._segment_row`` writes it (half-open, no fields)."""
    return {
        "flow_id": flow_id,
        "start_ns": start,
        "end_ns": end,
        "start_key": encode_key(start, 0),
        "end_key": encode_key(end, -1),
        "timerange": str(TimeRange(start, end)),
        "object_id": object_id,
        "fields": "{}",
        "external_urls": "[]",
    }


def build_store(directory: Path, segments: int, flows: int) -> dict[str, int]:
    """A local store of ``segments`` segments in ``directory``; returns what it holds."""
    directory.mkdir(parents=True, exist_ok=True)
    engine = SQLiteEngine(directory / "tams.sqlite")
    try:
        engine.ensure_tables(TABLES)
        storage_id = str(uuid.uuid4())
        base = time.time() - 48 * 3600  # ingest spread over the last two days
        flow_ids = [str(uuid.uuid4()) for _ in range(flows)]
        source_ids = [str(uuid.uuid4()) for _ in range(max(1, flows // 2))]
        per_flow = segments // flows
        with engine.transaction(write=True) as tx:
            insert_rows(tx, META, [{"key": "local_storage_id", "value": storage_id}])
            insert_rows(
                tx,
                SOURCES,
                [
                    {"id": s, "format": "urn:x-nmos:format:video", "label": f"source {i}"}
                    for i, s in enumerate(source_ids)
                ],
            )
            insert_rows(
                tx,
                FLOWS,
                [
                    {
                        "id": f,
                        "source_id": source_ids[i // 2 % len(source_ids)],
                        "format": "urn:x-nmos:format:video",
                        "codec": "video/h264",
                        "label": f"flow {i}",
                        "doc": json.dumps({"id": f, "source_id": source_ids[i // 2 % len(source_ids)]}),
                    }
                    for i, f in enumerate(flow_ids)
                ],
            )
        written = 0
        for i, flow_id in enumerate(flow_ids):
            partner = flow_ids[i ^ 1] if (i ^ 1) < flows else None
            for first in range(0, per_flow, WRITE_BATCH):
                rows, objects, refs = [], [], []
                for n in range(first, min(per_flow, first + WRITE_BATCH)):
                    start = (n + 3 * (n // 1000)) * NS  # a 3 s gap after every 1,000 segments
                    object_id = f"{flow_id[:8]}-{n}"
                    rows.append(_segment_row(flow_id, start, start + NS, object_id))
                    shared = partner is not None and i % 2 == 0 and n % 100 == 0
                    if shared:  # the partner flow uses the object too, at the same place
                        rows.append(
                            _segment_row(
                                partner, start + per_flow * 10 * NS, start + per_flow * 10 * NS + NS, object_id
                            )
                        )
                    at = base + (written + len(rows)) * (48 * 3600 / segments)
                    objects.append(
                        {
                            "id": object_id,
                            "storage_id": storage_id,
                            "first_referenced_by": flow_id,
                            "segments": 2 if shared else 1,
                            "allocated_at": at,
                            "kind": "media",
                        }
                    )
                    refs.append({"object_id": object_id, "flow_id": flow_id, "segments": 1})
                    if shared:
                        refs.append({"object_id": object_id, "flow_id": partner, "segments": 1})
                with engine.transaction(write=True) as tx:
                    insert_rows(tx, SEGMENTS, rows)
                    insert_rows(tx, OBJECTS, objects)
                    insert_rows(tx, OBJECT_FLOWS, refs)
                written += len(rows)
        with engine.transaction(write=True) as tx:
            insert_rows(
                tx,
                OBJECTS,
                [
                    {
                        "id": f"unregistered-{n}",
                        "storage_id": storage_id,
                        "allocated_for": flow_ids[0],
                        "segments": 0,
                        "allocated_at": time.time() - 600 * (n + 1),
                        "kind": "allocated",
                    }
                    for n in range(10)
                ],
            )
        engine.checkpoint()
    finally:
        engine.close()
    return {"segments": written, "flows": flows}


@contextlib.contextmanager
def _timed_tables(engine: SQLiteEngine, batch_rows: int, marks: dict[str, float]) -> Iterator[report.ReportTables]:
    storage = stored_storage(engine, {})
    with export_tables(engine, storage, batch_rows) as tables:
        yield tables
    marks["read"] = time.perf_counter()


def time_report(directory: Path, batch_rows: int) -> tuple[float, float, dict[str, Any]]:
    """One report as ``tams-admin report`` makes it: (seconds reading into DuckDB, seconds of maths, report)."""
    started = time.perf_counter()
    engine = SQLiteEngine(directory / "tams.sqlite", read_only=True)
    try:
        engine.ensure_tables(TABLES)
        marks: dict[str, float] = {}
        found = report.build_from(_timed_tables(engine, batch_rows, marks), backend="local (read-only)")
        done = time.perf_counter()
    finally:
        engine.close()
    return marks["read"] - started, done - marks["read"], found


def registration_cost(directory: Path, batches: int, rounds: int) -> None:
    """Time 1,000-row segment inserts with and without a registration-time column, alternated."""
    wider = TableSpec(
        SEGMENTS.name, SEGMENTS.schema.append(pa.field("registered_at", pa.float64())), order=SEGMENTS.order
    )
    engines = {}
    for name, spec in (("without", SEGMENTS), ("with", wider)):
        engine = SQLiteEngine(directory / f"{name}.sqlite")
        engine.ensure_tables([spec])
        engines[name] = engine
    timings: dict[str, list[float]] = {"without": [], "with": []}
    flow_id = str(uuid.uuid4())
    n = 0
    try:
        for _ in range(rounds):
            for name, engine in engines.items():
                started = time.perf_counter()
                for b in range(batches):
                    rows = [
                        _segment_row(
                            flow_id, (n + b * 1000 + k) * NS, (n + b * 1000 + k + 1) * NS, f"o{n + b * 1000 + k}"
                        )
                        for k in range(1000)
                    ]
                    if name == "with":
                        now = time.time()
                        for row in rows:
                            row["registered_at"] = now
                    with engine.transaction(write=True) as tx:
                        insert_rows(tx, SEGMENTS, rows)
                timings[name].append((time.perf_counter() - started) / (batches * 1000) * 1e6)
            n += batches * 1000
    finally:
        for engine in engines.values():
            engine.close()
    for name, values in timings.items():
        print(
            f"{name:>8} registered_at: {statistics.median(values):.2f} us/segment "
            f"(range {min(values):.2f}-{max(values):.2f} over {rounds} rounds)"
        )
    ratio = [w / o for w, o in zip(timings["with"], timings["without"], strict=True)]
    print(f"with/without per round: median {statistics.median(ratio):.3f} (range {min(ratio):.3f}-{max(ratio):.3f})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_report", description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--flows", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch-rows", type=int, default=report.BATCH_ROWS)
    parser.add_argument("--dir", help="keep the store here (built when it has none) instead of a temporary one")
    parser.add_argument("--registration-cost", action="store_true", help="measure a registered_at column's write cost")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tams-bench-report-") as scratch:
        directory = Path(args.dir or scratch)
        if args.registration_cost:
            registration_cost(directory, batches=20, rounds=args.repeat)
            return
        if not (directory / "tams.sqlite").exists():
            started = time.perf_counter()
            built = build_store(directory, args.segments, args.flows)
            print(
                f"built {built['segments']} segments in {built['flows']} flows in {time.perf_counter() - started:.1f} s"
            )
        runs, cpus = [], []
        for i in range(args.repeat):
            cpu = time.process_time()
            read, maths, found = time_report(directory, args.batch_rows)
            cpus.append(time.process_time() - cpu)  # every thread of the process (DuckDB's too)
            runs.append(read + maths)
            totals = found["totals"]
            print(
                f"run {i + 1}: {read + maths:.2f} s (reading {read:.2f} s, maths {maths:.2f} s; CPU {cpus[-1]:.2f} s) "
                f"for {totals['segments']} segments, {totals['objects']} objects"
            )
        print(
            f"report: median {statistics.median(runs):.2f} s, range {min(runs):.2f}-{max(runs):.2f} s "
            f"(CPU median {statistics.median(cpus):.2f} s) over {len(runs)} runs (batch of {args.batch_rows} rows)"
        )


if __name__ == "__main__":
    main()
