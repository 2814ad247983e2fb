"""Store reports (``backends.report``, ``tams-admin report``) on every backend.

A small store of known content (two flows of one source sharing an object, a gap of known length,
known durations, an object allocated and never registered, a segment beyond the int64 nanosecond
range) gives exact numbers in the JSON report and in its text, on memory, local and vast
(emulated). The local report is made beside a backend that holds the store's directory lock and
while a writer writes; the report does not depend on the size of the batches the tables are read
in (Hypothesis), and matches a plain Python fold of the segments.
"""

from __future__ import annotations

import contextlib
import http.server
import itertools
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import backends
from backends import report, report_text
from backends.base import BackendServices, StorageRequest, StorePolicy
from backends.events import DiscardEvents
from backends.local import _lock_directory
from backends.tabular.engine import EngineError
from backends.tabular.export import registered
from backends.tabular.objects import _kind
from backends.tabular.sqlite_engine import SQLiteEngine
from backends.tabular.tables import TABLES
from backends.timerange import TimeRange
from tams_server.app import create_app
from tests.conftest import ADMIN_HEADERS, app_settings, backend_settings, flow_body
from tools import admin

BACKENDS = ("memory", "local", "vast")
BEYOND = "[9300000000:0_9300000001:0)"  # 9.3e18 ns: past the int64 range


class _Signer:
    def sign(self, method: str, storage_id: str, object_id: str) -> str:
        return f"http://media/{storage_id}/{object_id}"


def services() -> BackendServices:
    return BackendServices(signer=_Signer(), events=DiscardEvents(), policy=StorePolicy())


def open_backend(name: str, tmp_path: Path) -> Any:
    if name == "local":
        options: dict[str, Any] = {"data_dir": str(tmp_path / "store"), "durable": False}
    elif name == "vast":
        options = {"emulate": f"report-{uuid.uuid4().hex[:12]}"}
    else:
        options = {}
    backend = backends.load_factory(name)(options, services())
    backend.options = options  # type: ignore[attr-defined]  # for tams-admin's settings below
    return backend


def put_flow(backend: Any, source_id: str, label: str) -> str:
    flow_id = str(uuid.uuid4())
    backend.put_flow(
        flow_id,
        {
            "id": flow_id,
            "source_id": source_id,
            "format": "urn:x-nmos:format:data",
            "codec": "text/plain",
            "container": "text/plain",
            "label": label,
        },
    )
    return flow_id


def segments(backend: Any, flow_id: str, *pairs: tuple[str, str]) -> None:
    failed = backend.add_segments(flow_id, [{"object_id": o, "timerange": t} for o, t in pairs])
    assert not failed


def known_store(backend: Any) -> dict[str, str]:
    """Flows a and b of source s share object x1; a has a 5 s gap; u is allocated, never registered;
    flow c of source t has one segment beyond the int64 range."""
    s, t = str(uuid.uuid4()), str(uuid.uuid4())
    a, b, c = put_flow(backend, s, "a"), put_flow(backend, s, "b"), put_flow(backend, t, "c")
    backend.allocate_storage(a, StorageRequest(object_ids=("x1", "x2", "x3", "u")))
    backend.allocate_storage(c, StorageRequest(object_ids=("x9",)))
    segments(backend, a, ("x1", "[0:0_10:0)"), ("x2", "[10:0_20:0)"), ("x3", "[25:0_30:0)"))
    segments(backend, b, ("x1", "[100:0_104:0)"))
    segments(backend, c, ("x9", BEYOND))
    return {"s": s, "t": t, "a": a, "b": b, "c": c}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    b = open_backend(request.param, tmp_path)
    b.kind = request.param  # type: ignore[attr-defined]
    yield b
    b.close()


def by_id(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in entries}


def ns(seconds: float) -> dict[str, Any]:
    value = round(seconds * 10**9)
    return {"ns": value, "timestamp": str(TimeRange(0, value).end_timestamp)}


