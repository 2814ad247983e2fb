"""``python -m tools.bench_memory``: what the in-memory reference backend costs per segment.

Each measurement runs in a fresh Python process (so its resident set is clean): it builds the memory
backend as the server does (``backends.load_factory("memory")``), creates one flow, allocates the
objects first as a client must (``allocate_storage`` with ``object_ids``, 1,000 per request), then
registers ``count`` one-second segments, each on its own object, in 1,000-segment ``add_segments``
calls. It reports the growth of the resident set per segment (objects and segments together), the
time ``add_segments`` took per segment, and the latency of ``list_segments`` for a 10-segment
timerange at random places in the filled flow.

``bytes_per_segment(count)`` is the figure ``tools.bench_http`` shows; ``main`` prints all of them.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BATCH = 1_000  # segments per add_segments call, object ids per allocation
QUERIES = 300


@dataclass(frozen=True)
class Measurement:
    count: int
    bytes_per_segment: float
    add_us_per_segment: float  # add_segments alone (allocation not included)
    allocate_us_per_segment: float
    list_median_ms: float  # list_segments of a 10-segment timerange, with get_urls
    list_p95_ms: float


def bytes_per_segment(count: int) -> float:
    """RSS growth per segment (with its object) of a memory backend holding ``count`` segments."""
    return measure(count).bytes_per_segment


def measure(count: int) -> Measurement:
    """Fill a memory backend with ``count`` segments in a fresh process and measure it."""
    done = subprocess.run(
        [sys.executable, "-m", "tools.bench_memory", "--child", str(count)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return Measurement(**json.loads(done.stdout.strip().splitlines()[-1]))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _child(count: int) -> Measurement:
    """The measurement itself: run in the fresh process."""
    import uuid

    import backends
    from backends.base import BackendServices, PageRequest, SegmentQuery, StorageRequest, UrlOptions
    from backends.events import DiscardEvents
    from backends.timerange import TimeRange
    from tools.bench import flow_body

    class Signer:
        def sign(self, method: str, storage_id: str, object_id: str) -> str:
            return f"http://media.example/{storage_id}/{object_id}?sig=0"

    def new_flow() -> str:
        flow_id = str(uuid.uuid4())
        backend.put_flow(flow_id, flow_body(flow_id))
        return flow_id

    backend: Any = backends.load_factory("memory")({}, BackendServices(signer=Signer(), events=DiscardEvents()))
    # Warm every code path up (lazy imports, caches) on another flow before the baseline.
    warm = new_flow()
    backend.allocate_storage(warm, StorageRequest(object_ids=("warm-0",)))
    backend.add_segments(warm, [{"object_id": "warm-0", "timerange": "[0:0_1:0)"}])
    backend.list_segments(warm, SegmentQuery(), UrlOptions(), PageRequest())
    flow_id = new_flow()
    gc.collect()
    before = _rss_bytes()
    add_s = allocate_s = 0.0
    for start in range(0, count, BATCH):
        n = min(BATCH, count - start)
        ids = [f"obj-{i}" for i in range(start, start + n)]
        started = time.perf_counter()
        backend.allocate_storage(flow_id, StorageRequest(object_ids=tuple(ids)))
        allocate_s += time.perf_counter() - started
        bodies = [{"object_id": ids[i], "timerange": f"[{start + i}:0_{start + i + 1}:0)"} for i in range(n)]
        started = time.perf_counter()
        failed = backend.add_segments(flow_id, bodies)
        add_s += time.perf_counter() - started
        assert failed == [], failed[:3]
        del ids, bodies
        if start and start % 100_000 == 0:
            print(f"{start:,}/{count:,}", file=sys.stderr, flush=True)
    gc.collect()
    grown = _rss_bytes() - before
    rng = random.Random(count)
    latencies = []
    for i in range(QUERIES + 20):
        at = rng.randrange(0, max(1, count - 20))
        query = SegmentQuery(timerange=TimeRange.parse(f"[{at}:500000000_{at + 10}:0)"))
        started = time.perf_counter()
        page = backend.list_segments(flow_id, query, UrlOptions(), PageRequest())
        elapsed = time.perf_counter() - started
        assert len(page.items) == min(10, count), page.items
        if i >= 20:  # the first few warm caches up
            latencies.append(elapsed * 1000)
    latencies.sort()
    return Measurement(
        count=count,
        bytes_per_segment=grown / count,
        add_us_per_segment=add_s / count * 1e6,
        allocate_us_per_segment=allocate_s / count * 1e6,
        list_median_ms=statistics.median(latencies),
        list_p95_ms=latencies[int(0.95 * (len(latencies) - 1))],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000,1000000", help="comma-separated segment counts")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(asdict(_child(args.child))))
        return
    print("segments   bytes/segment   add_segments us/segment   segments/s   list 10 median ms   p95 ms")
    for size in [int(s) for s in args.sizes.split(",") if s]:
        print(f"measuring {size:,} segments...", file=sys.stderr, flush=True)
        m = measure(size)
        print(
            f"{m.count:>9,}   {m.bytes_per_segment:>13.0f}   {m.add_us_per_segment:>23.2f}"
            f"   {1e6 / m.add_us_per_segment:>10,.0f}   {m.list_median_ms:>17.3f}   {m.list_p95_ms:>6.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
