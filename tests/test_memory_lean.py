"""The in-memory reference backend's compact records: small, and still exactly right.

Segments are stored as their timerange's bound keys packed into ints, objects as slotted records
sharing what most objects share; these tests hold the memory they take and check that listing,
paging and object references give what the TAMS rules say, on the cases the packing could get wrong
(a segment starting just after another's instant, huge timestamps, objects used several times).
"""

from __future__ import annotations

import gc
import random
import tracemalloc
import uuid

import pytest
from conftest import allocate_in_backend

from backends import memory
from backends.base import BackendServices, PageRequest, SegmentQuery, UrlOptions
from backends.errors import NotFound
from backends.events import DiscardEvents
from backends.memory import core
from backends.timerange import TimeRange

NO_URLS = UrlOptions(accept_get_urls=())


class _Signer:
    def sign(self, method: str, storage_id: str, object_id: str) -> str:
        return f"http://media/{storage_id}/{object_id}"


def new_backend() -> memory.MemoryBackend:
    return memory.create({}, BackendServices(signer=_Signer(), events=DiscardEvents()))


def new_flow(backend: memory.MemoryBackend) -> str:
    flow_id = str(uuid.uuid4())
    flow = {
        "id": flow_id,
        "source_id": str(uuid.uuid4()),
        "format": "urn:x-nmos:format:data",
        "codec": "text/plain",
        "container": "text/plain",
        "essence_parameters": {},
    }
    backend.put_flow(flow_id, flow)
    return flow_id


def listed(backend: memory.MemoryBackend, flow_id: str, query: SegmentQuery, limit: int) -> list[str]:
    """Every page of a listing, followed by its page keys."""
    out: list[str] = []
    page = PageRequest(limit=limit)
    while True:
        result = backend.list_segments(flow_id, query, NO_URLS, page)
        out += [s["timerange"] for s in result.items]
        if result.next_key is None:
            return out
        page = PageRequest(limit=limit, page=result.next_key)