def check_known(found: dict[str, Any], ids: dict[str, str], kind: str) -> None:
    totals = found["totals"]
    assert totals["sources"] == 2 and totals["flows"] == 3
    assert totals["segments"] == 5 and totals["segments_beyond_int64"] == 1
    assert totals["duration"] == ns(29)  # 10 + 10 + 5 + 4; the segment beyond int64 is not timed
    assert totals["objects"] == 5 and totals["objects_registered"] == 4 and totals["objects_external"] == 0

    flows = by_id(found["flows"])
    a, b, c = flows[ids["a"]], flows[ids["b"]], flows[ids["c"]]
    assert a["segments"] == 3 and a["duration"] == ns(25)
    assert a["timeline"]["timerange"] == "[0:0_30:0)" and a["timeline"]["covered"] == ns(25)
    assert a["gaps"] == {"count": 1, "total": ns(5), "largest": [{"timerange": "[20:0_25:0)", "length": ns(5)}]}
    assert a["segment_durations"] == {
        "min": ns(5),
        "max": ns(10),
        "mean": {"ns": 8_333_333_333, "timestamp": "8:333333333"},
        "median": ns(10),
        "p95": ns(10),
    }
    assert a["objects"] == {"count": 3, "shared_with_other_flows": 1} and a["unregistered_objects"] == 1
    assert b["segments"] == 1 and b["objects"] == {"count": 1, "shared_with_other_flows": 1}
    assert b["gaps"]["count"] == 0 and b["timeline"]["timerange"] == "[100:0_104:0)"
    assert c["segments"] == 1 and c["segments_beyond_int64"] == 1 and c["timeline"] is None
    assert by_id(found["sources"])[ids["t"]]["segments_beyond_int64"] == 1

    source = by_id(found["sources"])[ids["s"]]
    assert source["flows"] == 2 and source["segments"] == 4 and source["duration"] == ns(29)
    assert source["timeline"]["timerange"] == "[0:0_104:0)" and source["timeline"]["covered"] == ns(29)
    assert source["gaps"]["count"] == 2 and source["gaps"]["total"] == ns(75)
    assert [g["timerange"] for g in source["gaps"]["largest"]] == ["[30:0_100:0)", "[20:0_25:0)"]

    assert found["shared_objects"] == {
        "count": 1,
        "segments": 2,
        "bytes": {"known": None, "objects_of_unknown_size": 1},
    }
    assert found["unregistered_objects"]["count"] == 1
    assert 0 <= found["unregistered_objects"]["oldest_age_s"] < 600
    (store,) = found["storage"]
    assert store["objects"] == 5 and store["registered"] == 4 and store["allocated_unregistered"] == 1
    # No store records object sizes: unknown, never 0.
    assert store["bytes"] == {"known": None, "objects_of_unknown_size": 5}
    # The tabular stores record when each segment was registered; the memory store does not.
    recorded = kind != "memory"
    assert found["ingest"]["basis"] == ("segments.registered_at" if recorded else "objects.allocated_at")
    assert sum(h["segments"] for h in found["ingest"]["hours"]) == 5
    assert any("no registration time" in note for note in found["notes"]) is not recorded


def check_text(text: str, ids: dict[str, str]) -> None:
    assert "2 source(s), 3 flow(s), 5 segment(s), duration 29.000 s (29:0)" in text
    assert "gap [20:0_25:0) (5.000 s (5:0))" in text
    assert "gap [30:0_100:0) (1.17 min (70:0))" in text
    assert ids["a"] in text and "objects 3 (1 shared with other flows), allocated but unregistered 1" in text
    assert "Objects shared between flows: 1 (2 segments), bytes unknown (1 object(s) of unknown size)" in text
    assert "Objects allocated but never registered: 1" in text
    assert "mean 8.333 s (8:333333333)" in text


