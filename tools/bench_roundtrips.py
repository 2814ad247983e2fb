"""Round trips to VAST DB per API operation, counted exactly on the SDK double.

The ``vast`` backend is built self-contained (the in-process VAST DB SDK double and a moto S3
server, as ``tams-bench`` does), each operation runs once to warm up and once measured, alone
(uncontended), and the double's counters give what the measured run cost: transactions (each is
a begin and a commit RPC on a cluster) and database calls (selects, inserts, updates, deletes).
Latency on a cluster is roughly transactions x 2 + calls round trips.

``round_trips()`` is quiet and takes a few seconds; ``main`` prints the table.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import backends
from backends.base import BackendServices, PageRequest, SegmentQuery, StorageRequest, UrlOptions
from backends.events import DiscardEvents
from backends.timerange import TimeRange
from tools.bench import flow_body

COUNTERS = ("transactions", "selects", "inserts", "updates", "deletes")
OPERATIONS = (
    "GET flow",
    "GET 10 segments",
    "POST 1 segment",
    "POST 1,000 segments",
    "PUT flow",
    "allocate storage",
)
PAGE = 10  # segments per listed page
FILLED = 40  # segments in the flow the listings read


class _Signer:
    def sign(self, method: str, storage_id: str, object_id: str) -> str:  # S3 presigns its own URLs
        return f"http://unused/{storage_id}/{object_id}"


class _Run:
    """One emulated store with a flow of ``FILLED`` segments; hands out fresh segment times."""

    def __init__(self) -> None:
        services = BackendServices(signer=_Signer(), events=DiscardEvents())
        # A long lock ttl keeps the claim renewer (every ttl / 3) out of the counts.
        options = {**backends.self_contained_options("vast"), "lock_ttl": 3600}
        self.backend: Any = backends.load_factory("vast")(options, services)
        self.cluster = self.backend.engine.cluster
        self.source_id = str(uuid.uuid4())
        self.flow_id = self.new_flow()
        self.next = 0
        self.post(FILLED)()

    def new_flow(self) -> str:
        flow_id = str(uuid.uuid4())
        self.backend.put_flow(flow_id, flow_body(flow_id, self.source_id))
        return flow_id

    def segments(self, count: int) -> list[dict[str, Any]]:
        start, self.next = self.next, self.next + count
        return [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(start, start + count)]

    def allocate(self, bodies: list[dict[str, Any]]) -> None:
        ids = tuple(b["object_id"] for b in bodies)
        self.backend.allocate_storage(self.flow_id, StorageRequest(object_ids=ids))

    def post(self, count: int) -> Callable[[], Any]:
        """Allocate ``count`` objects now (untimed); the POST that registers them, to run later."""
        bodies = self.segments(count)
        self.allocate(bodies)
        return lambda: self._check(self.backend.add_segments(self.flow_id, bodies))

    @staticmethod
    def _listed(page: Any) -> None:
        if len(page.items) != PAGE:
            raise RuntimeError(f"the benchmark page has {len(page.items)} segments, not {PAGE}")

    @staticmethod
    def _check(failed: list[Any]) -> None:
        if failed:
            raise RuntimeError(f"a benchmark segment was refused: {failed[0]}")

    def prepare(self, operation: str) -> Callable[[], Any]:
        """The operation, ready to run (its set-up done and not counted)."""
        backend, flow_id = self.backend, self.flow_id
        if operation == "GET flow":
            return lambda: backend.get_flow(flow_id)
        if operation == "GET 10 segments":
            query = SegmentQuery(timerange=TimeRange.parse(f"[{FILLED // 2}:500000000_{FILLED // 2 + PAGE}:0)"))
            return lambda: self._listed(backend.list_segments(flow_id, query, UrlOptions(), PageRequest()))
        if operation == "POST 1 segment":
            return self.post(1)
        if operation == "POST 1,000 segments":
            return self.post(1000)
        if operation == "PUT flow":
            new_id = str(uuid.uuid4())
            return lambda: backend.put_flow(new_id, flow_body(new_id, self.source_id))
        if operation == "allocate storage":
            return lambda: backend.allocate_storage(flow_id, StorageRequest(limit=1))
        raise ValueError(f"unknown operation {operation!r}; known: {', '.join(OPERATIONS)}")

    def measure(self, operation: str) -> dict[str, int]:
        self.prepare(operation)()  # warm-up: caches, sessions, first-use paths
        run = self.prepare(operation)
        before = self.cluster.stats
        run()
        spent = self.cluster.stats - before
        counts = {name: getattr(spent, name) for name in COUNTERS}
        counts["calls"] = sum(counts[name] for name in COUNTERS[1:])
        return counts

    def close(self) -> None:
        self.backend.close()


def round_trips(operations: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
    """Per operation: ``transactions``, ``selects``, ``inserts``, ``updates``, ``deletes`` and
    ``calls`` (their sum), for one uncontended run after a warm-up, on the emulated vast backend."""
    run = _Run()
    try:
        return {operation: run.measure(operation) for operation in (operations or OPERATIONS)}
    finally:
        run.close()


def table(results: dict[str, dict[str, int]]) -> str:
    columns = ["operation", "transactions", "calls", *COUNTERS[1:]]
    rows = [[name] + [str(counts[c]) for c in columns[1:]] for name, counts in results.items()]
    widths = [max(len(r[i]) for r in [columns, *rows]) for i in range(len(columns))]

    def line(cells: list[str]) -> str:
        padded = zip(cells, widths, strict=True)
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(padded))

    lines = [line(r) for r in [columns, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", help=f"comma-separated, of: {', '.join(OPERATIONS)}")
    args = parser.parse_args(argv)
    chosen = [o.strip() for o in args.operations.split(",")] if args.operations else None
    print(table(round_trips(chosen)))
    print("vast backend on the in-process VAST DB SDK double (counts are exact; one run each, uncontended)")


if __name__ == "__main__":
    main()
