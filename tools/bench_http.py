"""``tams-bench-http``: tams-server against plain Starlette over real sockets, side by side.

For each backend, two real server processes on loopback, each with its own fresh store:

* ``tams-server`` (spec routing, validation, authentication, dialects: everything), and
* the *baseline* (``tools/baseline_app.py``): plain Starlette + uvicorn calling the very same
  backend with the same token check and returning the backend's dicts as JSON.

Each gets one flow of ``--segments`` one-second segments (objects allocated first, registered by
1,000-segment POSTs: the bulk rate) and 16 more flows for writers. Then ``wrk`` (or a small Python
load generator when wrk is absent) with ``--connections`` connections measures, for
``--duration`` seconds each:

* ``GET /flows/{id}``;
* ``GET /flows/{id}/segments?timerange=...``: ten segments at a random place;
* ``POST /flows/{id}/segments``: one segment per request, the connections writing to 16 flows.

Every answer must be the expected 2xx: a run with any other answer is reported as failed, not
as a rate. The table gives requests per second and each target / ``--versus`` (the baseline by
default). Rounds alternate the servers so that the machine's noise falls on all of them;
``--rounds`` repeats and reports ranges.

Two more targets measure what observing costs: ``ops-off`` is tams-server with metrics off and
no access lines; ``ops-on`` has metrics on and writes a JSON line per request (``--log-format
json --log-level info``, to a file); ``ops-metrics`` and ``ops-json`` are each half of ops-on
alone. Compare them with ``--targets ops-off,ops-on --versus ops-off``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tools.bench import flow_body
from tools.server_process import running

WRITER_FLOWS = 16
WRITER_OBJECTS = 1000  # objects allocated per writer flow; writers cycle through them
ALLOCATE_BATCH = 1000
BULK = 1000
TARGETS = ("tams-server", "baseline")
# tams-server's arguments and environment per target (the baseline is another program).
SERVER_TARGETS: dict[str, tuple[list[str], dict[str, str]]] = {
    "tams-server": (["--log-level", "warning"], {}),
    "ops-off": (["--log-level", "warning"], {"TAMS_METRICS": "false"}),
    "ops-on": (["--log-level", "info", "--log-format", "json"], {"TAMS_METRICS": "true"}),
    # Each half of ops-on alone, to tell their costs apart.
    "ops-metrics": (["--log-level", "warning"], {"TAMS_METRICS": "true"}),
    "ops-json": (["--log-level", "info", "--log-format", "json"], {"TAMS_METRICS": "false"}),
}
ROUTES = ("GET flow", "GET 10 segments", "POST 1 segment")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Measured:
    """Requests per second per (backend, target, route), and bulk segments per second."""

    rates: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)
    bulk: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, key: tuple[str, str, str], rate: float) -> None:
        self.rates.setdefault(key, []).append(rate)


# --- load generation -----------------------------------------------------------------------------
@dataclass
class Load:
    """What to send: a GET path (the same each time, or one of ``windows``) or single-segment POSTs."""

    method: str
    path: str = ""
    windows: int = 0  # GET segments: "timerange=[i:0_i+10:0)" for random i below this
    flows: Sequence[str] = ()  # POST: the flows written round-robin
    first_second: int = 0  # POST: where the written segments start on each flow


def _lua(load: Load, token: str) -> str:
    auth = f'["Authorization"] = "Bearer {token}"'
    if load.method == "GET" and not load.windows:
        return f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    if load.method == "GET":
        return (
            f'wrk.headers["Authorization"] = "Bearer {token}"\n'
            "request = function()\n"
            f"  local i = math.random(0, {load.windows - 1})\n"
            f'  return wrk.format("GET", "{load.path}?timerange=%5B" .. i .. ":0_" .. (i + 10) .. ":0%29")\n'
            "end\n"
        )
    flows = ", ".join(f'"{f}"' for f in load.flows)
    return (
        f"local flows = {{{flows}}}\nlocal n = 0\n"
        "request = function()\n"
        "  local f = n % #flows\n"
        f"  local i = {load.first_second} + math.floor(n / #flows)\n"
        "  n = n + 1\n"
        '  local body = string.format(\'{"object_id":"%s-%d","timerange":"[%d:0_%d:0)"}\', '
        f"flows[f + 1], i % {WRITER_OBJECTS}, i, i + 1)\n"
        '  return wrk.format("POST", "/flows/" .. flows[f + 1] .. "/segments", '
        f'{{["Content-Type"] = "application/json", {auth}}}, body)\n'
        "end\n"
    )


def run_wrk(url: str, load: Load, token: str, seconds: float, connections: int) -> tuple[float, int]:
    """(requests/s, answers that were not 2xx) from one wrk run (one thread: one Lua counter)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua(load, token))
    try:
        target = url + (load.path if load.method == "GET" else "/")
        command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", script.name, target]
        out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    finally:
        os.unlink(script.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*?(\d+) read, (\d+) write, (\d+) timeout", out)
    return rate, (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)


async def _python_load(url: str, load: Load, token: str, seconds: float, connections: int) -> tuple[float, int]:
    """A keep-alive HTTP/1.1 load generator on raw sockets, for machines without wrk."""
    import random

    host, port = url.removeprefix("http://").split(":")
    counter = iter(range(10**12))
    done = bad = 0
    deadline = time.perf_counter() + seconds

    def next_request() -> bytes:
        head = f"Host: {host}\r\nAuthorization: Bearer {token}\r\n"
        if load.method == "GET":
            path = load.path
            if load.windows:
                i = random.randrange(load.windows)
                path += f"?timerange=%5B{i}:0_{i + 10}:0%29"
            return f"GET {path} HTTP/1.1\r\n{head}\r\n".encode()
        n = next(counter)
        flow = load.flows[n % len(load.flows)]
        i = load.first_second + n // len(load.flows)
        body = f'{{"object_id":"{flow}-{i % WRITER_OBJECTS}","timerange":"[{i}:0_{i + 1}:0)"}}'.encode()
        return (
            f"POST /flows/{flow}/segments HTTP/1.1\r\n{head}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def connection() -> None:
        nonlocal done, bad
        reader, writer = await asyncio.open_connection(host, int(port))
        while time.perf_counter() < deadline:
            writer.write(next_request())
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            done += 1
            bad += not 200 <= status < 300
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return done / (time.perf_counter() - started), bad


def run_load(url: str, load: Load, token: str, seconds: float, connections: int) -> tuple[float, int]:
    if shutil.which("wrk"):
        return run_wrk(url, load, token, seconds, connections)
    return asyncio.run(_python_load(url, load, token, seconds, connections))


# --- the stores under test --------------------------------------------------------------------------
@contextmanager
def serve(target: str, backend: str, token: str) -> Iterator[str]:
    """A fresh store behind ``target`` (tams-server or the baseline); yields its URL."""
    with tempfile.TemporaryDirectory(prefix="tams-bench-") as data:
        env = {**os.environ, "TAMS_ADMIN_TOKEN": token}
        if target in SERVER_TARGETS:
            extra_args, extra_env = SERVER_TARGETS[target]
            args = ["--backend", backend, "--data-dir", data, *extra_args]
            log = Path(data) / "server.log"  # JSON lines go to a file, as in production
            context = running(args, {**env, **extra_env}, ready_s=60, log=log)
        else:
            args = ["--backend", backend, "--data-dir", data]
            context = running(args, env, ready_s=60, module="tools.baseline_app", ready_path="/flows/x")
        with context as url:
            yield url


def prepare(client: httpx.Client, flow_id: str, objects: Sequence[str]) -> None:
    """Create the flow and allocate its objects (the baseline offers the same two routes)."""
    response = client.put(f"/flows/{flow_id}", json=flow_body(flow_id))
    assert response.status_code in (201, 204), response.text
    for at in range(0, len(objects), ALLOCATE_BATCH):
        chunk = list(objects[at : at + ALLOCATE_BATCH])
        response = client.post(f"/flows/{flow_id}/storage", json={"object_ids": chunk})
        assert response.status_code == 201, response.text


def register(client: httpx.Client, flow_id: str, count: int) -> float:
    """Register ``count`` one-second segments in 1,000-segment POSTs; segments per second."""
    started = time.perf_counter()
    for at in range(0, count, BULK):
        body = [
            {"object_id": f"{flow_id}-{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(at, min(count, at + BULK))
        ]
        response = client.post(f"/flows/{flow_id}/segments", json=body)
        assert response.status_code == 201, response.text
    return count / (time.perf_counter() - started)


def bench_target(target: str, backend: str, args: argparse.Namespace, measured: Measured) -> None:
    token = secrets.token_urlsafe(32)
    label = f"[{backend} {target}]"
    with serve(target, backend, token) as url:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            main_flow = str(uuid.uuid4())
            writers = [str(uuid.uuid4()) for _ in range(WRITER_FLOWS)]
            prepare(client, main_flow, [f"{main_flow}-{i}" for i in range(args.segments)])
            for flow in writers:
                prepare(client, flow, [f"{flow}-{i}" for i in range(WRITER_OBJECTS)])
            rate = register(client, main_flow, args.segments)
            measured.bulk.setdefault((backend, target), []).append(rate)
            progress(f"{label} bulk registration: {rate:,.0f} segments/s")
        loads = {
            "GET flow": Load("GET", f"/flows/{main_flow}"),
            "GET 10 segments": Load("GET", f"/flows/{main_flow}/segments", windows=args.segments - 10),
            "POST 1 segment": Load("POST", flows=writers, first_second=0),
        }
        for route, load in loads.items():
            rate, bad = run_load(url, load, token, args.duration, args.connections)
            if bad:
                measured.failures.append(f"{label} {route}: {bad} answers were not 2xx")
            measured.add((backend, target, route), rate)
            progress(f"{label} {route}: {rate:,.0f}/s" + (f" ({bad} not 2xx!)" if bad else ""))


# --- report ------------------------------------------------------------------------------------------
def _span(values: Sequence[float], digits: int = 0) -> str:
    low, high = min(values), max(values)
    if len(values) == 1 or round(low, digits) == round(high, digits):
        return f"{statistics.median(values):,.{digits}f}"
    return f"{low:,.{digits}f}–{high:,.{digits}f}"


def table(measured: Measured, backends: Sequence[str], targets: Sequence[str], versus: str) -> str:
    """Markdown: per route and backend, each target, ``versus`` and their ratio (ranges over rounds)."""
    out = [f"| route | backend | target | target /s | {versus} /s | ratio |", "| --- | --- | --- | --- | --- | --- |"]
    for target in (t for t in targets if t != versus):
        for backend in backends:
            for route in ROUTES:
                ours = measured.rates.get((backend, target, route), [])
                base = measured.rates.get((backend, versus, route), [])
                if not ours or not base:
                    continue
                ratios = [a / b for a, b in zip(ours, base, strict=False)]
                out.append(f"| {route} | {backend} | {target} | {_span(ours)} | {_span(base)} | {_span(ratios, 2)} |")
        for backend in backends:
            ours = measured.bulk.get((backend, target), [])
            base = measured.bulk.get((backend, versus), [])
            if ours or base:
                ratio = _span([a / b for a, b in zip(ours, base, strict=False)], 2) if ours and base else ""
                row = f"| bulk (1,000-segment POSTs), segments/s | {backend} | {target} | {_span(ours) if ours else ''}"
                out.append(f"{row} | {_span(base) if base else ''} | {ratio} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tams-bench-http", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="memory,local", help="comma-separated backends")
    parser.add_argument("--segments", type=int, default=10_000, help="segments in the flow that is read")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1, help="repeat everything, alternating the servers")
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help=f"comma-separated, from {', '.join([*SERVER_TARGETS, 'baseline'])} (default tams-server,baseline)",
    )
    parser.add_argument("--versus", default="baseline", help="the target the others are compared with")
    parser.add_argument(
        "--memory-segments",
        type=int,
        default=1_000_000,
        help="memory backend: RSS growth per segment over this many segments (0: skip)",
    )
    parser.add_argument("--no-vast", action="store_true", help="skip the vast round-trip counts")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        progress("wrk is not installed: using the Python load generator (it may be the bottleneck)")
    chosen = [b for b in args.backends.split(",") if b]
    targets = [t for t in args.targets.split(",") if t]
    unknown = set(targets) - {*SERVER_TARGETS, "baseline"}
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    measured = Measured()
    for round_ in range(args.rounds):
        for backend in chosen:
            for target in targets if round_ % 2 == 0 else reversed(targets):
                bench_target(target, backend, args, measured)
    print(table(measured, chosen, targets, args.versus))
    if args.memory_segments:
        from tools.bench_memory import bytes_per_segment

        progress(f"[memory] bytes per segment over {args.memory_segments:,} segments...")
        print(
            f"\nmemory backend: {bytes_per_segment(args.memory_segments):,.0f} bytes per segment (RSS growth over "
            f"{args.memory_segments:,} segments)"
        )
    if not args.no_vast:
        from tools.bench_roundtrips import round_trips
        from tools.bench_roundtrips import table as round_trip_table

        progress("[vast] counting round trips on the SDK double...")
        print("\nvast (SDK double): database round trips per operation, uncontended\n")
        print(round_trip_table(round_trips()))
    for failure in measured.failures:
        print("FAILED:", failure)
    if measured.failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
