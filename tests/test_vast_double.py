"""The vastdb test double (``backends/tabular/vast_double.py``) behaves like the SDK and a cluster where it matters.

The VAST engine is tested against this double only, so these tests pin what the engine may rely on: which
predicates the SDK accepts (decided by the SDK's own request builder), NULL semantics, snapshot isolation, arbitrary
row order, the SDK's select quirks and the errors a cluster raises. The canary test fails when the pinned SDK's
request builder changes, since the double calls that private function.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import importlib.metadata
import threading
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("vastdb", reason="the vast extra (vastdb) is not installed")

import ibis
import pyarrow as pa
import pyarrow.compute as pc
from ibis import _
from vastdb import errors, util
from vastdb._internal import build_query_data_request
from vastdb.config import QueryConfig
from vastdb.table_metadata import TableMetadata, TableRef, TableType
from vastdb.transaction import TransactionNotActiveError

from backends.tabular.vast_double import MAX_CELL_BYTES, ROW_ID, DoubleTableInTransaction, VastDouble

ONE_SPLIT = QueryConfig(num_splits=1, num_sub_splits=1)
REF = TableRef("tams", "s", "t")
UTC = dt.UTC


def hour(h: int) -> dt.datetime:
    return dt.datetime(2024, 1, 1, h, tzinfo=UTC)


def day(d: int) -> dt.date:
    return dt.date(2024, 1, d)


D = decimal.Decimal

WIDE = pa.schema(
    [
        ("id", pa.int64()),
        ("a", pa.int64()),
        ("s", pa.utf8()),
        ("f", pa.float64()),
        ("flag", pa.bool_()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("d", pa.date32()),
        ("dec", pa.decimal128(10, 2)),
        ("bin", pa.binary()),
        ("st", pa.struct([("x", pa.int64())])),
    ]
)
WIDE_ROWS = {
    "id": list(range(8)),
    "a": [1, 2, 3, None, 5, 6, 7, 8],
    "s": ["a", "bb", "abc", None, "xyz", "ab", "", "bb"],
    "f": [0.5, 1.5, None, 2.5, 3.5, -1.0, 0.0, 9.9],
    "flag": [True, False, None, True, False, True, False, True],
    "ts": [hour(0), hour(1), hour(2), None, hour(4), hour(5), hour(6), hour(7)],
    "d": [day(1), day(2), day(3), None, day(5), day(6), day(7), day(8)],
    "dec": [D("1.25"), D("2.50"), None, D("3.75"), D("0.10"), D("2.00"), D("9.99"), D("5.00")],
    "bin": [b"\x00", b"\x01", b"\x01\x02", None, b"", b"\xff", b"\x01", b"\x02"],
    "st": [{"x": 0}, {"x": 1}, {"x": 2}, {"x": 3}, None, {"x": None}, {"x": 6}, {"x": 7}],
}
NOT_NULL_A = {0, 1, 2, 4, 5, 6, 7}


def make_table(double: VastDouble, schema: pa.Schema, rows: dict[str, list[Any]] | None = None) -> None:
    with double.session().transaction() as tx:
        bucket = tx.bucket("tams")
        s = bucket.schema("s", fail_if_missing=False) or bucket.create_schema("s")
        table = s.create_table("t", schema)
        if rows is not None:
            table.insert(pa.table(rows, schema=schema))


def metadata(schema: pa.Schema, table_type: TableType | None = TableType.Regular) -> TableMetadata:
    return TableMetadata(REF, arrow_schema=schema, table_type=table_type)


def ids(table: pa.Table) -> set[int]:
    return set(table.column("id").to_pylist())


@pytest.fixture
def double() -> VastDouble:
    return VastDouble(buckets=["tams"], seed=7)


@pytest.fixture
def wide(double: VastDouble) -> VastDouble:
    make_table(double, WIDE, WIDE_ROWS)
    return double


# --- predicates ------------------------------------------------------------------------------------------------

Predicate = Callable[[DoubleTableInTransaction], Any]

ACCEPTED: list[tuple[str, Predicate, set[int]]] = [
    ("eq", lambda t: t["a"] == 1, {0}),
    ("ne excludes null", lambda t: t["a"] != 2, {0, 2, 4, 5, 6, 7}),
    ("lt", lambda t: t["a"] < 3, {0, 1}),
    ("le", lambda t: t["a"] <= 3, {0, 1, 2}),
    ("gt", lambda t: t["a"] > 6, {6, 7}),
    ("ge", lambda t: t["a"] >= 6, {5, 6, 7}),
    ("eq None is isnull", lambda t: t["a"] == None, {3}),  # noqa: E711
    ("isnull", lambda t: t["a"].isnull(), {3}),
    ("not isnull", lambda t: ~t["a"].isnull(), NOT_NULL_A),
    ("isin", lambda t: t["a"].isin([1, 5, 99]), {0, 4}),
    ("isin 1000 values", lambda t: t["a"].isin(list(range(1000))), NOT_NULL_A),
    ("between inclusive", lambda t: t["a"].between(2, 5), {1, 2, 4}),
    ("between or eq", lambda t: t["a"].between(1, 2) | (t["a"] == 7), {0, 1, 6}),
    ("or same column", lambda t: (t["a"] < 2) | (t["a"] > 7), {0, 7}),
    (
        "and of ors",
        lambda t: ((t["a"] < 2) | (t["a"] > 6)) & ((t["s"] == "a") | (t["s"] == "bb")),
        {0, 7},
    ),
    ("and of three columns", lambda t: (t["a"] >= 2) & (t["a"] <= 6) & t["s"].contains("b"), {1, 2, 5}),
    ("string ne excludes null", lambda t: t["s"] != "bb", {0, 2, 4, 5, 6}),
    ("startswith", lambda t: t["s"].startswith("ab"), {2, 5}),
    ("startswith empty is notnull", lambda t: t["s"].startswith(""), NOT_NULL_A),
    ("startswith or", lambda t: t["s"].startswith("x") | t["s"].startswith("bb"), {1, 4, 7}),
    ("contains", lambda t: t["s"].contains("b"), {1, 2, 5, 7}),
    ("notnull or eq", lambda t: (~t["s"].isnull()) | (t["s"] == "a"), NOT_NULL_A),
    ("isnull or eq", lambda t: t["s"].isnull() | (t["s"] == "a"), {0, 3}),
    ("float", lambda t: t["f"] > 1.0, {1, 3, 4, 7}),
    ("bool true", lambda t: t["flag"] == True, {0, 3, 5, 7}),  # noqa: E712
    ("bool false", lambda t: t["flag"] == False, {1, 4, 6}),  # noqa: E712
    ("timestamp", lambda t: t["ts"] >= hour(5), {5, 6, 7}),
    ("timestamp lt", lambda t: t["ts"] < hour(2), {0, 1}),
    ("date", lambda t: t["d"] < day(3), {0, 1}),
    ("decimal vs float", lambda t: t["dec"] > 2.0, {1, 3, 6, 7}),
    ("decimal eq", lambda t: t["dec"] == ibis.literal(D("2.00"), type="decimal(10, 2)"), {5}),
    ("binary eq", lambda t: t["bin"] == b"\x01", {1, 6}),
    ("binary lt", lambda t: t["bin"] < b"\x01", {0, 4}),
    ("struct leaf", lambda t: t["st"]["x"] == 3, {3}),
    ("struct leaf gt", lambda t: t["st"]["x"] > 5, {6, 7}),
    ("deferred", lambda t: (_.a > 1) & (_.s == "bb"), {1, 7}),
    ("true", lambda t: True, set(range(8))),
    ("none", lambda t: None, set(range(8))),
    ("false", lambda t: False, set()),
]


@pytest.mark.parametrize(("predicate", "expected"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_accepted_predicates_select_the_right_rows(wide: VastDouble, predicate: Predicate, expected: set[int]):
    with wide.session().transaction() as tx:
        t = tx.table_from_metadata(metadata(WIDE))
        result = t.select(columns=["id"], predicate=predicate(t), config=ONE_SPLIT).read_all()
    assert ids(result) == expected
    assert result.num_rows == len(expected)


REJECTED_SCHEMA = pa.schema(
    [
        ("a", pa.int64()),
        ("a2", pa.int64()),
        ("i32", pa.int32()),
        ("s", pa.utf8()),
        ("flag", pa.bool_()),
        ("ls", pa.large_string()),
        ("m", pa.map_(pa.utf8(), pa.utf8())),
        ("l", pa.list_(pa.utf8())),
        ("st", pa.struct([("x", pa.int64())])),
    ]
)

REJECTED: list[tuple[str, Predicate, type[Exception]]] = [
    ("notnull", lambda t: t["a"].notnull(), NotImplementedError),
    ("notin", lambda t: t["a"].notin([1, 2]), NotImplementedError),
    ("not isin", lambda t: ~t["a"].isin([1, 2]), NotImplementedError),
    ("isin empty", lambda t: t["a"].isin([]), NotImplementedError),
    ("not eq", lambda t: ~(t["a"] == 1), NotImplementedError),
    ("not and", lambda t: ~((t["a"] == 1) & (t["s"] == "x")), NotImplementedError),
    ("not startswith", lambda t: ~t["s"].startswith("a"), NotImplementedError),
    ("not contains", lambda t: ~t["s"].contains("a"), NotImplementedError),
    ("or across columns", lambda t: (t["a"] < 1) | (t["s"] == "x"), NotImplementedError),
    ("and inside or", lambda t: ((t["a"] > 1) & (t["a"] < 3)) | (t["a"] > 10), NotImplementedError),
    ("endswith", lambda t: t["s"].endswith("x"), NotImplementedError),
    ("like", lambda t: t["s"].like("x%"), NotImplementedError),
    ("lower", lambda t: t["s"].lower() == "x", NotImplementedError),
    ("length", lambda t: t["s"].length() > 2, NotImplementedError),
    ("column vs column", lambda t: t["a"] == t["a2"], NotImplementedError),
    ("expression", lambda t: (t["a"] + 1) == 2, NotImplementedError),
    ("bare bool column", lambda t: t["flag"], NotImplementedError),
    ("literal true", lambda t: ibis.literal(True), NotImplementedError),
    ("map lookup", lambda t: t["m"]["k"] == "v", NotImplementedError),
    ("list contains", lambda t: t["l"].contains("x"), NotImplementedError),
    ("struct isnull", lambda t: t["st"].isnull(), NotImplementedError),
    ("xor", lambda t: (t["a"] == 1) ^ (t["a"] == 2), NotImplementedError),
    ("literal out of range", lambda t: t["i32"] == 2**40, TypeError),
    ("large_string column", lambda t: t["ls"] == "x", ValueError),
]


@pytest.mark.parametrize(("predicate", "error"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED])
def test_rejected_predicates_fail_like_the_sdk_builder(double: VastDouble, predicate: Predicate, error: type):
    make_table(double, REJECTED_SCHEMA)
    with double.session().transaction() as tx:
        t = tx.table_from_metadata(metadata(REJECTED_SCHEMA))
        expr = predicate(t)
        # The SDK's builder itself refuses it (so the double's answer is the SDK's, not ours) ...
        with pytest.raises(error):
            build_query_data_request(schema=REJECTED_SCHEMA, predicate=expr, field_names=["a"])
        # ... eagerly, inside select(), before anything is read.
        before = double.stats
        with pytest.raises(error):
            t.select(columns=["a"], predicate=expr, config=ONE_SPLIT)
        assert (double.stats - before).rows_scanned == 0


def test_large_string_column_cannot_even_be_selected(double: VastDouble):
    make_table(double, REJECTED_SCHEMA)
    with double.session().transaction() as tx:
        t = tx.table_from_metadata(metadata(REJECTED_SCHEMA))
        with pytest.raises(ValueError, match="large_string"):
            t.select(columns=["ls"], config=ONE_SPLIT)
        with pytest.raises(ValueError, match="large_string"):
            t.select(config=ONE_SPLIT)  # every column is serialized, even without a predicate


def test_too_large_predicate_raises_too_large_request(double: VastDouble):
    make_table(double, REJECTED_SCHEMA)
    with double.session().transaction() as tx:
        t = tx.table_from_metadata(metadata(REJECTED_SCHEMA))
        huge = t["s"].isin(["x" * 3000 + str(i) for i in range(2000)])  # ~6 MB of literals
        assert len(build_query_data_request(REJECTED_SCHEMA, huge, ["a"]).serialized) > (
            util.MAX_QUERY_DATA_REQUEST_SIZE
        )
        with pytest.raises(errors.TooLargeRequest):
            t.select(columns=["a"], predicate=huge, config=ONE_SPLIT)


def test_deferred_predicate_on_missing_column_fails_at_select(wide: VastDouble):
    with wide.session().transaction() as tx:
        t = tx.table_from_metadata(metadata(WIDE))
        with pytest.raises(Exception, match="nope"):
            t.select(predicate=_.nope == 1, config=ONE_SPLIT)


def test_comparisons_never_match_null(wide: VastDouble):
    with wide.session().transaction() as tx:
        t = tx.table_from_metadata(metadata(WIDE))
        for expr in (t["a"] == 4, t["a"] != 4, t["a"] < 100, t["a"] > -100, t["a"].isin([1, 2, 3, 5, 6, 7, 8])):
            got = ids(t.select(columns=["id"], predicate=expr, config=ONE_SPLIT).read_all())
            assert 3 not in got  # row 3 has a NULL "a"
        assert ids(t.select(columns=["id"], predicate=t["a"] != 4, config=ONE_SPLIT).read_all()) == NOT_NULL_A
        # a NULL struct reads NULL leaves; a NULL leaf too
        assert 4 not in ids(t.select(columns=["id"], predicate=t["st"]["x"] >= 0, config=ONE_SPLIT).read_all())


# --- select quirks -------------------------------------------------------------------------------------------------


def test_row_order_is_shuffled_and_batches_are_several(double: VastDouble):
    schema = pa.schema([("n", pa.int64())])
    make_table(double, schema, {"n": list(range(40))})
    orders = set()
    batch_counts = set()
    with double.session().transaction() as tx:
        t = tx.bucket("tams").schema("s").table("t")
        for _i in range(8):
            batches = list(t.select())
            batch_counts.add(len(batches))
            orders.add(tuple(pa.Table.from_batches(batches).column("n").to_pylist()))
    assert len(orders) > 1
    assert all(sorted(order) == list(range(40)) for order in orders)
    assert max(batch_counts) >= 2


def test_limit_rows_returns_arbitrary_matching_rows(double: VastDouble):
    schema = pa.schema([("n", pa.int64())])
    make_table(double, schema, {"n": list(range(50))})
    with double.session().transaction() as tx:
        t = tx.bucket("tams").schema("s").table("t")
        picks = set()
        for _i in range(6):
            got = t.select(predicate=t["n"] >= 10, limit_rows=5).read_all().column("n").to_pylist()
            assert len(got) == 5
            assert all(n >= 10 for n in got)
            picks.add(tuple(sorted(got)))
        assert len(picks) > 1  # not always the "first" five
        assert t.select(predicate=t["n"] >= 45, limit_rows=10).read_all().num_rows == 5
        assert t.select(limit_rows=0).read_all().num_rows == 50  # the SDK treats 0 as "no limit"
        with pytest.raises(ValueError, match="limit_rows"):
            t.select(limit_rows=-1)


def test_internal_row_id_is_last_and_appended_to_the_callers_list(wide: VastDouble):
    with wide.session().transaction() as tx:
        t = tx.table_from_metadata(metadata(WIDE))
        columns = ["s", "id"]
        result = t.select(columns=columns, predicate=t["id"] < 3, config=ONE_SPLIT, internal_row_id=True).read_all()
        assert result.schema.names == ["s", "id", ROW_ID]
        assert result.schema.field(ROW_ID).type == pa.uint64()
        assert columns == ["s", "id", ROW_ID]  # the SDK mutates the list it is given: pass a fresh one
        everything = t.select(config=ONE_SPLIT, internal_row_id=True).read_all()
        assert everything.schema.names == [*WIDE.names, ROW_ID]
        assert sorted(everything.column(ROW_ID).to_pylist()) == list(range(8))


def test_false_predicate_returns_an_empty_reader_with_the_schema(wide: VastDouble):
    with wide.session().transaction() as tx:
        t = tx.table_from_metadata(metadata(WIDE))
        result = t.select(columns=["id", "s"], predicate=False, internal_row_id=True).read_all()
    assert result.num_rows == 0
    assert result.schema.names == ["id", "s", ROW_ID]


def test_reader_is_lazy_and_fails_after_the_transaction(wide: VastDouble):
    with wide.session().transaction() as tx:
        t = tx.table_from_metadata(metadata(WIDE))
        unread = t.select(config=ONE_SPLIT)
        half_read = t.select(config=ONE_SPLIT)
        first = half_read.read_next_batch()
        assert 0 < first.num_rows < 8  # several batches
    with pytest.raises(errors.MissingTransaction):
        unread.read_all()
    with pytest.raises(errors.MissingTransaction):
        half_read.read_all()


def test_handle_without_stats_needs_num_splits(wide: VastDouble):
    message = "Select requires either config.num_splits or loaded stats or sorted_table."
    with wide.session().transaction() as tx:
        t = tx.table_from_metadata(metadata(WIDE))
        assert t.stats is None
        with pytest.raises(AssertionError, match=message):
            t.select(config=QueryConfig(data_endpoints=["http://vip"]))
        with pytest.raises(AssertionError, match=message):
            t.select()
        # As in the SDK, that select's endpoint discovery loaded the handle's stats: the next one passes.
        assert t.stats is not None
        assert t.select().read_all().num_rows == 8
    with wide.session().transaction() as tx:
        # predicate=False returns before the split estimation, and the interactive table has stats
        assert tx.table_from_metadata(metadata(WIDE)).select(predicate=False).read_all().num_rows == 0
        assert tx.bucket("tams").schema("s").table("t").select().read_all().num_rows == 8


def test_metadata_can_be_loaded_through_the_double(wide: VastDouble):
    with wide.session().transaction() as tx:
        md = TableMetadata(REF)
        md.load(tx)
        md.load_stats(tx)
        assert md.table_type is TableType.Regular
        assert md.arrow_schema == WIDE
        assert md.stats.num_rows == 8
        assert tx.table_from_metadata(md).select().read_all().num_rows == 8


def test_table_type_must_be_known_to_select(wide: VastDouble):
    with wide.session().transaction() as tx:
        t = tx.table_from_metadata(metadata(WIDE, table_type=None))
        with pytest.raises(ValueError, match="TableType was not loaded"):
            t.select(config=ONE_SPLIT)
        assert t.insert(pa.table({"id": [100]})).to_pylist() == [8]  # insert does not need it


def test_missing_table_shows_on_use_and_stale_handles_are_refused(wide: VastDouble):
    with wide.session().transaction() as tx:
        ghost = tx.table_from_metadata(TableMetadata(TableRef("tams", "s", "ghost"), WIDE, TableType.Regular))
        with pytest.raises(errors.NotFound):
            ghost.select(config=ONE_SPLIT)  # endpoint discovery loads the stats: an RPC on the table
        reader = ghost.select(config=QueryConfig(num_splits=1, data_endpoints=["http://vip"]))  # no RPC yet
        with pytest.raises(errors.NotFound):
            reader.read_all()
        with pytest.raises(errors.NotFound):
            ghost.insert(pa.table({"id": [1]}))
        tx.bucket("tams").schema("s").table("t").drop_column(pa.schema([("f", pa.float64())]))
        with pytest.raises(errors.BadRequest):
            tx.table_from_metadata(metadata(WIDE)).select(config=ONE_SPLIT).read_all()
        assert tx.table_from_metadata(metadata(WIDE.remove(3))).select(config=ONE_SPLIT).read_all().num_rows == 8


# --- writes ----------------------------------------------------------------------------------------------------

SMALL = pa.schema([("k", pa.utf8()), ("v", pa.int64()), ("w", pa.utf8())])


def test_insert_returns_monotonic_row_ids_and_fills_missing_columns(double: VastDouble):
    make_table(double, SMALL)
    session = double.session()
    with session.transaction() as tx:
        t = tx.table_from_metadata(metadata(SMALL))
        first = t.insert(pa.table({"k": ["a", "b"], "v": [1, 2]}, schema=SMALL.remove(2)))
        second = t.insert(pa.record_batch({"w": ["z"]}, schema=pa.schema([("w", pa.utf8())])))
        assert first.type == pa.uint64()
        assert isinstance(first, pa.ChunkedArray)
        assert first.to_pylist() == [0, 1]
        assert second.to_pylist() == [2]
        assert t.insert(pa.table({"k": pa.array([], pa.utf8())})).to_pylist() == []
    with pytest.raises(ZeroDivisionError), session.transaction() as tx:
        tx.table_from_metadata(metadata(SMALL)).insert(pa.table({"v": [9]}))
        raise ZeroDivisionError  # rolled back, but its row id is spent
    with session.transaction() as tx:
        t = tx.table_from_metadata(metadata(SMALL))
        assert t.insert(pa.table({"v": [10]})).to_pylist() == [4]
        rows = t.select(config=ONE_SPLIT).read_all().sort_by("v").to_pylist()
    assert rows == [
        {"k": "a", "v": 1, "w": None},
        {"k": "b", "v": 2, "w": None},
        {"k": None, "v": 10, "w": None},
        {"k": None, "v": None, "w": "z"},
    ]


@pytest.mark.parametrize(
    ("rows", "error"),
    [
        (pa.table({"v": pa.array([1], pa.int32())}), errors.BadRequest),  # int32 is not the table's int64
        (pa.table({"k": pa.array(["x"], pa.large_string())}), errors.BadRequest),
        (pa.table({"nope": [1]}), errors.BadRequest),
        (pa.table({ROW_ID: pa.array([1], pa.uint64())}), errors.BadRequest),
        (pa.table({"k": ["x" * (MAX_CELL_BYTES + 1)]}), errors.BadRequest),
        (pa.table({"k": ["x" * (5 << 20)]}), errors.TooWideRow),
    ],
    ids=["narrower int", "large_string", "unknown column", "row id", "cell over 126 KiB", "cell over 5 MiB"],
)
def test_insert_refuses_what_the_table_cannot_hold(double: VastDouble, rows: pa.Table, error: type):
    make_table(double, SMALL)
    with double.session().transaction() as tx:
        with pytest.raises(error):
            tx.table_from_metadata(metadata(SMALL)).insert(rows)
        assert tx.table_from_metadata(metadata(SMALL)).insert(pa.table({"k": ["x" * MAX_CELL_BYTES]})).to_pylist()


def test_non_nullable_columns_refuse_nulls(double: VastDouble):
    schema = pa.schema([pa.field("k", pa.utf8(), nullable=False), ("v", pa.int64())])
    make_table(double, schema)
    with double.session().transaction() as tx:
        t = tx.table_from_metadata(metadata(schema))
        with pytest.raises(errors.BadRequest):
            t.insert(pa.table({"v": [1]}))
        with pytest.raises(errors.BadRequest):
            t.insert(pa.table({"k": ["a", None]}))
        t.insert(pa.table({"k": ["a"]}))


def test_create_table_validates_schemas(double: VastDouble):
    with double.session().transaction() as tx:
        s = tx.bucket("tams").create_schema("s")
        with pytest.raises(errors.NotSupportedSchema):
            s.create_table("t", pa.schema([("x", pa.binary(4))]))  # refused by the SDK's ibis check
        for server_refused in (pa.null(), pa.dictionary(pa.int32(), pa.utf8()), pa.list_(pa.null())):
            with pytest.raises(errors.NotSupportedSchema):
                s.create_table("t", pa.schema([("x", server_refused)]))
        with pytest.raises(ValueError, match="duplicate"):
            s.create_table("t", pa.schema([("x", pa.int64()), ("x", pa.int64())]))
        with pytest.raises(errors.BadRequest):
            s.create_table("t", pa.schema([("x", pa.int64()), ("x", pa.utf8())]))
        t = s.create_table("t", SMALL)
        with pytest.raises(errors.TableExists):
            s.create_table("t", SMALL)
        assert s.create_table("t", pa.schema([("other", pa.int8())]), fail_if_exists=False).arrow_schema == SMALL
        with pytest.raises(errors.NotSupportedSchema):
            t.add_column(pa.schema([("y", pa.null())]))
        with pytest.raises(errors.BadRequest):
            t.add_column(pa.schema([("k", pa.utf8())]))


def test_update_and_delete_by_row_id(double: VastDouble):
    make_table(double, SMALL, {"k": ["a", "b", "c"], "v": [1, 2, 3], "w": ["x", "y", "z"]})
    with double.session().transaction() as tx:
        t = tx.table_from_metadata(metadata(SMALL))
        hit = t.select(columns=["k", "v"], predicate=t["k"].isin(["a", "b"]), config=ONE_SPLIT, internal_row_id=True)
        rows = hit.read_all()
        doubled = rows.set_column(1, "v", pa.array([v * 10 for v in rows.column("v").to_pylist()], pa.int64()))
        t.update(doubled, columns=["v"])  # only "v": "k" is left alone even though it is in the batch
        t.update(pa.table({ROW_ID: pa.array([2], pa.uint64()), "w": ["zz"]}))  # default: every column but $row_id
        t.delete(rows.filter(pc.equal(rows.column("k"), "a")))
        assert sorted(t.select(config=ONE_SPLIT).read_all().to_pylist(), key=lambda r: r["k"]) == [
            {"k": "b", "v": 20, "w": "y"},
            {"k": "c", "v": 3, "w": "zz"},
        ]


def test_update_and_delete_need_row_ids(double: VastDouble):
    make_table(double, SMALL, {"k": ["a"], "v": [1], "w": ["x"]})
    with double.session().transaction() as tx:
        t = tx.table_from_metadata(metadata(SMALL))
        with pytest.raises(errors.MissingRowIdColumn):
            t.update(pa.table({"v": [2]}))
        with pytest.raises(errors.MissingRowIdColumn):
            t.delete(pa.table({"k": ["a"]}))
        with pytest.raises(errors.BadRequest):  # a row this transaction cannot see
            t.delete(pa.table({ROW_ID: pa.array([99], pa.uint64())}))
        with pytest.raises(errors.BadRequest):
            t.update(pa.table({ROW_ID: pa.array([0], pa.uint64()), "v": pa.array([2], pa.int32())}))
        t.delete(pa.table({ROW_ID: pa.array([], pa.uint64())}))  # nothing to do, nothing sent


def test_writes_need_an_active_transaction(double: VastDouble):
    make_table(double, SMALL)
    with double.session().transaction() as tx:
        t = tx.table_from_metadata(metadata(SMALL))
    with pytest.raises(TransactionNotActiveError):
        t.insert(pa.table({"v": [1]}))
    with pytest.raises(TransactionNotActiveError):
        t.delete(pa.table({ROW_ID: pa.array([0], pa.uint64())}))


# --- transactions --------------------------------------------------------------------------------------------------


def count(tx: Any, ref: TableRef = REF) -> int:
    t = tx.table_from_metadata(TableMetadata(ref, SMALL, TableType.Regular))
    return t.select(config=ONE_SPLIT).read_all().num_rows


def test_snapshot_isolation(double: VastDouble):
    make_table(double, SMALL)
    session = double.session()
    with session.transaction() as before:
        assert count(before) == 0
        with session.transaction() as writer:
            writer.table_from_metadata(metadata(SMALL)).insert(pa.table({"k": ["new"]}))
            assert count(writer) == 1  # its own write
            with session.transaction() as concurrent:
                assert count(concurrent) == 0  # uncommitted
        assert count(before) == 0  # committed after `before` began
        with session.transaction() as after:
            assert count(after) == 1


def test_commit_is_atomic_across_tables_and_ddl_and_rollback_discards(double: VastDouble):
    make_table(double, SMALL)
    session = double.session()
    other = TableRef("tams", "s", "other")
    with pytest.raises(RuntimeError), session.transaction() as tx:
        tx.bucket("tams").schema("s").create_table("other", SMALL).insert(pa.table({"k": ["o"]}))
        tx.table_from_metadata(metadata(SMALL)).insert(pa.table({"k": ["t"]}))
        raise RuntimeError("boom")
    with session.transaction() as tx:
        assert tx.bucket("tams").schema("s").tablenames() == ["t"]
        assert count(tx) == 0
    with session.transaction() as tx:
        tx.bucket("tams").schema("s").create_table("other", SMALL).insert(pa.table({"k": ["o"]}))
        tx.table_from_metadata(metadata(SMALL)).insert(pa.table({"k": ["t"]}))
        with session.transaction() as concurrent:
            assert concurrent.bucket("tams").schema("s").table("other", fail_if_missing=False) is None
    with session.transaction() as tx:
        assert (count(tx), count(tx, other)) == (1, 1)
    assert double.committed_rows(other).column("k").to_pylist() == ["o"]


def test_concurrent_writes_to_one_table_merge_without_row_conflicts(double: VastDouble):
    make_table(double, SMALL, {"k": ["a", "b"], "v": [1, 2], "w": ["x", "y"]})
    session = double.session()
    tx1 = session.transaction().__enter__()
    tx2 = session.transaction().__enter__()
    t1 = tx1.table_from_metadata(metadata(SMALL))
    t2 = tx2.table_from_metadata(metadata(SMALL))
    t1.insert(pa.table({"k": ["c"]}))
    t2.insert(pa.table({"k": ["d"]}))
    t1.update(pa.table({ROW_ID: pa.array([0], pa.uint64()), "v": [10]}))
    t2.update(pa.table({ROW_ID: pa.array([0], pa.uint64()), "w": ["xx"]}))  # another column of the same row
    t1.delete(pa.table({ROW_ID: pa.array([1], pa.uint64())}))
    t2.update(pa.table({ROW_ID: pa.array([1], pa.uint64()), "v": [20]}))  # of a row tx1 deletes
    tx1.__exit__(None, None, None)
    tx2.__exit__(None, None, None)  # no row-level conflict is simulated
    with session.transaction() as tx:
        rows = sorted(
            tx.table_from_metadata(metadata(SMALL)).select(config=ONE_SPLIT).read_all().to_pylist(),
            key=lambda r: r["k"],
        )
    assert rows == [
        {"k": "a", "v": 10, "w": "xx"},
        {"k": "c", "v": None, "w": None},
        {"k": "d", "v": None, "w": None},
    ]


def test_concurrent_ddl_conflicts(double: VastDouble):
    make_table(double, SMALL)
    session = double.session()
    # Two live transactions create the same table: the second one conflicts, and its commit fails too.
    tx1 = session.transaction().__enter__()
    tx2 = session.transaction().__enter__()
    tx1.bucket("tams").schema("s").create_table("x", SMALL)
    with pytest.raises(errors.Conflict):
        tx2.bucket("tams").schema("s").create_table("x", SMALL)
    tx1.__exit__(None, None, None)
    with pytest.raises(errors.Conflict):
        tx2.__exit__(None, None, None)
    # A transaction that began before a committed create cannot create the same name (nor commit afterwards).
    with pytest.raises(errors.Conflict), session.transaction() as late:
        with session.transaction() as early_winner:
            early_winner.bucket("tams").create_schema("s2")
        with pytest.raises(errors.Conflict):
            late.bucket("tams").create_schema("s2")
    # Concurrent renames of one column: the second conflicts, as in the SDK's test_rename_column.
    with pytest.raises(errors.Conflict), session.transaction() as tx1, session.transaction() as tx2:
        tx1.bucket("tams").schema("s").table("t").rename_column("v", "vv")
        with pytest.raises(errors.Conflict):
            tx2.bucket("tams").schema("s").table("t").rename_column("v", "vvv")
    with session.transaction() as tx:
        assert tx.bucket("tams").schema("s").table("t").arrow_schema == SMALL  # neither rename survived
        assert double.stats.conflicts >= 4


def test_schema_ddl_and_isolation(double: VastDouble):
    make_table(double, SMALL, {"k": ["a"], "v": [1], "w": ["x"]})
    session = double.session()
    with pytest.raises(errors.Conflict), session.transaction() as tx:
        tx.bucket("tams").schema("s").drop()  # it still holds a table
    with session.transaction() as tx, session.transaction() as concurrent:
        t = tx.bucket("tams").schema("s").table("t")
        t.add_column(pa.schema([("n", pa.int32())]))
        assert t.arrow_schema.names == ["k", "v", "w", "n"]
        assert t.select(columns=["n"]).read_all().column("n").to_pylist() == [None]
        assert concurrent.bucket("tams").schema("s").table("t").arrow_schema == SMALL
    with session.transaction() as tx:
        bucket = tx.bucket("tams")
        assert [s.name for s in bucket.schemas()] == ["s"]
        nested = bucket.schema("s").create_schema("child")
        assert nested.name == "s/child"
        assert [s.name for s in bucket.schema("s").schemas()] == ["s/child"]
        nested.drop()
        t = bucket.schema("s").table("t")
        t.rename("t2")
        assert t.ref == TableRef("tams", "s", "t2")
        assert bucket.schema("s").tablenames() == ["t2"]
        t.drop()
        bucket.schema("s").drop()
        with pytest.raises(errors.MissingSchema):
            bucket.schema("s")
        with pytest.raises(errors.MissingBucket):
            tx.bucket("elsewhere")


def test_many_threads_each_with_its_own_transactions(double: VastDouble):
    make_table(double, SMALL)
    failures: list[BaseException] = []

    def work(worker: int) -> None:
        session = double.session()
        try:
            for i in range(25):
                with session.transaction() as tx:
                    t = tx.table_from_metadata(metadata(SMALL))
                    t.insert(pa.table({"k": [f"{worker}-{i}"], "v": [worker]}))
                    mine = t.select(columns=["k"], predicate=t["v"] == worker, config=ONE_SPLIT).read_all()
                    assert mine.num_rows == i + 1  # own writes plus own earlier commits
        except BaseException as e:  # reported by the main thread
            failures.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    rows = double.committed_rows(REF)
    assert rows.num_rows == 200
    assert len(set(rows.column(ROW_ID).to_pylist())) == 200


def test_stats_count_work(wide: VastDouble):
    before = wide.stats
    with wide.session().transaction() as tx:
        t = tx.table_from_metadata(metadata(WIDE))
        t.select(columns=["id"], predicate=t["a"] < 3, config=ONE_SPLIT).read_all()
    spent = wide.stats - before
    assert (spent.transactions, spent.commits, spent.selects) == (1, 1, 1)
    assert (spent.rows_scanned, spent.rows_read) == (8, 2)


# --- canary --------------------------------------------------------------------------------------------------------

CANARY_SHA256 = "4167085340573a8f2194bb26381f16fd65aadc417ea2af48b7e0a603ec550367"


def test_canary_pinned_sdk_request_builder_is_unchanged():
    """The double calls the SDK's private ``build_query_data_request``; when the SDK changes, re-check the double
    (the predicate table above, ``_select_prepare``'s logic) against the new version, then update this hash."""
    assert importlib.metadata.version("vastdb") == "2.1.0"
    schema = pa.schema(
        [
            ("flow_id", pa.utf8()),
            ("ts_start", pa.int64()),
            ("ts_end", pa.int64()),
            ("tag", pa.utf8()),
            ("ok", pa.bool_()),
        ]
    )
    t = ibis.table(ibis.Schema.from_pyarrow(schema), "tams/s/segments")
    predicate = (
        (t.flow_id == "f")
        & (t.ts_start < 10)
        & (t.ts_end > 5)
        & (t.tag.isin(["a", "b"]) | t.tag.isnull())
        & t.flow_id.startswith("f")
    )
    request = build_query_data_request(
        schema=pa.schema([pa.field(ROW_ID, pa.uint64()), *schema]),
        predicate=predicate,
        # Every predicate column is projected: the builder adds the others from a set, in hash-seed order.
        field_names=["ts_start", "ok", "flow_id", "ts_end", "tag", ROW_ID],
    )
    assert hashlib.sha256(bytes(request.serialized)).hexdigest() == CANARY_SHA256
    assert request.response_schema.names == ["ts_start", "ok", "flow_id", "ts_end", "tag", ROW_ID]