def admin_report(backend: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    """``tams-admin report`` on the store ``backend`` has open, settings from a config file."""
    options = backend.options
    config = tmp_path / "tams.toml"
    lines = [f'backend = "{backend.kind}"']
    if backend.kind == "local":
        lines.append(f'data_dir = "{options["data_dir"]}"')
    if backend.kind == "vast":
        lines += ["[backend_options]", f'emulate = "{options["emulate"]}"']
    config.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    code = admin.main(["report", "--config", str(config), *extra])
    return code, capsys.readouterr().out


def test_known_store_gives_exact_figures(backend: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = known_store(backend)
    found = report.build(backend, batch_rows=2)
    check_known(found, ids, backend.kind)
    check_text(report_text.text(found), ids)
    assert json.loads(json.dumps(found)) == found  # what the HTTP route and --json send
    if backend.kind == "memory":  # it lives in the server: only --url reaches it
        code, _ = admin_report(backend, tmp_path, capsys)
        assert code == 2
        return
    # tams-admin opens the same store itself (read-only) while the backend has it open.
    code, out = admin_report(backend, tmp_path, capsys, "--json")
    assert code == 0
    from_admin = json.loads(out)
    check_known(from_admin, ids, backend.kind)
    code, out = admin_report(backend, tmp_path, capsys)
    assert code == 0
    check_text(out, ids)


def test_local_report_beside_a_server_holding_the_lock_and_a_writer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = open_backend("local", tmp_path)
    backend.kind = "local"
    try:
        with pytest.raises(OSError):  # the server's exclusive lock is held: a report must not need it
            _lock_directory(Path(backend.options["data_dir"]))
        flow_id = put_flow(backend, str(uuid.uuid4()), "live")
        stop = threading.Event()
        written: list[int] = []

        def write() -> None:
            n = 0
            while not stop.is_set() and n < 2000:
                ids = [f"w{n + k}" for k in range(20)]
                backend.allocate_storage(flow_id, StorageRequest(object_ids=tuple(ids)))
                segments(
                    backend,
                    flow_id,
                    *((o, str(TimeRange((n + k) * 10**9, (n + k + 1) * 10**9))) for k, o in enumerate(ids)),
                )
                n += 20
                written.append(n)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            seen = []
            for _ in range(4):
                code, out = admin_report(backend, tmp_path, capsys, "--json")
                assert code == 0
                found = json.loads(out)
                flow = by_id(found["flows"])[flow_id]
                # One snapshot: the flow's segments are whole batches, contiguous, and each has its object.
                assert flow["segments"] % 20 == 0 and flow["gaps"]["count"] == 0
                assert found["totals"]["objects"] >= flow["segments"]
                seen.append(flow["segments"])
        finally:
            stop.set()
            writer.join()
        assert seen == sorted(seen) and written
    finally:
        backend.close()


def test_read_only_engine_writes_nothing(tmp_path: Path) -> None:
    backend = open_backend("local", tmp_path)
    known_store(backend)
    backend.close()
    path = Path(backend.options["data_dir"]) / "tams.sqlite"
    before = path.read_bytes()
    engine = SQLiteEngine(path, read_only=True)
    engine.ensure_tables(TABLES)
    with pytest.raises(EngineError), engine.transaction(write=True):
        pass
    engine.close()
    assert path.read_bytes() == before


def test_registered_matches_the_objects_rule() -> None:
    import pyarrow as pa

    rows = [{"kind": k, "allocated_for": f} for k in (None, "allocated", "media", "init") for f in (None, "flow")]
    got = registered(pa.array([r["kind"] for r in rows], pa.string()), pa.array([r["allocated_for"] for r in rows]))
    assert got.to_pylist() == [_kind(r) is not None for r in rows]


# --- batches ------------------------------------------------------------------------------------


def _without_clock(found: dict[str, Any]) -> dict[str, Any]:
    found = dict(found)
    found.pop("generated_at")
    found["unregistered_objects"] = {k: v for k, v in found["unregistered_objects"].items() if "age" not in k}
    return found


def oracle(spans: list[tuple[int, int]]) -> dict[str, Any]:
    """A flow's figures from its segments, folded in Python."""
    ordered = sorted(spans)
    gaps = [(e, s) for (_, e), (s, _) in itertools.pairwise(ordered) if s > e]
    return {
        "segments": len(ordered),
        "duration": sum(e - s for s, e in ordered),
        "gaps": len(gaps),
        "gap_total": sum(s - e for e, s in gaps),
        "largest": [str(TimeRange(e, s)) for e, s in sorted(gaps, key=lambda g: (g[0] - g[1], g[0]))[:3]],
    }


flows_strategy = st.lists(
    st.lists(st.tuples(st.integers(0, 3), st.integers(1, 5)), min_size=0, max_size=8),  # (gap, length)
    min_size=1,
    max_size=3,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=flows_strategy, batch_rows=st.integers(1, 5))
def test_report_is_the_same_whatever_the_batch_size(layout: list[list[tuple[int, int]]], batch_rows: int) -> None:
    backend = backends.load_factory("memory")({}, services())
    source = str(uuid.uuid4())
    expected = {}
    for f, pieces in enumerate(layout):
        flow_id = put_flow(backend, source, f"f{f}")
        at, spans = 0, []
        for gap, length in pieces:
            spans.append((at + gap * 10**8, at + (gap + length) * 10**8))
            at = spans[-1][1]
        ids = [f"{flow_id}-{i}" for i in range(len(spans))]
        if ids:
            backend.allocate_storage(flow_id, StorageRequest(object_ids=tuple(ids)))
            segments(backend, flow_id, *((o, str(TimeRange(s, e))) for o, (s, e) in zip(ids, spans, strict=True)))
        expected[flow_id] = oracle(spans)
    # Every reader hands over batches of at most batch_rows rows.
    with backend.report_tables(batch_rows) as tables:
        for name, reader in tables.items():
            assert all(b.num_rows <= batch_rows for b in reader), name
    small, large = report.build(backend, batch_rows=batch_rows), report.build(backend, batch_rows=10_000)
    assert _without_clock(small) == _without_clock(large)
    for flow_id, want in expected.items():
        flow = by_id(small["flows"])[flow_id]
        assert flow["segments"] == want["segments"] and flow["duration"]["ns"] == want["duration"]
        assert flow["gaps"]["count"] == want["gaps"] and flow["gaps"]["total"]["ns"] == want["gap_total"]
        assert [g["timerange"] for g in flow["gaps"]["largest"]] == want["largest"]


@pytest.mark.parametrize("name", ["local", "vast"])
def test_tabular_report_is_the_same_whatever_the_batch_size(name: str, tmp_path: Path) -> None:
    backend = open_backend(name, tmp_path)
    try:
        known_store(backend)
        with backend.report_tables(2) as tables:
            sizes = {n: [b.num_rows for b in r] for n, r in tables.items()}
        assert max(sizes["segments"]) <= 2 and len(sizes["segments"]) >= 3  # 5 segments, 2 at a time
        reports = [_without_clock(report.build(backend, batch_rows=n)) for n in (1, 2, 3, 65_536)]
        assert all(r == reports[0] for r in reports)
    finally:
        backend.close()


# --- tams-admin report --url ----------------------------------------------------------------------


@contextlib.contextmanager
def serving(body: dict[str, Any], token: str) -> Iterator[str]:
    """A stand-in for a server's ``/admin/report`` route."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == admin.REPORT_ROUTE and self.headers.get("Authorization") == f"Bearer {token}"
            data = json.dumps(body).encode() if ok else b"{}"
            self.send_response(200 if ok else 403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_admin_report_from_a_server_url(capsys: pytest.CaptureFixture[str]) -> None:
    backend = backends.load_factory("memory")({}, services())
    ids = known_store(backend)
    found = report.build(backend)
    with serving(found, "secret") as url:
        assert admin.main(["report", "--url", url, "--token", "secret", "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == found
        assert admin.main(["report", "--url", url, "--token", "secret"]) == 0
        check_text(capsys.readouterr().out, ids)
        assert admin.main(["report", "--url", url, "--token", "wrong"]) == 2
        assert "403" in capsys.readouterr().err


# --- what no store records yet: registration times, object sizes ---------------------------------


@contextlib.contextmanager
def hand_made(tables: dict[str, dict[str, list[Any]]]) -> Iterator[report.ReportTables]:
    yield {name: report.reader(name, [report.batch_of(name, tables.get(name, {}))]) for name in report.TABLES}


def test_registration_times_and_sizes_when_a_store_records_them() -> None:
    hour = 1_800_000_000 - 1_800_000_000 % 3600
    tables = {
        "storage": {"id": ["st"], "label": ["disk"], "product": ["local-disk"]},
        "flows": {"id": ["f", "g"], "source_id": ["s", "s"]},
        "segments": {
            "flow_id": ["f", "f", "g"],
            "start_ns": [0, 10, 20],
            "end_ns": [10, 20, 30],
            "object_id": ["o1", "o2", "o1"],
            # The third was written before registration times were kept: its object's time counts.
            "registered_at": [hour + 10.0, hour + 3700.0, None],
        },
        "objects": {
            "id": ["o1", "o2", "o3"],
            "storage_id": ["st", "st", "st"],
            "registered": [True, True, True],
            "allocated_at": [hour + 7300.0, hour + 5.0, hour + 6.0],
            "references": [2, 1, 0],
            "size": [1000, None, 24],
        },
    }
    found = report.build_from(hand_made(tables), backend="test", now=hour + 9000.0)
    hours = [report._hour(hour + 3600 * n) for n in range(3)]
    assert [(h["hour"], h["segments"]) for h in found["ingest"]["hours"]] == list(zip(hours, [1, 1, 1], strict=True))
    assert found["ingest"]["basis"] == "segments.registered_at, else objects.allocated_at"
    (store,) = found["storage"]
    assert store["bytes"] == {"known": 1024, "objects_of_unknown_size": 1}  # o2's size is unknown, not 0
    assert store["unreferenced"] == 1
    assert found["shared_objects"]["bytes"] == {"known": 1000, "objects_of_unknown_size": 0}
    tables["segments"]["registered_at"][2] = hour + 20.0
    found = report.build_from(hand_made(tables), backend="test", now=hour + 9000.0)
    assert found["ingest"]["basis"] == "segments.registered_at"
    # The third hour is listed for the bytes of o1, which appeared then.
    assert [(h["hour"], h["segments"]) for h in found["ingest"]["hours"]] == list(zip(hours, [2, 1, 0], strict=True))
    assert found["ingest"]["hours"][2]["bytes"] == {"known": 1000, "objects_of_unknown_size": 0}


# --- the server's own route, with sizes its media route recorded -----------------------------------


@pytest.mark.parametrize("name", ["memory", "local"])
def test_the_servers_report_route_counts_uploaded_bytes(name: str) -> None:
    app = create_app(app_settings(**backend_settings(name)))
    with TestClient(app, headers=ADMIN_HEADERS) as client:
        flow = flow_body("video")
        assert client.put(f"/v8.2/flows/{flow['id']}", json=flow).status_code == 201
        media = client.post(f"/v8.2/flows/{flow['id']}/storage", json={"limit": 3}).json()["media_objects"]
        for at, (item, content) in enumerate(zip(media, [b"abc", b"defgh"], strict=False)):
            put = item["put_url"]
            assert client.put(put["url"], content=content, headers={"Content-Type": put["content-type"]}).is_success
            segment = {"object_id": item["object_id"], "timerange": f"[{at}:0_{at + 1}:0)"}
            assert client.post(f"/v8.2/flows/{flow['id']}/segments", json=segment).status_code == 201
        # The same bytes again (a retried upload) change nothing.
        put = media[0]["put_url"]
        assert client.put(put["url"], content=b"abc", headers={"Content-Type": put["content-type"]}).is_success

        found = client.get("/admin/report").json()
        (store,) = found["storage"]
        assert store["bytes"] == {"known": 8, "objects_of_unknown_size": 1}  # the third was never uploaded
        assert found["totals"]["segments"] == 2
        assert client.get("/admin/report", headers={"Authorization": ""}).status_code == 401
        assert app.auth is not None
        reader = app.auth.store.add_token(f"reader-{uuid.uuid4()}", ["read", "metrics"])
        assert client.get("/admin/report", headers={"Authorization": f"Bearer {reader}"}).status_code == 403


def test_byte_counts_read_exactly_and_in_binary_units() -> None:
    assert report_text._size(8) == "8 bytes"
    assert report_text._size(1_128_000) == "1,128,000 bytes (1.08 MiB)"
    assert (
        report_text._b({"known": 2048, "objects_of_unknown_size": 1})
        == "2,048 bytes (2.00 KiB) known + 1 object(s) of unknown size"
    )
    assert report_text._b({"known": None, "objects_of_unknown_size": 3}) == "unknown (3 object(s) of unknown size)"
