"""The ``local`` backend's SQLite engine: group commit, what a time query reads, the one-process
lock and the migration of a DuckDB store (issue 13). Speed itself is measured by tools/, not here."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import allocate_in_backend
from test_local_backend import NO_URLS, new_flow, open_backend

from backends import local
from backends.base import PageRequest, SegmentQuery
from backends.tabular import sqlite_engine
from backends.tabular.duckdb_engine import DuckDBEngine
from backends.tabular.engine import ROW_ID, Order, TableSpec, col
from backends.tabular.tables import SOURCES, TABLES
from backends.timerange import TimeRange

ROWS = TableSpec("t", pa.schema([("k", pa.string()), ("v", pa.int64()), ("b", pa.binary())]), lookup=("k",))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sqlite_engine.SQLiteEngine]:
    e = sqlite_engine.SQLiteEngine(tmp_path / "t.sqlite")
    e.ensure_tables([ROWS])
    yield e
    e.close()


def committed(engine: sqlite_engine.SQLiteEngine) -> list[str]:
    with engine.transaction(write=False) as tx:
        return sorted(r["k"] for r in tx.select("t", ["k"]).to_pylist())


def commits_of(engine: sqlite_engine.SQLiteEngine) -> list[str]:
    statements: list[str] = []
    engine._writer.set_trace_callback(lambda sql: statements.append(sql) if sql == "COMMIT" else None)
    return statements


def writers_queued_behind_one(
    engine: sqlite_engine.SQLiteEngine, bodies: list[Callable[[Any], None]]
) -> list[BaseException | None]:
    """Run ``bodies`` as write transactions: the first holds the connection until all the others
    wait for it (so they form one batch with it); each result is None or what its block raised."""
    results: list[BaseException | None] = [None] * len(bodies)
    release = threading.Event()

    def run(i: int) -> None:
        try:
            with engine.transaction(write=True) as tx:
                if i == 0:
                    release.wait(10)
                bodies[i](tx)
            # Back from the block: committed, so any new transaction sees it.
            assert f"k{i}" in committed(engine)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    threads[0].start()
    while not engine._connection_lock.locked():
        time.sleep(0.001)
    for t in threads[1:]:
        t.start()
    deadline = time.monotonic() + 10
    while engine._waiting < len(bodies) - 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    release.set()
    for t in threads:
        t.join(10)
    return results


def insert(i: int) -> Callable[[Any], None]:
    return lambda tx: tx.insert("t", ROWS.rows([{"k": f"k{i}", "v": i}]))


def test_concurrent_writers_share_one_commit(engine: sqlite_engine.SQLiteEngine) -> None:
    commits = commits_of(engine)
    results = writers_queued_behind_one(engine, [insert(i) for i in range(6)])
    assert results == [None] * 6
    assert committed(engine) == [f"k{i}" for i in range(6)]
    assert len(commits) == 1  # six writers, one COMMIT (one sync)
    with engine.transaction(write=True) as tx:  # alone: its own commit, at once
        insert(6)(tx)
    assert len(commits) == 2 and "k6" in committed(engine)


def test_a_failing_writer_rolls_back_alone(engine: sqlite_engine.SQLiteEngine) -> None:
    def fails(tx: Any) -> None:
        insert(1)(tx)
        raise ValueError("refused")

    results = writers_queued_behind_one(engine, [insert(0), fails, insert(2)])
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError)
    assert committed(engine) == ["k0", "k2"]


class _FailingCommits:
    """The writer connection, whose COMMIT fails as SQLite reports a full disk."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self._connection.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def test_a_failed_commit_fails_every_writer_of_its_batch(engine: sqlite_engine.SQLiteEngine) -> None:
    real = engine._writer
    engine._writer = _FailingCommits(real)  # type: ignore[assignment]
    results = writers_queued_behind_one(engine, [insert(i) for i in range(3)])
    engine._writer = real
    assert all(isinstance(r, sqlite_engine.EngineStorageFull) for r in results), results
    assert committed(engine) == []
    with engine.transaction(write=True) as tx:  # the engine goes on
        insert(9)(tx)
    assert committed(engine) == ["k9"]


def test_the_engine_selects_orders_updates_and_deletes_like_the_interface_says(
    engine: sqlite_engine.SQLiteEngine,
) -> None:
    rows = [{"k": k, "v": v, "b": b} for k, v, b in [("b", 2, b"\x02"), ("a", 1, b"\x01\xff"), ("c", 3, None)]]
    with engine.transaction(write=True) as tx:
        tx.insert("t", ROWS.rows(rows))
    with engine.transaction(write=True) as tx:
        found = tx.select("t", where=(col("b") >= b"\x01\xff") & col("k").isin(["a", "b", "x"]), row_ids=True)
        assert found.schema.field("b").type == pa.binary() and found.num_rows == 2
        ids = {r["k"]: r[ROW_ID] for r in found.to_pylist()}
        tx.update("t", pa.table({ROW_ID: [ids["a"]], "v": [10]}))
        tx.delete("t", [ids["b"]])
    with engine.transaction(write=False) as tx:
        assert tx.select("t", ["k", "v"], order=[Order("v", descending=True)], limit=2).to_pylist() == [
            {"k": "a", "v": 10},
            {"k": "c", "v": 3},
        ]
        assert tx.select("t", ["k"], where=col("b").isnull()).to_pylist() == [{"k": "c"}]
        assert tx.select_rows("t", [], where=col("k") == "a") == [{}]


