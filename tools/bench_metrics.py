"""``python -m tools.bench_metrics``: what the Prometheus instrumentation costs per request.

Two measurements, both in this process (no sockets, so the instrumentation is not hidden behind
network noise):

1. ``observe_request`` alone (``timeit``): the call the request observation makes once per
   answered request, against the same kept in prometheus_client's Histogram and Counter.
2. Whole requests through the ASGI app (auth, routing, validation, handler, backend), driven by
   raw ASGI calls: ``GET /flows/{id}``, ``GET /flows/{id}/segments`` (ten segments) and
   ``POST /flows/{id}/segments`` (one), with the instrumentation on, and with it stubbed out
   (``observe_request``, the segment counters and the store's transaction counters replaced by
   no-ops). Small batches of each alternate, so the machine's noise falls on both alike; the
   table gives the median microseconds per request of each, and per round the ratio of the
   median batches on / off (its median and range over rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import timeit
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from tams_server import metrics
from tams_server.app import TamsApp, create_app
from tams_server.config import Settings
from tools.bench import flow_body

TOKEN = "tams_bench-metrics-9Kq2vX7pLm4Rz8Tw"


def observe_cost(number: int = 200_000) -> dict[str, float]:
    """Microseconds per call: ``observe_request``, and the same kept in prometheus_client's own
    Histogram and Counter (labelled children looked up once), as it was first written."""
    observe = metrics.observe_request
    ours = timeit.timeit(lambda: observe("8.2", "GET_flows-flowId", 200, 0.0003, 1234), number=number)
    registry = CollectorRegistry()
    labels = ["version", "operation", "status"]
    histogram = Histogram("bench_seconds", "-", labels, buckets=metrics.LATENCY_BUCKETS, registry=registry)
    counter = Counter("bench_bytes", "-", labels, registry=registry)
    children = (histogram.labels("8.2", "GET_flows-flowId", "200").observe, counter.labels("8.2", "x", "200").inc)

    def library() -> None:
        children[0](0.0003)
        children[1](1234)

    theirs = timeit.timeit(library, number=number)
    nothing = timeit.timeit(lambda: None, number=number)
    return {
        "observe_request_us": (ours - nothing) / number * 1e6,
        "library_us": (theirs - nothing) / number * 1e6,
    }


class _NoCounts:
    began = conflict = retry = busy = staticmethod(lambda: None)


@contextmanager
def stubbed(app: TamsApp) -> Iterator[None]:
    """The app with its per-request instrumentation replaced by no-ops."""
    backend: Any = app.backend
    saved = (metrics.observe_request, metrics.segments_posted)
    counts = (getattr(backend, "_reads", None), getattr(backend, "_writes", None))
    metrics.observe_request = lambda *args: None  # type: ignore[assignment]
    metrics.segments_posted = lambda *args: None  # type: ignore[assignment]
    if counts[0] is not None:
        backend._reads = backend._writes = _NoCounts()
    try:
        yield
    finally:
        metrics.observe_request, metrics.segments_posted = saved
        if counts[0] is not None:
            backend._reads, backend._writes = counts


async def call(app: TamsApp, method: str, path: str, query: str = "", body: Any = None) -> int:
    """One request through the app's ASGI interface; its status."""
    data = b"" if body is None else json.dumps(body).encode()
    headers = [(b"host", b"testserver"), (b"authorization", f"Bearer {TOKEN}".encode())]
    if body is not None:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    delivered = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": data, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


