"""Round trips of the vast backend's cross-process locks, counted on the SDK double.

An operation's names are claimed together in one transaction just before its first transaction;
the read-back of the claims runs inside that transaction and the release rides in its first write
commit. These tests hold that to two transactions for an uncontended locked write and check that
two lock managers on one double (two server processes) still exclude each other: while one holds
a name, across a crash (claims that stop being renewed), with expiry and renewal, with a commit
reply lost, and in blocks that run several transactions.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pyarrow as pa
import pytest
from test_vast_backend import _LostCommitReply

from backends.tabular.engine import Conflict, EngineUnavailable, TableSpec, col
from backends.tabular.table_locks import LOCKS, LockTimeout, TableLockManager
from backends.tabular.vast_double import VastDouble
from backends.tabular.vast_engine import VastEngine
from tools.bench_roundtrips import round_trips

THINGS = TableSpec("things", pa.schema([("id", pa.string()), ("n", pa.int64())]))


class Server:
    """One "tams-server process": its own engine and lock manager on a shared cluster."""

    def __init__(self, cluster: VastDouble, ttl: float = 60.0, wait: float = 5.0, renew: bool = False) -> None:
        self.engine = VastEngine(cluster.session, "tams", "locks")
        self.engine.ensure_tables([THINGS])
        self.locks = TableLockManager(self.engine, ttl=ttl, wait=wait, renew=renew)

    def insert(self, thing: str) -> None:
        with self.engine.transaction(write=True) as tx:
            tx.insert(THINGS.name, THINGS.rows([{"id": thing, "n": 1}]))

    def things(self) -> list[str]:
        with self.engine.transaction(write=False) as tx:
            return sorted(tx.select(THINGS.name, ["id"]).column("id").to_pylist())

    def close(self) -> None:
        self.locks.close()


@pytest.fixture
def cluster() -> VastDouble:
    return VastDouble(buckets=["tams"])


def claims(cluster: VastDouble) -> list[dict[str, Any]]:
    with cluster.session().transaction() as tx:
        table = tx.bucket("tams").schema("locks").table(LOCKS.name)
        return table.select(columns=["name", "owner"]).read_all().to_pylist()


def in_thread(target: Any) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_an_uncontended_locked_write_costs_two_transactions(cluster: VastDouble) -> None:
    server = Server(cluster)
    before = cluster.stats
    with server.locks.session() as held:
        held.flows(["f"]).objects(["o1", "o2"])  # names of several kinds: claimed in one transaction
        server.insert("a")
    spent = cluster.stats - before
    # The claim; then the write, with the read-back of the claims and their deletion in it.
    assert (spent.transactions, spent.inserts, spent.selects, spent.deletes) == (2, 3, 1, 1)
    assert claims(cluster) == []  # released by the write's commit
    assert server.things() == ["a"]


def test_a_block_without_a_transaction_claims_nothing(cluster: VastDouble) -> None:
    server = Server(cluster)
    before = cluster.stats
    with server.locks.session() as held:
        held.catalog()
    assert (cluster.stats - before).transactions == 0


def test_a_second_server_waits_for_the_holders_commit_and_sees_its_write(cluster: VastDouble) -> None:
    first, second = Server(cluster), Server(cluster)
    writing, finish = threading.Event(), threading.Event()
    seen: list[list[str]] = []

    def hold() -> None:
        with first.locks.session() as held:
            held.flows(["f"])
            with first.engine.transaction(write=True) as tx:
                tx.insert(THINGS.name, THINGS.rows([{"id": "first", "n": 1}]))
                writing.set()
                finish.wait(5)

    def follow() -> None:
        with second.locks.session() as held:
            held.flows(["f"])
            seen.append(second.things())

    holder = in_thread(hold)
    assert writing.wait(5)
    follower = in_thread(follow)
    time.sleep(0.3)
    assert seen == []  # still waiting: the first server's claim is live
    finish.set()
    holder.join(5)
    follower.join(5)
    assert seen == [["first"]]  # it went on only once the write was committed, and saw it
    assert claims(cluster) == []


def test_a_block_that_writes_twice_claims_again_after_its_first_commit(cluster: VastDouble) -> None:
    """The first commit gives the names up; a later transaction of the same block claims them
    again, so it waits for another server that took them meanwhile, and sees its write."""
    first, second = Server(cluster), Server(cluster)
    committed, taken, finish = threading.Event(), threading.Event(), threading.Event()
    seen: list[list[str]] = []

    def block() -> None:
        with first.locks.session() as held:
            held.flows(["f"])
            first.insert("first")
            committed.set()
            assert taken.wait(5)
            seen.append(first.things())

    def other() -> None:
        assert committed.wait(5)
        with second.locks.session() as held:
            held.flows(["f"])
            with second.engine.transaction(write=True) as tx:
                tx.insert(THINGS.name, THINGS.rows([{"id": "second", "n": 1}]))
                taken.set()
                finish.wait(5)

    threads = [in_thread(block), in_thread(other)]
    assert taken.wait(5)
    time.sleep(0.3)
    assert seen == []
    finish.set()
    for t in threads:
        t.join(5)
    assert seen == [["first", "second"]]


def test_keep_claims_holds_other_servers_off_until_the_block_ends(cluster: VastDouble) -> None:
    first, second = Server(cluster), Server(cluster)
    committed, finish = threading.Event(), threading.Event()
    seen: list[list[str]] = []

    def block() -> None:
        with first.locks.session() as held:
            held.objects(["o"]).keep_claims()
            first.insert("first")
            committed.set()
            finish.wait(5)  # e.g. deleting media after the commit

    def other() -> None:
        with second.locks.session() as held:
            held.objects(["o"])
            seen.append(second.things())

    holder = in_thread(block)
    assert committed.wait(5)
    follower = in_thread(other)
    time.sleep(0.3)
    assert seen == []
    finish.set()
    holder.join(5)
    follower.join(5)
    assert seen == [["first"]]
    assert claims(cluster) == []


def test_a_crashed_holder_blocks_the_name_until_its_claim_expires(cluster: VastDouble) -> None:
    """A server that claimed a name and then stopped (no renewal, no release) holds it for one ttl."""
    crashed, other = Server(cluster, ttl=0.4), Server(cluster, wait=5)
    stuck = threading.Event()

    def freeze() -> None:
        with crashed.locks.session() as held:
            held.flows(["f"])
            with crashed.engine.transaction(write=False):
                stuck.set()
                threading.Event().wait(3)  # never commits, never releases, never renews

    in_thread(freeze)
    assert stuck.wait(5)
    started = time.monotonic()
    with other.locks.session() as held:
        held.flows(["f"])
        other.insert("after the crash")
    waited = time.monotonic() - started
    assert 0.2 <= waited < 2.5
    assert claims(cluster) == []  # the dead claim was cleared by the write's commit, with ours
    assert other.things() == ["after the crash"]


def test_a_renewed_claim_outlives_its_ttl_and_the_waiter_gives_up(cluster: VastDouble) -> None:
    holder, waiter = Server(cluster, ttl=0.3, renew=True), Server(cluster, wait=0.8)
    holding, finish = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.locks.session() as held:
            held.flows(["f"])
            with holder.engine.transaction(write=False):
                holding.set()
                finish.wait(5)

    thread = in_thread(hold)
    try:
        assert holding.wait(5)
        started = time.monotonic()
        with pytest.raises(LockTimeout), waiter.locks.session() as held:
            held.flows(["f"])
            waiter.things()
        assert time.monotonic() - started >= 0.8  # well past the holder's ttl: it was renewed
        assert [c["owner"].split("-")[0] for c in claims(cluster)] == [holder.locks.process]  # the waiter withdrew
    finally:
        finish.set()
        thread.join(5)
        holder.close()
    assert claims(cluster) == []


@pytest.mark.parametrize("applied", [True, False])
def test_a_lost_commit_reply_leaves_the_claims_right(cluster: VastDouble, applied: bool) -> None:
    """Settled as committed: the claims went with the write. Settled as not committed (Conflict):
    they stand, and the write run again releases them."""
    flaky = _LostCommitReply(cluster.session(), applied)
    engine = VastEngine(lambda: flaky, "tams", "locks")
    engine.ensure_tables([THINGS])
    locks = TableLockManager(engine, renew=False)
    with locks.session() as held:
        held.flows(["f"])
        with engine.transaction(write=False):  # claims the name (a read keeps it)
            pass
        flaky.armed = True
        try:
            with engine.transaction(write=True) as tx:
                tx.insert(THINGS.name, THINGS.rows([{"id": "once", "n": 1}]))
        except Conflict:
            assert not applied
            assert [c["name"] for c in claims(cluster)] == ["flow/f"]  # still ours
            with engine.transaction(write=True) as tx:
                tx.insert(THINGS.name, THINGS.rows([{"id": "once", "n": 1}]))
        assert claims(cluster) == []
    with engine.transaction(write=False) as tx:
        assert tx.select(THINGS.name, ["id"], col("id") == "once").num_rows == 1


def test_a_claim_whose_commit_reply_is_lost_fails_and_leaves_no_row(cluster: VastDouble) -> None:
    flaky = _LostCommitReply(cluster.session(), applied=True)
    engine = VastEngine(lambda: flaky, "tams", "locks")
    engine.ensure_tables([THINGS])
    locks = TableLockManager(engine, renew=False)
    with pytest.raises(EngineUnavailable), locks.session() as held:
        held.flows(["f"])
        flaky.armed = True  # the claim's commit happens, its reply is lost
        with engine.transaction(write=True) as tx:
            tx.insert(THINGS.name, THINGS.rows([{"id": "never", "n": 1}]))
    assert claims(cluster) == []


def test_round_trips_per_operation_on_the_emulated_backend() -> None:
    counted = round_trips(["GET flow", "POST 1 segment", "PUT flow", "allocate storage"])
    assert set(counted["GET flow"]) == {"transactions", "selects", "inserts", "updates", "deletes", "calls"}
    assert counted["GET flow"]["transactions"] == 1
    assert counted["PUT flow"]["transactions"] == 2
    assert counted["allocate storage"]["transactions"] == 2
    # The segment write: its claim and itself (stored init object ids are read inside the write).
    assert counted["POST 1 segment"]["transactions"] == 2