def test_a_segment_and_its_object_take_under_400_bytes() -> None:
    """What the issue asks of the reference store (there measured as RSS growth at 10^6 segments by
    ``tools.bench_memory``; here the Python allocations at 5,000, which it tracks closely)."""
    backend = new_backend()
    flow_id = new_flow(backend)
    count = 5_000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for start in range(0, count, 1000):
            bodies = [{"object_id": f"obj-{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(start, start + 1000)]
            allocate_in_backend(backend, flow_id, (b["object_id"] for b in bodies))
            assert backend.add_segments(flow_id, bodies) == []
        del bodies
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # RSS adds the allocator's rounding and free space (~10%): 380 here is about 400 there.
    assert grown / count < 380, f"{grown / count:.0f} bytes per segment"


def test_a_timerange_query_looks_at_the_segments_it_returns_not_the_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flat in flow size: a 10-segment answer out of 20,000 materialises a few timeranges, not all."""
    backend = new_backend()
    flow_id = new_flow(backend)
    bodies = [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(20_000)]
    allocate_in_backend(backend, flow_id, (b["object_id"] for b in bodies))
    assert backend.add_segments(flow_id, bodies) == []
    calls = 0
    timerange = core._Segment.timerange

    def counted(segment: core._Segment) -> TimeRange:
        nonlocal calls
        calls += 1
        return timerange.fget(segment)

    monkeypatch.setattr(core._Segment, "timerange", property(counted))
    query = SegmentQuery(timerange=TimeRange.parse("[12345:500000000_12355:0)"))
    page = backend.list_segments(flow_id, query, NO_URLS, PageRequest())
    assert [s["timerange"] for s in page.items[:1]] == ["[12345:0_12346:0)"] and len(page.items) == 10
    assert calls <= 20, f"{calls} timeranges built for a 10-segment answer out of 20,000"


def _random_segments(rng: random.Random, count: int) -> list[TimeRange]:
    """Non-overlapping segments with every kind of bound, several starting where others end."""
    ranges: list[TimeRange] = []
    at = 0
    while len(ranges) < count:
        at += rng.choice([0, 0, 1, 2])  # 0: the next starts at this one's end
        length = rng.choice([0, 1, 3])
        include_end = length == 0 or rng.random() < 0.3
        after_instant = bool(ranges) and ranges[-1].end == at and ranges[-1].include_end
        include_start = not after_instant and rng.random() < 0.7
        candidate = TimeRange(at, at + length, include_start=include_start, include_end=include_end)
        if candidate.is_empty or (ranges and candidate.overlaps(ranges[-1])):
            continue
        ranges.append(candidate)
        at += length
    return ranges


def test_listing_pages_and_reverse_order_agree_with_the_timerange_rules() -> None:
    """Brute force: for random queries, the listing is exactly the stored segments overlapping the
    query (``TimeRange.overlaps``) in ``start_key`` order, over every page, either way round."""
    rng = random.Random(13)
    backend = new_backend()
    flow_id = new_flow(backend)
    scale = 10**9 // 4  # quarter seconds, so bounds are not all whole seconds
    stored = [
        TimeRange(r.start * scale, r.end * scale, include_start=r.include_start, include_end=r.include_end)
        for r in _random_segments(rng, 300)
    ]
    rng.shuffle(stored)
    bodies = [{"object_id": f"o{i}", "timerange": str(r)} for i, r in enumerate(stored)]
    allocate_in_backend(backend, flow_id, (b["object_id"] for b in bodies))
    assert backend.add_segments(flow_id, bodies) == []
    stored.sort(key=TimeRange.start_key)
    span = stored[-1].end
    for _ in range(150):
        a, b = sorted(rng.randrange(-scale, span + scale) for _ in range(2))
        query = TimeRange(
            rng.choice([a, None]),
            rng.choice([b, None]),
            include_start=rng.random() < 0.5,
            include_end=rng.random() < 0.5,
        )
        expected = [str(r) for r in stored if r.overlaps(query)]
        limit = rng.choice([1, 3, 1000])
        assert listed(backend, flow_id, SegmentQuery(timerange=query), limit) == expected, (str(query), limit)
        reverse = SegmentQuery(timerange=query, reverse_order=True)
        assert listed(backend, flow_id, reverse, limit) == expected[::-1], (str(query), limit)


def test_overlap_is_refused_exactly_at_the_bounds() -> None:
    backend = new_backend()
    flow_id = new_flow(backend)
    allocate_in_backend(backend, flow_id, [f"o{i}" for i in range(8)])

    def add(object_id: str, timerange: str) -> bool:
        return backend.add_segments(flow_id, [{"object_id": object_id, "timerange": timerange}]) == []

    assert add("o0", "[10:0_20:0)")
    assert not add("o1", "[19:999999999_21:0)")
    assert add("o1", "[20:0]")  # an instant at the exclusive end
    assert add("o2", "(20:0_25:0)")  # starting just after that instant
    assert not add("o4", "[5:0_10:0]")  # reaching the inclusive start
    assert add("o4", "[5:0_10:0)")
    assert listed(backend, flow_id, SegmentQuery(), 100)[:4] == ["[5:0_10:0)", "[10:0_20:0)", "[20:0]", "(20:0_25:0)"]


def test_huge_timestamps_stay_exact() -> None:
    backend = new_backend()
    flow_id = new_flow(backend)
    allocate_in_backend(backend, flow_id, ["a", "b"])
    far = "123456789012345678901234567890"
    first, second = f"[{far}:999999998_{far}:999999999)", f"[{far}:999999999_{far}1:0]"
    assert backend.add_segments(flow_id, [{"object_id": "a", "timerange": first}]) == []
    assert backend.add_segments(flow_id, [{"object_id": "b", "timerange": second}]) == []
    query = SegmentQuery(timerange=TimeRange.parse(f"[{far}:999999999]"))
    assert listed(backend, flow_id, query, 10) == [second]
    assert backend.get_flow(flow_id, include_timerange=True)["timerange"] == f"[{far}:999999998_{far}1:0]"


def test_an_object_keeps_its_facts_and_references_as_its_segments_come_and_go() -> None:
    backend = new_backend()
    flows = [new_flow(backend) for _ in range(2)]
    allocate_in_backend(backend, flows[0], ["shared", "shifted"])
    # Registered once, its timerange is its segment's; then used again, by both flows.
    segment = {"object_id": "shared", "timerange": "[0:0_1:0)"}
    assert backend.add_segments(flows[0], [segment]) == []
    assert backend.add_segments(flows[0], [{**segment, "timerange": "[5:0_6:0)", "ts_offset": "5:0"}]) == []
    assert backend.add_segments(flows[1], [{**segment, "timerange": "[7:0_8:0)", "ts_offset": "7:0"}]) == []
    # Its facts may differ from its segment's timerange.
    shifted = {"object_id": "shifted", "timerange": "[2:0_3:0)", "ts_offset": "-1:0", "key_frame_count": 1}
    assert backend.add_segments(flows[0], [shifted]) == []

    def shown(object_id: str) -> dict:
        return backend.get_object(object_id, PageRequest(), NO_URLS)[0]

    assert shown("shared") == {
        "id": "shared",
        "referenced_by_flows": sorted(flows),
        "first_referenced_by_flow": flows[0],
        "timerange": "[0:0_1:0)",
    }
    assert shown("shifted")["timerange"] == "[3:0_4:0)" and shown("shifted")["key_frame_count"] == 1
    query = SegmentQuery(include_object_timerange=True)
    views = backend.list_segments(flows[0], query, NO_URLS, PageRequest()).items
    assert [(v["timerange"], v["object_timerange"]) for v in views] == [
        ("[0:0_1:0)", "[0:0_1:0)"),
        ("[2:0_3:0)", "[3:0_4:0)"),
        ("[5:0_6:0)", "[0:0_1:0)"),
    ]
    assert views[0] == {"object_id": "shared", "timerange": "[0:0_1:0)", "object_timerange": "[0:0_1:0)"}
    assert views[2]["ts_offset"] == "5:0"
    # The segment that registered it goes; its facts stay, and so do the other references.
    backend.delete_segments(flows[0], TimeRange.parse("[0:0_1:0)"), None)
    assert shown("shared")["timerange"] == "[0:0_1:0)"
    assert shown("shared")["referenced_by_flows"] == sorted(flows)
    backend.delete_segments(flows[0], TimeRange.eternity(), "shared")
    assert shown("shared")["referenced_by_flows"] == [flows[1]]
    assert "first_referenced_by_flow" not in shown("shared")  # its first flow left it
    backend.delete_segments(flows[1], TimeRange.eternity(), None)
    assert shown("shared") == {"id": "shared", "referenced_by_flows": [], "timerange": "[0:0_1:0)"}
    # Registered again, it keeps the facts of its first registration.
    assert backend.add_segments(flows[1], [{**segment, "timerange": "[9:0_10:0)", "ts_offset": "9:0"}]) == []
    assert shown("shared")["timerange"] == "[0:0_1:0)"
    assert shown("shared")["first_referenced_by_flow"] == flows[1]


def test_an_external_object_is_forgotten_with_its_last_segment() -> None:
    backend = new_backend()
    flow_id = new_flow(backend)
    urls = [{"url": "http://elsewhere/x", "label": "there"}]
    bodies = [{"object_id": "ext", "timerange": f"[{i}:0_{i + 1}:0)", "get_urls": urls} for i in range(3)]
    assert backend.add_segments(flow_id, bodies) == []
    for at in range(3):
        assert backend.get_object("ext", PageRequest())[0]["referenced_by_flows"] == [flow_id]
        backend.delete_segments(flow_id, TimeRange.parse(f"[{at}:0_{at + 1}:0)"), None)
    assert backend.list_segments(flow_id, SegmentQuery(), NO_URLS, PageRequest()).items == []
    with pytest.raises(NotFound):
        backend.get_object("ext", PageRequest())