def vm_steps(backend: local.LocalBackend, action: Callable[[], object]) -> int:
    """SQLite virtual machine instructions (in hundreds) that ``action`` costs."""
    engine = backend.engine
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    pool = [*engine._pool, engine._writer]  # type: ignore[attr-defined]
    for connection in pool:
        connection.set_progress_handler(count, 100)
    try:
        action()
    finally:
        for connection in pool:
            connection.set_progress_handler(None, 0)
    return steps[0]


def test_time_queries_seek_instead_of_walking_the_flow(tmp_path: Path) -> None:
    b = open_backend(tmp_path / "data")
    try:
        flow_id = new_flow(b)
        n = 5_000
        bodies = [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(n)]
        allocate_in_backend(b, flow_id, (x["object_id"] for x in bodies))
        for start in range(0, n, 5000):
            assert b.add_segments(flow_id, bodies[start : start + 5000]) == []

        def page(query: str, reverse: bool = False) -> list[str]:
            q = SegmentQuery(timerange=TimeRange.parse(query), reverse_order=reverse)
            return [s["timerange"] for s in b.list_segments(flow_id, q, NO_URLS, PageRequest()).items]

        assert page("[5:500000000_8:0)") == ["[5:0_6:0)", "[6:0_7:0)", "[7:0_8:0)"]  # the straddler first
        last = [f"[{i}:0_{i + 1}:0)" for i in (n - 8, n - 9, n - 10)]
        assert page(f"[{n - 10}:0_{n - 8}:500000000)", reverse=True) == last
        near_start = vm_steps(b, lambda: page("[10:500000000_20:0)"))
        near_end = vm_steps(b, lambda: page(f"[{n - 10}:500000000_{n}:0)"))
        backwards = vm_steps(b, lambda: page(f"[{n - 10}:500000000_{n}:0)", reverse=True))
        # Without a lower bound the index is walked from the flow's first segment: ~n rows.
        assert near_end <= near_start + 5 and backwards <= near_start + 5, (near_start, near_end, backwards)
        allocate_in_backend(b, flow_id, ["late"])
        post = {"object_id": "late", "timerange": f"[{n}:0_{n + 1}:0)"}
        other = new_flow(b)
        allocate_in_backend(b, other, ["first"])
        first = {"object_id": "first", "timerange": "[0:0_1:0)"}
        alone = vm_steps(b, lambda: b.add_segments(other, [first]))
        at_the_end = vm_steps(b, lambda: b.add_segments(flow_id, [post]))  # its overlap check seeks too
        assert at_the_end <= alone + 5, (alone, at_the_end)
    finally:
        b.close()


def test_a_second_process_cannot_open_the_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    fd = os.open(data / local.LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another tams-server holds it
    try:
        with pytest.raises(RuntimeError, match="another tams-server"):
            open_backend(data)
    finally:
        os.close(fd)
    open_backend(data).close()  # free again


def legacy_store(data: Path) -> None:
    """A DuckDB store as servers before 8.x left it, with a column and a table this one ignores."""
    data.mkdir()
    duck = DuckDBEngine(data / local.LEGACY_DATABASE_FILE)
    duck.ensure_tables(TABLES)
    duck._db.execute("ALTER TABLE sources ADD COLUMN legacy VARCHAR")
    duck._db.execute("CREATE TABLE retired (x INTEGER, y BLOB)")
    duck._db.execute("INSERT INTO retired VALUES (7, '\\x00\\x01'::BLOB)")
    with duck.transaction(write=True) as tx:
        doc = '{"id": "s1", "format": "urn:x-nmos:format:data", "label": "kept"}'
        tx.insert("sources", SOURCES.rows([{"id": "s1", "format": "urn:x-nmos:format:data", "doc": doc}]))
    duck.close()


def test_a_duckdb_store_is_migrated_on_first_opening(tmp_path: Path) -> None:
    data = tmp_path / "data"
    legacy_store(data)
    (data / (local.DATABASE_FILE + ".partial")).write_bytes(b"left by an interrupted migration")
    b = open_backend(data)
    try:
        assert b.get_source("s1")["label"] == "kept"
        columns = b.engine.columns()
        assert "legacy" in columns["sources"] and "label" in columns["sources"]
        assert columns["retired"] == {"x": "INTEGER", "y": "BLOB"}
    finally:
        b.close()
    assert not (data / local.LEGACY_DATABASE_FILE).exists()
    assert (data / (local.LEGACY_DATABASE_FILE + local.MIGRATED_SUFFIX)).exists()
    assert not (data / (local.DATABASE_FILE + ".partial")).exists()
    with sqlite3.connect(data / local.DATABASE_FILE) as db:
        assert db.execute("SELECT x, y FROM retired").fetchall() == [(7, b"\x00\x01")]
    b = open_backend(data)  # opened again: nothing migrated twice
    try:
        assert b.get_source("s1")["label"] == "kept"
    finally:
        b.close()


def test_a_migration_stopped_before_setting_the_duckdb_file_aside_completes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    legacy_store(data)
    local.migrate_legacy(data)
    migrated = data / (local.LEGACY_DATABASE_FILE + local.MIGRATED_SUFFIX)
    os.replace(migrated, data / local.LEGACY_DATABASE_FILE)  # as if stopped just before that rename
    b = open_backend(data)
    try:
        assert b.get_source("s1")["label"] == "kept"
    finally:
        b.close()
    assert migrated.exists() and not (data / local.LEGACY_DATABASE_FILE).exists()