class Routes:
    """The three requests, on a flow of ``segments`` segments (and a flow for writes)."""

    def __init__(self, app: TamsApp, segments: int) -> None:
        self.app = app
        self.base = "/v8.2"
        self.flow = flow_body(str(uuid.uuid4()), str(uuid.uuid4()))
        self.writes = flow_body(str(uuid.uuid4()), str(uuid.uuid4()))
        self.next_second = 0
        self.objects: list[str] = []
        asyncio.run(self._fill(segments))

    async def _fill(self, segments: int) -> None:
        for flow in (self.flow, self.writes):
            assert await call(self.app, "PUT", f"{self.base}/flows/{flow['id']}", body=flow) == 201
        ids = await self._allocate(self.flow["id"], segments)
        bodies = [{"object_id": o, "timerange": f"[{i}:0_{i + 1}:0)"} for i, o in enumerate(ids)]
        status = await call(self.app, "POST", f"{self.base}/flows/{self.flow['id']}/segments", body=bodies)
        assert status == 201, status

    async def _allocate(self, flow_id: str, count: int) -> list[str]:
        ids = [str(uuid.uuid4()) for _ in range(count)]
        path = f"{self.base}/flows/{flow_id}/storage"
        assert await call(self.app, "POST", path, body={"object_ids": ids}) == 201
        return ids

    async def get_flow(self) -> int:
        return await call(self.app, "GET", f"{self.base}/flows/{self.flow['id']}")

    async def get_segments(self) -> int:
        return await call(self.app, "GET", f"{self.base}/flows/{self.flow['id']}/segments", "timerange=[20:0_30:0)")

    async def post_segment(self) -> int:
        if not self.objects:
            self.objects = await self._allocate(self.writes["id"], 1000)
        second = self.next_second
        self.next_second += 1
        body = {"object_id": self.objects.pop(), "timerange": f"[{second}:0_{second + 1}:0)"}
        return await call(self.app, "POST", f"{self.base}/flows/{self.writes['id']}/segments", body=body)


ROUTES: dict[str, Callable[[Routes], Any]] = {
    "GET flow": Routes.get_flow,
    "GET 10 segments": Routes.get_segments,
    "POST 1 segment": Routes.post_segment,
}
EXPECTED = {"GET flow": 200, "GET 10 segments": 200, "POST 1 segment": 201}


async def batch(routes: Routes, name: str, count: int) -> float:
    """Microseconds per request of ``count`` requests of one route."""
    request = ROUTES[name]
    started = time.perf_counter()
    for _ in range(count):
        status = await request(routes)
        if status != EXPECTED[name]:
            raise RuntimeError(f"{name} answered {status}")
    return (time.perf_counter() - started) / count * 1e6


async def measure(app: TamsApp, routes: Routes, rounds: int, batches: int, size: int) -> dict[str, dict[str, Any]]:
    """Per route and round, ``batches`` small batches with the instrumentation on and as many with
    it off, interleaved (noise from other processes falls on both alike); each round's figure is
    the median batch."""
    found: dict[str, dict[str, Any]] = {}
    for name in ROUTES:
        await batch(routes, name, size * 4)  # warm up
        ratios, on_all, off_all = [], [], []
        for _ in range(rounds):
            on: list[float] = []
            off: list[float] = []
            for b in range(batches):
                for stub in (b % 2 == 0, b % 2 == 1):
                    if stub:
                        with stubbed(app):
                            off.append(await batch(routes, name, size))
                    else:
                        on.append(await batch(routes, name, size))
            ratios.append(statistics.median(on) / statistics.median(off))
            on_all += on
            off_all += off
        found[name] = {
            "on_us": statistics.median(on_all),
            "off_us": statistics.median(off_all),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "ratio_median": statistics.median(ratios),
        }
    return found


def compare(backend: str, rounds: int, batches: int, size: int, segments: int) -> dict[str, dict[str, Any]]:
    settings = Settings(backend=backend, admin_token=TOKEN, versions=["8.2"], default_version="8.2")
    if backend == "local":
        settings.backend_options = {"temporary": True}
    app = create_app(settings)
    try:
        routes = Routes(app, segments)
        return asyncio.run(measure(app, routes, rounds, batches, size))
    finally:
        app.backend.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], prog="python -m tools.bench_metrics")
    parser.add_argument("--backends", default="memory,local")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--batches", type=int, default=40, help="batches per round with the instrumentation on (as many off)"
    )
    parser.add_argument("--size", type=int, default=10, help="requests per batch")
    parser.add_argument("--segments", type=int, default=1000, help="segments in the flow that is read")
    args = parser.parse_args(argv)
    costs = observe_cost()
    print(f"observe_request: {costs['observe_request_us']:.2f} us per call", end="")
    print(f" (prometheus_client Histogram + Counter, children cached: {costs['library_us']:.2f} us)")
    print(f"\n{'backend':8} {'route':16} {'on us':>8} {'off us':>8} {'on/off median':>14} {'range of rounds':>16}")
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        for name, row in compare(backend, args.rounds, args.batches, args.size, args.segments).items():
            spread = f"{row['ratio_min']:.3f}-{row['ratio_max']:.3f}"
            line = f"{backend:8} {name:16} {row['on_us']:8.1f} {row['off_us']:8.1f} {row['ratio_median']:14.3f}"
            print(f"{line} {spread:>16}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
