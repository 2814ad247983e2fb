"""``tams-bench``: segment registration rate and timerange query latency, per backend and flow size.

For each backend and each flow size N, a fresh store gets one flow filled with N one-second
segments (each with its own object, allocated first as a client must: ``POST /flows/{id}/storage``
with ``object_ids``, untimed). Then, on that flow of N segments, it measures through the HTTP API
(the ASGI app in process, no sockets):

* single POST: segments registered per second, one segment per ``POST /flows/{id}/segments``;
* bulk POST: segments registered per second, ``--bulk`` segments per POST;
* query: latency of ``GET /flows/{id}/segments?timerange=...`` returning about 10 segments, at
  random places in the flow (median and 95th percentile).

The fill itself goes through the backend directly in large batches (registering 10^6 segments one
POST at a time would take the benchmark hours), except for sizes up to ``--http-fill`` where it uses
bulk POSTs too. Progress goes to stderr; the table to stdout.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.testclient import TestClient

import backends
from backends.base import StorageRequest
from tams_server.app import create_app
from tams_server.config import Settings

DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000)
FILL_BATCH = 5_000
ALLOCATE_BATCH = 1_000  # object ids per storage request
# How a backend's column is labelled when the benchmark runs it on stand-ins (self-contained options).
EMULATED = {"vast": "vast (SDK double + moto)"}


@dataclass
class Result:
    backend: str
    size: int
    single_per_s: float
    bulk_per_s: float
    query_median_ms: float
    query_p95_ms: float


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def flow_body(flow_id: str, source_id: str | None = None) -> dict[str, Any]:
    """The data flow every benchmark registers its segments on (a fresh source unless given one)."""
    return {
        "id": flow_id,
        "source_id": source_id or str(uuid.uuid4()),
        "format": "urn:x-nmos:format:data",
        "codec": "text/plain",
        "container": "text/plain",
        "essence_parameters": {"data_type": "urn:x-tams:data:bench"},
    }


def segments(start: int, count: int) -> list[dict[str, Any]]:
    return [{"object_id": f"obj-{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(start, start + count)]


def allocate(client: TestClient | None, backend: Any, flow_id: str, start: int, count: int) -> None:
    """Allocate the objects of ``segments(start, count)`` for the flow: through the API with a
    ``client``, else on the backend directly."""
    ids = [s["object_id"] for s in segments(start, count)]
    for at in range(0, count, ALLOCATE_BATCH):
        chunk = ids[at : at + ALLOCATE_BATCH]
        if client is not None:
            response = client.post(f"/flows/{flow_id}/storage", json={"object_ids": chunk})
            assert response.status_code == 201, response.text
        else:
            backend.allocate_storage(flow_id, StorageRequest(object_ids=tuple(chunk)))


def _settings(backend: str) -> Settings:
    # Self-contained: a temporary directory for local; for vast the in-process SDK double and moto,
    # so its column measures our code over the double, not a VAST cluster (labelled in the table).
    options = backends.self_contained_options(backend)
    return Settings(backend=backend, backend_options=options, data_dir=None, insecure_no_auth=True)


def bench_one(backend: str, size: int, args: argparse.Namespace) -> Result:
    label = f"[{backend} {size:>9,}]"
    app = create_app(_settings(backend))
    try:
        with TestClient(app) as client:
            flow_id = str(uuid.uuid4())
            assert client.put(f"/flows/{flow_id}", json=flow_body(flow_id)).status_code == 201
            fill(client, app.backend, flow_id, size, args, label)
            next_start = size
            # Bulk POSTs, appended after the N segments.
            posts = max(1, args.bulk_posts)
            allocate(client, app.backend, flow_id, next_start, posts * args.bulk + args.singles)
            started = time.perf_counter()
            for _ in range(posts):
                response = client.post(f"/flows/{flow_id}/segments", json=segments(next_start, args.bulk))
                assert response.status_code == 201, response.text
                next_start += args.bulk
            bulk_rate = posts * args.bulk / (time.perf_counter() - started)
            progress(f"{label} bulk POST: {bulk_rate:,.0f} segments/s")
            # Single POSTs.
            started = time.perf_counter()
            for _ in range(args.singles):
                response = client.post(f"/flows/{flow_id}/segments", json=segments(next_start, 1)[0])
                assert response.status_code == 201, response.text
                next_start += 1
            single_rate = args.singles / (time.perf_counter() - started)
            progress(f"{label} single POST: {single_rate:,.0f} segments/s")
            # Timerange queries returning about 10 segments.
            rng = random.Random(size)
            latencies = []
            for i in range(args.queries + 5):
                at = rng.randrange(0, max(1, size - 20))
                started = time.perf_counter()
                response = client.get(
                    f"/flows/{flow_id}/segments", params={"timerange": f"[{at}:500000000_{at + 10}:0)"}
                )
                elapsed = time.perf_counter() - started
                assert response.status_code == 200 and len(response.json()) == 10, response.text
                if i >= 5:  # the first few warm caches up
                    latencies.append(elapsed * 1000)
            latencies.sort()
            median = statistics.median(latencies)
            p95 = latencies[int(0.95 * (len(latencies) - 1))]
            progress(f"{label} query: median {median:.2f} ms, p95 {p95:.2f} ms")
            return Result(backend, size, single_rate, bulk_rate, median, p95)
    finally:
        app.backend.close()


def fill(client: TestClient, backend: Any, flow_id: str, size: int, args: argparse.Namespace, label: str) -> None:
    started = time.perf_counter()
    done = 0
    shown = 0.0
    while done < size:
        count = min(FILL_BATCH, size - done)
        if size <= args.http_fill:
            allocate(client, backend, flow_id, done, count)
            response = client.post(f"/flows/{flow_id}/segments", json=segments(done, count))
            assert response.status_code == 201, response.text
        else:
            allocate(None, backend, flow_id, done, count)
            assert backend.add_segments(flow_id, segments(done, count)) == []
        done += count
        if time.perf_counter() - shown > 2 or done == size:
            shown = time.perf_counter()
            rate = done / (shown - started)
            progress(f"{label} filling: {done:,}/{size:,} segments ({100 * done / size:.0f}%, {rate:,.0f}/s)")


def table(results: Sequence[Result]) -> str:
    header = ("backend", "segments", "single POST/s", "bulk POST seg/s", "query median ms", "query p95 ms")
    rows = [
        (
            EMULATED.get(r.backend, r.backend),
            f"{r.size:,}",
            f"{r.single_per_s:,.0f}",
            f"{r.bulk_per_s:,.0f}",
            f"{r.query_median_ms:.2f}",
            f"{r.query_p95_ms:.2f}",
        )
        for r in results
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    line = "+".join("-" * (w + 2) for w in widths)

    def fmt(cells: Sequence[str]) -> str:
        return "|".join(f" {c:>{w}} " for c, w in zip(cells, widths, strict=True))

    out = [fmt(header), line, *(fmt(r) for r in rows)]
    if any(r.backend in EMULATED for r in results):
        out.append("vast ran on the in-process VAST DB SDK double and a moto S3 server, not on a VAST cluster")
    for backend in dict.fromkeys(r.backend for r in results):
        mine = {r.size: r for r in results if r.backend == backend}
        if len(mine) > 1:
            small, large = mine[min(mine)], mine[max(mine)]
            ratio = large.query_median_ms / small.query_median_ms
            out.append(f"{backend}: query latency at {large.size:,} is {ratio:.2f}x that at {small.size:,}")
    return "\n".join(out)


def main(argv: list[str] | None = None, run: Callable[[str, int, argparse.Namespace], Result] = bench_one) -> None:
    parser = argparse.ArgumentParser(prog="tams-bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backends", default="memory,local,vast", help="comma-separated backends (vast: emulated, SDK double + moto)"
    )
    parser.add_argument(
        "--sizes", default=",".join(str(s) for s in DEFAULT_SIZES), help="comma-separated flow sizes in segments"
    )
    parser.add_argument("--singles", type=int, default=300, help="single-segment POSTs to time")
    parser.add_argument("--bulk", type=int, default=1000, help="segments per bulk POST")
    parser.add_argument("--bulk-posts", type=int, default=10, help="bulk POSTs to time")
    parser.add_argument("--queries", type=int, default=200, help="timerange queries to time")
    parser.add_argument("--http-fill", type=int, default=10_000, help="fill flows up to this size through the API")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("tams_server").setLevel(logging.ERROR)
    results = []
    for size in [int(s) for s in args.sizes.split(",") if s]:
        for backend in [b for b in args.backends.split(",") if b]:
            results.append(run(backend, size, args))
    print(table(results))


if __name__ == "__main__":
    main()
