"""The ``local`` backend called directly: persistence, exact timestamps, concurrency, schema
evolution, resumed deletions, the media directory, and the table engine's limits."""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from conftest import allocate_in_backend

import backends
from backends import local
from backends.base import (
    BackendServices,
    FlowQuery,
    PageRequest,
    SegmentQuery,
    StorageRequest,
    StorePolicy,
    UrlOptions,
)
from backends.events import DiscardEvents
from backends.localstore import LocalObjectStore
from backends.objectstore import StorageBackendInfo
from backends.tabular import duckdb_engine, sqlite_engine, timekeys
from backends.tabular.engine import Conflict, TableSpec, col
from backends.timerange import NS_PER_SEC, TimeRange

NO_URLS = UrlOptions(accept_get_urls=())
CDN = {"url": "https://cdn.example.com/media", "label": "cdn"}  # a URL a client gives for its own object


class _Signer:
    def sign(self, method: str, storage_id: str, object_id: str) -> str:
        return f"http://media/{storage_id}/{object_id}"


def services(**policy: float) -> BackendServices:
    return BackendServices(signer=_Signer(), events=DiscardEvents(), policy=StorePolicy(**policy))


def open_backend(path: Path, **policy: float) -> local.LocalBackend:
    return local.create({"data_dir": str(path)}, services(**policy))


def new_flow(backend: local.LocalBackend, source_id: str | None = None) -> str:
    flow_id = str(uuid.uuid4())
    flow = {
        "id": flow_id,
        "source_id": source_id or str(uuid.uuid4()),
        "format": "urn:x-nmos:format:data",
        "codec": "text/plain",
        "container": "text/plain",
        "label": "data",
    }
    backend.put_flow(flow_id, flow)
    return flow_id


def timeranges(backend: local.LocalBackend, flow_id: str, query: str = "_", **kw: object) -> list[str]:
    page = backend.list_segments(
        flow_id, SegmentQuery(timerange=TimeRange.parse(query), **kw), NO_URLS, PageRequest(limit=1000)
    )
    return [s["timerange"] for s in page.items]


@pytest.fixture
def backend(tmp_path: Path) -> local.LocalBackend:
    b = open_backend(tmp_path / "data")
    yield b
    b.close()


def test_everything_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    b = open_backend(data)
    source_id = str(uuid.uuid4())
    flow_id = new_flow(b, source_id)
    b.set_flow_tag(flow_id, "genre", "news")
    b.set_source_field(source_id, "label", "studio")
    b.update_service_info({"name": "persistent"})
    [allocated] = b.allocate_storage(flow_id, StorageRequest(limit=1))["media_objects"]
    store_id = b.storage_backends()[0]["id"]
    b.object_store(store_id).write(allocated["object_id"], b"bytes", "text/plain")
    assert b.add_segments(flow_id, [{"object_id": allocated["object_id"], "timerange": "[0:0_1:0)"}]) == []
    external = {"object_id": "external", "timerange": "[1:0_2:0)", "sample_count": 3, "get_urls": [CDN]}
    assert b.add_segments(flow_id, [external]) == []
    b.create_webhook({"url": "http://hook.example/", "events": ["flows/created"], "tags": {"a": "b"}})
    before = (b.get_flow(flow_id, include_timerange=True), b.get_source(source_id), b.all_webhooks())
    b.close()

    b = open_backend(data)
    try:
        assert b.storage_backends()[0]["id"] == store_id  # the store keeps its id
        assert (b.get_flow(flow_id, include_timerange=True), b.get_source(source_id), b.all_webhooks()) == before
        assert before[0]["timerange"] == "[0:0_2:0)"
        assert b.service_info()["name"] == "persistent"
        assert timeranges(b, flow_id) == ["[0:0_1:0)", "[1:0_2:0)"]
        obj, _ = b.get_object(allocated["object_id"], PageRequest())
        assert {k: obj[k] for k in ("id", "referenced_by_flows", "first_referenced_by_flow")} == {
            "id": allocated["object_id"],
            "referenced_by_flows": [flow_id],
            "first_referenced_by_flow": flow_id,
        }
        assert obj["timerange"] == "[0:0_1:0)"
        assert b.object_store(store_id).read(allocated["object_id"]) == (b"bytes", "text/plain")
        # The overlap rule still sees the segments stored before the restart.
        [failed] = b.add_segments(flow_id, [{"object_id": "x", "timerange": "[0:500000000_3:0)"}])
        assert "overlaps" in failed.summary
    finally:
        b.close()


HUGE = [2**64 * NS_PER_SEC, 10**30 * NS_PER_SEC, 2**70 * NS_PER_SEC, -(2**64) * NS_PER_SEC, 2**63 - 1, -(2**63)]


