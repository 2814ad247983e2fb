"""The ``vast`` backend called directly, on the SDK double and moto: the engine's mapping onto the
SDK, settling commits whose reply was lost, locks shared between server processes, and S3 media.

The API tests and the contract suite also run on ``vast`` (emulated); these tests cover what only
this backend has.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import threading
import time
import uuid
from typing import Any

import httpx
import pyarrow as pa
import pytest
from conftest import allocate_in_backend

import backends
from backends import vast
from backends.base import BackendServices, PageRequest, SegmentQuery, StorageRequest, StorePolicy, UrlOptions
from backends.events import DiscardEvents
from backends.tabular import segments, store
from backends.tabular.engine import ROW_ID, Conflict, EngineError, EngineUnavailable, Order, TableSpec, col
from backends.tabular.table_locks import LOCKS, LockTimeout, TableLockManager
from backends.tabular.vast_double import VastDouble
from backends.tabular.vast_engine import COMMITS, VastEngine
from backends.timerange import TimeRange

NO_URLS = UrlOptions(accept_get_urls=())
CDN = {"url": "https://cdn.example.com/media", "label": "cdn"}  # a URL a client gives for its own object
THINGS = TableSpec("things", pa.schema([("id", pa.string()), ("n", pa.int64()), ("key", pa.binary())]))


class _Signer:
    def sign(self, method: str, storage_id: str, object_id: str) -> str:
        return f"http://media/{storage_id}/{object_id}"


def services() -> BackendServices:
    return BackendServices(signer=_Signer(), events=DiscardEvents(), policy=StorePolicy())


def open_vast(**options: Any) -> vast.VastBackend:
    return vast.create({"emulate": True, **options}, services())


@pytest.fixture
def backend() -> Any:
    b = open_vast()
    yield b
    b.close()


@pytest.fixture
def engine() -> VastEngine:
    cluster = VastDouble(buckets=["tams"])
    e = VastEngine(cluster.session, "tams", "t")
    e.ensure_tables([THINGS])
    return e


def new_flow(backend: Any) -> str:
    flow_id = str(uuid.uuid4())
    flow = {
        "id": flow_id,
        "source_id": str(uuid.uuid4()),
        "format": "urn:x-nmos:format:data",
        "codec": "text/plain",
        "container": "text/plain",
        "label": "data",
    }
    backend.put_flow(flow_id, flow)
    return flow_id


def timeranges(backend: Any, flow_id: str) -> list[str]:
    query = SegmentQuery(timerange=TimeRange.parse("_"))
    page = backend.list_segments(flow_id, query, NO_URLS, PageRequest(limit=1000))
    return [s["timerange"] for s in page.items]


# --- the engine on the SDK ---------------------------------------------------------------------


def test_select_orders_and_limits_on_the_client(engine: VastEngine) -> None:
    rows = [{"id": f"r{i}", "n": i, "key": bytes([i % 7, i])} for i in range(50)]
    random.Random(1).shuffle(rows)
    with engine.transaction(write=True) as tx:
        tx.insert("things", THINGS.rows(rows))
    with engine.transaction(write=False) as tx:
        top = tx.select("things", ["id"], col("n") >= 10, order=[Order("n", descending=True)], limit=5)
        assert top.column("id").to_pylist() == ["r49", "r48", "r47", "r46", "r45"]
        by_key = tx.select("things", ["n"], col("n") < 8, order=[Order("key"), Order("n")])
        assert by_key.column("n").to_pylist() == sorted(range(8), key=lambda i: (bytes([i % 7, i]), i))
        assert tx.select("things", ["id"], col("id").isin(["r3", "r4", "zz"])).num_rows == 2
        assert tx.select("things", [], col("n") < 3, row_ids=True).column_names == [ROW_ID]
        assert tx.select("things", ["id"], limit=0).num_rows == 0


def test_update_and_delete_go_by_row_id(engine: VastEngine) -> None:
    with engine.transaction(write=True) as tx:
        tx.insert("things", THINGS.rows([{"id": "a", "n": 1}, {"id": "b", "n": 2}]))
    with engine.transaction(write=True) as tx:
        found = tx.select("things", ["id"], col("id") == "a", row_ids=True).to_pylist()
        tx.update("things", pa.table({ROW_ID: pa.array([found[0][ROW_ID]]), "n": pa.array([10])}))
        other = tx.select("things", ["id"], col("id") == "b", row_ids=True).to_pylist()
        tx.delete("things", [other[0][ROW_ID]])
    with engine.transaction(write=False) as tx:
        assert tx.select("things", ["id", "n"], order=[Order("id")]).to_pylist() == [{"id": "a", "n": 10}]


def test_a_failed_block_rolls_back(engine: VastEngine) -> None:
    with pytest.raises(RuntimeError), engine.transaction(write=True) as tx:
        tx.insert("things", THINGS.rows([{"id": "x", "n": 1}]))
        raise RuntimeError("boom")
    with engine.transaction(write=False) as tx:
        assert tx.select("things", ["id"]).num_rows == 0


def test_tables_are_evolved_never_dropped() -> None:
    cluster = VastDouble(buckets=["tams"])
    first = VastEngine(cluster.session, "tams", "evolve")
    first.ensure_tables([THINGS])
    with first.transaction(write=True) as tx:
        tx.insert("things", THINGS.rows([{"id": "old", "n": 1}]))
    wider = TableSpec("things", THINGS.schema.append(pa.field("extra", pa.string())))
    second = VastEngine(cluster.session, "tams", "evolve")
    second.ensure_tables([wider])
    with second.transaction(write=False) as tx:
        assert tx.select("things", ["id", "extra"]).to_pylist() == [{"id": "old", "extra": None}]
    clash = TableSpec("things", pa.schema([("id", pa.int64())]))
    with pytest.raises(EngineError, match=r"things\.id"):
        VastEngine(cluster.session, "tams", "evolve").ensure_tables([clash])


def test_a_missing_bucket_is_a_clear_error() -> None:
    with pytest.raises(EngineError, match="bucket 'nope' does not exist"):
        VastEngine(VastDouble(buckets=["tams"]).session, "nope", "s")


class _LostCommitReply:
    """A session whose next commit happens (or not) but whose reply is lost, as over a broken link.

    Like the SDK's session it has an ``api`` to roll a transaction back by its id.
    """

    def __init__(self, session: Any, applied: bool) -> None:
        self._session = session
        self.applied = applied
        self.armed = False
        self._open: dict[int, Any] = {}
        self.api = self

    def rollback_transaction(self, txid: int) -> None:
        real = self._open.pop(txid, None)
        if real is not None and real.is_active:
            real.__exit__(RuntimeError, RuntimeError("rolled back"), None)

    def transaction(self) -> Any:
        real = self._session.transaction()
        outer = self

        class _Tx:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def __enter__(self) -> Any:
                real.__enter__()
                outer._open[real.txid] = real
                return self

            def __exit__(self, *exc: Any) -> Any:
                outer._open.pop(real.txid, None)
                if exc[0] is None and outer.armed:
                    outer.armed = False
                    if outer.applied:
                        real.__exit__(None, None, None)
                    else:
                        real.__exit__(RuntimeError, RuntimeError("lost"), None)
                    import vastdb.errors

                    raise vastdb.errors.ConnectionError(cause=OSError("reset"), may_retry=False)
                return real.__exit__(*exc)

        return _Tx()


@pytest.mark.parametrize("applied", [True, False])
def test_a_lost_commit_reply_is_settled_by_its_marker(applied: bool) -> None:
    cluster = VastDouble(buckets=["tams"])
    flaky = _LostCommitReply(cluster.session(), applied)
    engine = VastEngine(lambda: flaky, "tams", "t")
    engine.ensure_tables([THINGS])
    flaky.armed = True
    if applied:
        with engine.transaction(write=True) as tx:  # no error: the write did happen
            tx.insert("things", THINGS.rows([{"id": "once", "n": 1}]))
    else:
        with pytest.raises(Conflict), engine.transaction(write=True) as tx:  # run it again
            tx.insert("things", THINGS.rows([{"id": "once", "n": 1}]))
    with engine.transaction(write=False) as tx:
        assert tx.select("things", ["id"]).num_rows == int(applied)
        assert tx.select(COMMITS.name, ["write_id"]).num_rows == int(applied)


def test_an_unsettled_commit_answers_503_rather_than_guess(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a rollback of the lost commit, an absent marker may still appear: never retry then."""
    cluster = VastDouble(buckets=["tams"])
    flaky = _LostCommitReply(cluster.session(), applied=False)
    flaky.api = None  # type: ignore[assignment]
    engine = VastEngine(lambda: flaky, "tams", "t")
    monkeypatch.setattr(engine, "settle_pauses", (0.0, 0.0))
    engine.ensure_tables([THINGS])
    flaky.armed = True
    with pytest.raises(EngineUnavailable, match="could not be settled"), engine.transaction(write=True) as tx:
        tx.insert("things", THINGS.rows([{"id": "x", "n": 1}]))


