"""``python -m tools.bench_hls``: an HLS playlist of a large flow costs bounded memory; a window, its segments.

For each ``--segments`` size (default 10^5 and 10^6) it builds a local store holding one flow of
that many one-second segments (``tools.bench_report.build_store``: rows written in bulk, a 3 s
gap after every 1,000 segments), then, in a fresh Python process per measurement (a clean
resident set), starts the app on that store as ``tams-server`` does and asks for:

* the whole playlist, ``GET /hls/flows/{id}.m3u8`` (the flow declares no segment duration, so
  this is the worst case: one pass over the segments for the target duration, one for the list);
* a ten-segment window, ``?timerange=`` in the middle of the flow.

The body is read as it streams and dropped. A thread samples the process's resident set every
5 ms; the report is the peak above the resident set just before the request, the time to the
first byte and to the last, and the playlist's size. Bounded memory shows as a peak that does not
grow with the flow: compare the rows of one run (the machine is shared; repeat with ``--repeat``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES


class PeakSampler:
    """The highest resident set seen while it runs, sampled every ``interval_s``."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _measure_in_this_process(data_dir: str, flow_id: str, query: str) -> dict[str, Any]:
    from tams_server.app import create_app
    from tams_server.config import Settings

    token = "bench-hls-token-0123456789abcdef"
    app = create_app(Settings(backend="local", data_dir=data_dir, admin_token=token, default_version="8.2"))

    async def run() -> dict[str, Any]:
        startup_done = asyncio.Event()
        lifespan_queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await lifespan_queue.put({"type": "lifespan.startup"})

        async def lifespan_receive() -> dict[str, Any]:
            return await lifespan_queue.get()

        async def lifespan_send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                startup_done.set()

        lifespan = asyncio.create_task(
            app({"type": "lifespan", "asgi": {"version": "3.0"}}, lifespan_receive, lifespan_send)
        )
        await startup_done.wait()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": f"/hls/flows/{flow_id}.m3u8",
            "raw_path": f"/hls/flows/{flow_id}.m3u8".encode(),
            "query_string": query.encode(),
            "headers": [(b"host", b"localhost"), (b"authorization", f"Bearer {token}".encode())],
            "client": ("127.0.0.1", 1),
            "server": ("localhost", 80),
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # no disconnect while the answer streams
            return {}

        found: dict[str, Any] = {"bytes": 0, "first_s": None, "status": None}
        started = time.perf_counter()

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                found["status"] = message["status"]
            elif message["type"] == "http.response.body" and message.get("body"):
                if found["first_s"] is None:
                    found["first_s"] = time.perf_counter() - started
                found["bytes"] += len(message["body"])  # read and dropped, as a player would stream it

        baseline = _rss()
        with PeakSampler() as sampler:
            await app(scope, receive, send)
        found["total_s"] = time.perf_counter() - started
        found["peak_above_baseline_mb"] = (sampler.peak - baseline) / 2**20
        await lifespan_queue.put({"type": "lifespan.shutdown"})
        await lifespan
        return found

    return asyncio.run(run())


def measure(data_dir: Path, flow_id: str, query: str = "") -> dict[str, Any]:
    """One request's figures, measured in a fresh process."""
    code = (
        "import json, sys; from tools.bench_hls import _measure_in_this_process as m; "
        "print(json.dumps(m(sys.argv[1], sys.argv[2], sys.argv[3])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(data_dir), flow_id, query],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def build(directory: Path, segments: int) -> str:
    """A store of one flow of ``segments`` segments in ``directory`` (kept between runs); its flow id."""
    from tools.bench_report import build_store

    marker = directory / "flow_id"
    if not marker.exists():
        started = time.perf_counter()
        build_store(directory, segments, flows=1)
        with contextlib.closing(sqlite3.connect(directory / "tams.sqlite")) as db:
            (flow_id,) = db.execute("SELECT id FROM flows").fetchone()
        marker.write_text(flow_id)
        print(f"built {segments:,} segments in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return marker.read_text()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None, help="keep the built stores here (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.dir or Path(scratch)
        stores = {n: (root / f"hls-{n}", build(root / f"hls-{n}", n)) for n in args.segments}
        print(f"{'segments':>10} {'request':>8} {'peak MB':>8} {'first s':>8} {'total s':>8} {'MB out':>8}")
        for _ in range(args.repeat):
            for n, (directory, flow_id) in stores.items():
                middle = n // 2 + 3 * (n // 2 // 1000)  # the start of segment n/2 (gaps: 3 s every 1,000)
                for name, query in (("whole", ""), ("window", f"timerange=[{middle}:0_{middle + 10}:0)")):
                    found = measure(directory, flow_id, query)
                    assert found["status"] == 200, found
                    print(
                        f"{n:>10,} {name:>8} {found['peak_above_baseline_mb']:>8.1f} {found['first_s']:>8.3f}"
                        f" {found['total_s']:>8.2f} {found['bytes'] / 2**20:>8.1f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