@pytest.mark.parametrize("origin", HUGE)
def test_timestamps_beyond_64_bits_are_stored_and_compared_exactly(backend: local.LocalBackend, origin: int) -> None:
    flow_id = new_flow(backend)

    def tr(a: int, b: int, closed: str = ")") -> str:
        return str(TimeRange(origin + a, origin + b, include_end=closed == "]"))

    segments = [tr(0, 1), tr(1, 2), tr(2, 3, "]"), tr(4, 5)]
    allocate_in_backend(backend, flow_id, ["o0", "o1", "o2", "o3", "x", "y"])
    assert backend.add_segments(flow_id, [{"object_id": f"o{i}", "timerange": t} for i, t in enumerate(segments)]) == []
    assert timeranges(backend, flow_id) == segments
    # One nanosecond apart, and inclusive against exclusive ends, are told apart.
    assert timeranges(backend, flow_id, str(TimeRange.instant(origin + 1))) == [segments[1]]
    assert timeranges(backend, flow_id, str(TimeRange.instant(origin + 3))) == [segments[2]]
    assert timeranges(backend, flow_id, tr(3, 4)) == [segments[2]]
    assert timeranges(backend, flow_id, str(TimeRange(origin + 3, origin + 4, include_start=False))) == []
    [failed] = backend.add_segments(flow_id, [{"object_id": "x", "timerange": tr(3, 4)}])
    assert "overlaps" in failed.summary
    assert (
        backend.add_segments(
            flow_id, [{"object_id": "y", "timerange": str(TimeRange(origin + 3, origin + 4, include_start=False))}]
        )
        == []
    )
    assert backend.get_flow(flow_id, include_timerange=True)["timerange"] == str(TimeRange(origin, origin + 5))


def test_time_keys_sort_as_the_numbers_do() -> None:
    rng = random.Random(5)
    values = [0, 1, -1, 255, 256, -255, -256, 2**63, -(2**63), 10**40, -(10**40)]
    values += [rng.randint(-(2**80), 2**80) for _ in range(300)]
    keyed = sorted((timekeys.encode_key(v, eps), (v, eps)) for v in values for eps in (-1, 0, 1))
    assert [k for _, k in keyed] == sorted((v, eps) for v in values for eps in (-1, 0, 1))
    assert all(timekeys.decode_int(timekeys.encode_int(v)) == v for v in values)