def test_the_store_applies_a_segment_once_when_the_commit_reply_is_lost() -> None:
    cluster = VastDouble(buckets=["tams"])
    sessions: list[_LostCommitReply] = []

    def connect() -> Any:
        sessions.append(_LostCommitReply(cluster.session(), applied=False))
        return sessions[-1]

    engine = VastEngine(connect, "tams", "t")
    backend = store.TabularBackend(engine, [], services())
    try:
        flow_id = new_flow(backend)
        for s in sessions:
            s.armed = True  # the next commit of each thread is not applied, and its reply lost
        # A store without object stores: the segment gives its object's URLs.
        segment = {"object_id": "o", "timerange": "[0:0_1:0)", "get_urls": [CDN]}
        assert backend.add_segments(flow_id, [segment]) == []
        assert timeranges(backend, flow_id) == ["[0:0_1:0)"]
    finally:
        backend.close()


def test_old_commit_markers_are_swept(engine: VastEngine) -> None:
    with engine.transaction(write=True) as tx:
        tx.insert("things", THINGS.rows([{"id": "a", "n": 1}]))
    assert engine.sweep_markers(older_than=3600) == 0
    assert engine.sweep_markers(older_than=-1) == 1


# --- locks between processes -------------------------------------------------------------------


def _two_servers(lock: str, **options: Any) -> tuple[Any, Any]:
    """Two backends on one emulated cluster, as two tams-server processes would be."""
    name = uuid.uuid4().hex[:10]
    return open_vast(emulate=name, lock=lock, **options), open_vast(emulate=name, lock=lock, **options)