def test_concurrent_writers_never_store_overlapping_segments(backend: local.LocalBackend) -> None:
    flow_id = new_flow(backend)
    rng = random.Random(7)
    batches = [
        [{"object_id": f"o{s}", "timerange": f"[{s}:0_{s + rng.randint(1, 5)}:0)"} for s in rng.sample(range(300), 40)]
        for _ in range(8)
    ]
    singles = [[{"object_id": f"s{s}", "timerange": f"[{s}:0_{s + 2}:0)"}] for s in rng.sample(range(300), 60)]
    allocate_in_backend(backend, flow_id, (b["object_id"] for batch in batches + singles for b in batch))
    failures: list[int] = []

    def write(batch: list[dict]) -> None:
        failures.append(len(backend.add_segments(flow_id, batch)))

    threads = [threading.Thread(target=write, args=(b,)) for b in batches + singles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = [TimeRange.parse(t) for t in timeranges(backend, flow_id)]
    assert len(stored) == sum(len(b) for b in batches + singles) - sum(failures)
    assert sum(failures) < sum(len(b) for b in batches + singles)  # some were stored: the writers did race
    assert all(not a.overlaps(b) for a, b in itertools.pairwise(stored))
    assert all(not a.overlaps(b) for a, b in itertools.combinations(stored, 2))


def test_a_timerange_query_reads_one_page_not_the_flow(
    backend: local.LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_id = new_flow(backend)
    n = 20_000
    bodies = [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(n)]
    allocate_in_backend(backend, flow_id, (b["object_id"] for b in bodies))
    for start in range(0, n, 5000):
        assert backend.add_segments(flow_id, bodies[start : start + 5000]) == []
    fetched: list[int] = []
    original = sqlite_engine.SQLiteTransaction._selected

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        names, rows = original(self, *args, **kwargs)
        fetched.append(len(rows))
        return names, rows

    monkeypatch.setattr(sqlite_engine.SQLiteTransaction, "_selected", counting)
    page = backend.list_segments(
        flow_id, SegmentQuery(timerange=TimeRange.parse("[12345:500000000_12355:0)")), NO_URLS, PageRequest()
    )
    assert [s["timerange"] for s in page.items][:1] == ["[12345:0_12346:0)"]
    assert len(page.items) == 10
    # A page and a row more (is there a next page?), and the one segment that may straddle the start.
    assert sum(fetched) <= 12, f"{fetched} rows read from the database for a 10-segment answer out of {n}"
    fetched.clear()
    page = backend.list_segments(flow_id, SegmentQuery(reverse_order=True), NO_URLS, PageRequest(limit=5))
    assert page.items[0]["timerange"] == f"[{n - 1}:0_{n}:0)"
    assert sum(fetched) <= 6


def test_an_interrupted_deletion_is_resumed_at_start_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    b = open_backend(data, async_delete_threshold=3, delete_chunk=2)
    flow_id = new_flow(b)
    allocate_in_backend(b, flow_id, (f"o{i}" for i in range(10)))
    assert b.add_segments(flow_id, [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(10)]) == []
    b._worker.submit = lambda request_id: None  # the server stops before the worker starts
    request = b.delete_flow(flow_id)
    assert request is not None and request["status"] == "created"
    b.close()

    b = open_backend(data, async_delete_threshold=3, delete_chunk=2)
    try:
        b.start()
        deadline = time.monotonic() + 10
        while b.get_delete_request(request["id"])["status"] not in ("done", "error"):
            assert time.monotonic() < deadline, "the deletion was not resumed"
            time.sleep(0.02)
        assert b.get_delete_request(request["id"])["status"] == "done"
        assert b.list_flows(FlowQuery(), PageRequest()).items == []
    finally:
        b.close()


def test_a_newer_schema_adds_columns_and_keeps_rows_and_tables(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = duckdb.connect(str(data / local.LEGACY_DATABASE_FILE))  # a store before 8.x: migrated at opening
    # An older layout: sources without "label", plus a column and a table this version does not know.
    db.execute("CREATE TABLE sources (id VARCHAR, format VARCHAR, doc VARCHAR, legacy VARCHAR)")
    db.execute(
        "INSERT INTO sources VALUES ('s1', 'urn:x-nmos:format:data', "
        """'{"id": "s1", "format": "urn:x-nmos:format:data", "label": "kept"}', 'old')"""
    )
    db.execute("CREATE TABLE retired (x INTEGER)")
    db.close()
    b = open_backend(data)
    try:
        assert b.get_source("s1")["label"] == "kept"
        columns = b.engine.columns()
        assert "label" in columns["sources"] and "legacy" in columns["sources"]
        assert "retired" in columns
    finally:
        b.close()


def test_the_media_directory_never_lets_an_id_escape(tmp_path: Path) -> None:
    info = StorageBackendInfo(id="s", label="local")
    root = tmp_path / "media"
    (root / "ab" / "cd").mkdir(parents=True)
    (root / "ab" / "cd" / ".tmp-leftover").write_bytes(b"partial")
    objects = LocalObjectStore(info, _Signer(), root)
    assert not (root / "ab" / "cd" / ".tmp-leftover").exists()  # a crashed upload's leftover is gone
    ids = ["../../etc/passwd", "/abs/path", "a/b", "..", ".", "x" * 4000, "ünï\u2028code", "a\\b"]
    for i, object_id in enumerate(ids):
        objects.write(object_id, bytes([i]) * 10, "application/x")
        assert objects.path(object_id).resolve().is_relative_to(root.resolve())
    for i, object_id in enumerate(ids):
        assert objects.read(object_id) == (bytes([i]) * 10, "application/x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["media"]
    assert not list(root.glob("*/*/.tmp-*"))
    objects.write("r", bytes(range(100)), None)
    assert objects.read_range("r", 10, 19) == bytes(range(10, 20))
    assert objects.read_range("r", 95, 500) == bytes(range(95, 100))
    assert objects.stat("r") == (100, None)
    objects.delete("r")
    assert objects.read("r") is None and objects.stat("r") is None


def test_predicates_are_limited_to_what_vast_pushes_down() -> None:
    assert ((col("a") == 1) & ((col("b") < 2) | (col("b") > 5))).columns == {"a", "b"}
    with pytest.raises(ValueError, match="one column"):
        (col("a") == 1) | (col("b") == 2)
    with pytest.raises(ValueError, match="AND inside an OR"):
        ((col("a") > 1) & (col("a") < 3)) | (col("a") > 10)
    with pytest.raises(TypeError, match="column-to-column"):
        col("a") == col("b")  # noqa: B015
    with pytest.raises(ValueError, match="at least one"):
        col("a").isin([])
    with pytest.raises(TypeError):
        col("a") == [1, 2]  # noqa: B015


def test_the_engine_reports_conflicting_writers(tmp_path: Path) -> None:
    engine = duckdb_engine.DuckDBEngine(tmp_path / "t.duckdb")
    spec = TableSpec("t", pa.schema([("k", pa.string()), ("v", pa.int64())]))
    engine.ensure_tables([spec])
    with engine.transaction(write=True) as tx:
        tx.insert("t", spec.rows([{"k": "a", "v": 1}]))
    with pytest.raises(Conflict), engine.transaction(write=True) as first:
        [row] = first.select("t", where=col("k") == "a", row_ids=True).to_pylist()
        with engine.transaction(write=True) as second:
            second.update("t", pa.table({"$row_id": [row["$row_id"]], "v": [2]}))
        first.update("t", pa.table({"$row_id": [row["$row_id"]], "v": [3]}))
    with engine.transaction(write=False) as tx:
        assert tx.select("t", ["v"]).to_pylist() == [{"v": 2}]
    engine.close()


def test_local_is_registered_and_refuses_a_second_opening(tmp_path: Path) -> None:
    assert backends.available()["local"] == "backends.local:create"
    factory = backends.load_factory("local")
    first = factory({"data_dir": str(tmp_path)}, services())
    try:
        with pytest.raises(RuntimeError, match="already open"):
            factory({"data_dir": str(tmp_path)}, services())
    finally:
        first.close()
    temporary = factory({"temporary": True}, services())
    where = temporary.data_dir
    assert where.is_dir()
    temporary.close()
    assert not where.exists()