@pytest.mark.parametrize("lock", ["process", "table"])
def test_two_processes_never_store_overlapping_segments(lock: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both writers read the flow before either commits (a barrier forces it) — unless the lock makes
    the second wait: with process-only locks both succeed and the flow overlaps (the hazard is real
    in the double, so this test can fail); with table locks exactly one succeeds."""
    first, second = _two_servers(lock)
    # With table locks the second writer waits for the first, so the barrier must give up: soon.
    barrier = threading.Barrier(2, timeout=10.0 if lock == "process" else 1.0)
    original = segments._OverlapChecker.__init__

    def checking(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()

    monkeypatch.setattr(segments._OverlapChecker, "__init__", checking)
    try:
        flow_id = new_flow(first)
        allocate_in_backend(first, flow_id, ["o0", "o5"])
        results: list[int] = []

        def write(backend: Any, start: int) -> None:
            body = [{"object_id": f"o{start}", "timerange": f"[{start}:0_{start + 10}:0)"}]
            results.append(len(backend.add_segments(flow_id, body)))

        threads = [threading.Thread(target=write, args=(b, s)) for b, s in ((first, 0), (second, 5))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # What is stored, read from the table: listings trust the flow's extent, which the racing
        # writers of the process-locks case also overwrite.
        with first.engine.transaction(write=False) as tx:
            rows = tx.select("segments", ["timerange"], col("flow_id") == flow_id).column("timerange").to_pylist()
        stored = [TimeRange.parse(t) for t in rows]
        overlapping = any(a.overlaps(b) for a, b in itertools.combinations(stored, 2))
        if lock == "process":
            assert overlapping and sorted(results) == [0, 0]
        else:
            assert not overlapping and sorted(results) == [0, 1]
    finally:
        first.close()
        second.close()


def test_many_writers_in_two_processes_never_overlap() -> None:
    first, second = _two_servers("table")
    try:
        flow_id = new_flow(first)
        rng = random.Random(3)
        bodies = [[{"object_id": f"o{s}", "timerange": f"[{s}:0_{s + rng.randint(1, 4)}:0)"}] for s in range(0, 60, 2)]
        allocate_in_backend(first, flow_id, (b[0]["object_id"] for b in bodies))
        failures: list[int] = []

        def write(backend: Any, body: list[dict]) -> None:
            failures.append(len(backend.add_segments(flow_id, body)))

        threads = [threading.Thread(target=write, args=(rng.choice((first, second)), b)) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stored = [TimeRange.parse(t) for t in timeranges(second, flow_id)]
        assert len(stored) == len(bodies) - sum(failures)
        assert sum(failures) < len(bodies)  # some were stored: the writers did race
        assert all(not a.overlaps(b) for a, b in itertools.combinations(stored, 2))
    finally:
        first.close()
        second.close()


def _claim_as_crashed_process(engine: VastEngine, name: str, expires_in: float) -> None:
    with engine.transaction(write=True) as tx:
        tx.insert(LOCKS.name, LOCKS.rows([{"name": name, "owner": "crashed", "expires": time.time() + expires_in}]))


def _first_transaction(engine: VastEngine) -> None:
    """Names are claimed in the table just before the first transaction of the block that holds them."""
    with engine.transaction(write=False):
        pass


def test_a_crashed_holder_blocks_only_until_its_claim_expires(engine: VastEngine) -> None:
    locks = TableLockManager(engine, ttl=5, wait=5, renew=False)
    _claim_as_crashed_process(engine, "flow/f", expires_in=0.3)
    started = time.monotonic()
    with locks.session() as held:
        held.flows(["f"])
        _first_transaction(engine)
        waited = time.monotonic() - started
    assert 0.25 <= waited < 3
    with engine.transaction(write=False) as tx:  # the expired claim was cleared, ours released
        assert tx.select(LOCKS.name, ["owner"]).num_rows == 0


def test_a_lock_held_too_long_elsewhere_answers_503(engine: VastEngine) -> None:
    locks = TableLockManager(engine, ttl=60, wait=0.3, renew=False)
    _claim_as_crashed_process(engine, "catalog", expires_in=60)
    with pytest.raises(LockTimeout) as caught, locks.session() as held:
        held.catalog()
        _first_transaction(engine)
    from tams_server.errors import STATUS

    assert next(STATUS[k] for k in type(caught.value).__mro__ if k in STATUS) == 503


def test_a_thread_holding_a_name_does_not_claim_it_again(engine: VastEngine) -> None:
    locks = TableLockManager(engine, renew=False)
    with locks.session() as outer:
        outer.catalog()
        with locks.session() as inner:  # re-entrant, as the in-process locks are
            inner.catalog()
        with engine.transaction(write=False) as tx:
            assert tx.select(LOCKS.name, ["name"]).column("name").to_pylist() == ["catalog"]


def test_held_claims_are_renewed(engine: VastEngine) -> None:
    locks = TableLockManager(engine, ttl=0.3, wait=5)
    try:
        with locks.session() as held:
            held.flows(["f"])
            _first_transaction(engine)
            time.sleep(0.6)  # two ttls: without renewal another process would take it now
            with engine.transaction(write=False) as tx:
                expires = tx.select(LOCKS.name, ["expires"]).column("expires").to_pylist()
            assert expires and min(expires) > time.time()
    finally:
        locks.close()


# --- S3 media ------------------------------------------------------------------------------------


def test_media_goes_to_s3_through_presigned_urls(backend: Any) -> None:
    flow_id = new_flow(backend)
    [storage] = backend.storage_backends()
    assert storage["default_storage"] is True
    allocated = backend.allocate_storage(flow_id, StorageRequest(limit=1))["media_objects"][0]
    put = allocated["put_url"]
    uploaded = httpx.put(put["url"], content=b"0123456789", headers={"content-type": put["content-type"]})
    assert uploaded.status_code == 200
    assert backend.add_segments(flow_id, [{"object_id": allocated["object_id"], "timerange": "[0:0_1:0)"}]) == []
    page = backend.list_segments(flow_id, SegmentQuery(), UrlOptions(), PageRequest())
    [url] = [u["url"] for u in page.items[0]["get_urls"]]
    assert httpx.get(url).content == b"0123456789"
    ranged = httpx.get(url, headers={"Range": "bytes=2-4"})
    assert (ranged.status_code, ranged.content) == (206, b"234")


def test_the_local_engine_can_keep_media_in_s3() -> None:
    moto = vast.shared_moto()
    options = {
        "temporary": True,
        "s3_bucket": f"local-{uuid.uuid4().hex[:10]}",
        "s3_endpoint": moto.endpoint_url,
        "s3_access_key": "test",
        "s3_secret_key": "test",
        "s3_create_bucket": True,
    }
    local = backends.load_factory("local")(options, services())
    try:
        [storage] = local.storage_backends()
        assert storage["store_product"] != "local-disk"
        flow_id = new_flow(local)
        allocated = local.allocate_storage(flow_id, StorageRequest(limit=1))["media_objects"][0]
        assert allocated["put_url"]["url"].startswith(moto.endpoint_url)
    finally:
        local.close()


def test_unknown_options_and_lock_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown vast backend options: buckett"):
        vast.create({"emulate": True, "buckett": "x"}, services())
    with pytest.raises(ValueError, match="lock must be"):
        open_vast(lock="redis")


def test_several_s3_stores_are_listed_and_chosen_by_storage_id() -> None:
    moto = vast.shared_moto()

    def s3(label: str, default: bool) -> dict[str, Any]:
        return {
            "label": label,
            "bucket": f"{label}-{uuid.uuid4().hex[:10]}",
            "endpoint_url": moto.endpoint_url,
            "access_key": "test",
            "secret_key": "test",
            "create_bucket": True,
            "default": default,
        }

    configured = [s3("hot", False), s3("archive", True)]
    engine = VastEngine(VastDouble(buckets=["tams"]).session, "tams", "two")
    two = vast.VastBackend(engine, store.s3_stores({"storage": configured}, engine, services()), services())
    try:
        listed = {s["label"]: s for s in two.storage_backends()}
        assert set(listed) == {"hot", "archive"}
        assert [label for label, s in listed.items() if s["default_storage"]] == ["archive"]
        flow_id = new_flow(two)
        default_put = two.allocate_storage(flow_id, StorageRequest(limit=1))["media_objects"][0]["put_url"]["url"]
        assert f"/{configured[1]['bucket']}/" in default_put
        hot = two.allocate_storage(flow_id, StorageRequest(limit=1, storage_id=listed["hot"]["id"]))
        assert f"/{configured[0]['bucket']}/" in hot["media_objects"][0]["put_url"]["url"]
    finally:
        two.close()


def test_real_connections_get_the_configured_endpoints_keys_and_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path to a real cluster, with ``vastdb.connect`` answered by the double: what it is given."""
    import vastdb

    cluster = VastDouble(buckets=["tams-db"])
    calls: list[dict[str, Any]] = []

    def connect(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return cluster.session()

    monkeypatch.setattr(vastdb, "connect", connect)
    moto = vast.shared_moto()
    options = {
        "endpoint": "http://vast.example:8080",
        "access_key": "AK",
        "secret_key": "SK",
        "bucket": "tams-db",
        "schema": "prod",
        "data_endpoints": "http://vip1, http://vip2",
        "timeout": 30,
        "s3_bucket": f"media-{uuid.uuid4().hex[:8]}",
        "s3_endpoint": moto.endpoint_url,
        "s3_access_key": "test",
        "s3_secret_key": "test",
        "s3_create_bucket": True,
    }
    backend = vast.create(options, services())
    try:
        new_flow(backend)
        other = threading.Thread(target=new_flow, args=(backend,))
        other.start()
        other.join()
    finally:
        backend.close()
    assert len(calls) >= 2  # one session per thread, reused within it
    first = calls[0]
    assert (first["endpoint"], first["access"], first["secret"]) == ("http://vast.example:8080", "AK", "SK")
    assert first["config"].data_endpoints == ["http://vip1", "http://vip2"]
    assert first["timeout"] == (5.0, 30.0)
    with cluster.session().transaction() as tx:
        assert "flows" in tx.bucket("tams-db").schema("prod").tablenames()


@pytest.mark.parametrize("reverse", [False, True])
def test_a_page_of_segments_reads_about_a_page_of_rows(backend: Any, reverse: bool) -> None:
    """VAST sorts nothing, so a listing reads windows of start times, not the flow."""
    flow_id = new_flow(backend)
    n = 20_000
    # Objects with their own URLs: allocating 20,000 ids first would double the time on the SDK double.
    bodies = [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)", "get_urls": [CDN]} for i in range(n)]
    for start in range(0, n, 5000):
        assert backend.add_segments(flow_id, bodies[start : start + 5000]) == []
    engine = backend.engine
    firsts = {False: ("[12345:0_12346:0)", "[0:0_1:0)"), True: ("[12354:0_12355:0)", f"[{n - 1}:0_{n}:0)")}
    for query, first in zip(("[12345:500000000_12355:0)", "_"), firsts[reverse], strict=True):
        before = engine.rows_read
        q = SegmentQuery(timerange=TimeRange.parse(query), reverse_order=reverse)
        page = backend.list_segments(flow_id, q, NO_URLS, PageRequest(limit=10))
        assert [len(page.items), page.items[0]["timerange"]] == [10, first]
        assert engine.rows_read - before < 100, f"{engine.rows_read - before} rows read for a page of 10 out of {n}"
        after = backend.list_segments(flow_id, q, NO_URLS, PageRequest(limit=10, page=page.next_key))
        assert after.items[0]["timerange"] != page.items[-1]["timerange"]
    last = backend.list_segments(flow_id, SegmentQuery(reverse_order=True), NO_URLS, PageRequest(limit=1))
    assert last.items[0]["timerange"] == f"[{n - 1}:0_{n}:0)"


def test_threads_waiting_for_a_lock_give_up_after_the_wait(engine: VastEngine) -> None:
    locks = TableLockManager(engine, ttl=60, wait=0.3, renew=False)
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with locks.session() as held:
            held.flows(["busy"])
            holding.set()
            done.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    try:
        with pytest.raises(LockTimeout), locks.session() as held:
            held.flows(["busy"])
    finally:
        done.set()
        holder.join()
    with locks.session() as held:  # released, and the waiter left nothing behind
        held.flows(["busy"])
