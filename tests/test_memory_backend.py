"""The in-memory reference backend, called directly: cost of queries and safety under threads."""

from __future__ import annotations

import itertools
import random
import threading
import uuid

import pytest
from conftest import allocate_in_backend

from backends import memory, rules
from backends.base import BackendServices, PageRequest, SegmentQuery, UrlOptions
from backends.errors import NotFound
from backends.events import DiscardEvents
from backends.timerange import TimeRange

NO_URLS = UrlOptions(accept_get_urls=())
SECOND = 1_000_000_000


class _Signer:
    def sign(self, method: str, storage_id: str, object_id: str) -> str:
        return f"http://media/{storage_id}/{object_id}"


def new_backend() -> memory.MemoryBackend:
    return memory.create({}, BackendServices(signer=_Signer(), events=DiscardEvents()))


def new_flow(backend: memory.MemoryBackend, source_id: str | None = None) -> str:
    flow_id = str(uuid.uuid4())
    flow = {
        "id": flow_id,
        "source_id": source_id or str(uuid.uuid4()),
        "format": "urn:x-nmos:format:data",
        "codec": "text/plain",
        "container": "text/plain",
        "essence_parameters": {},
    }
    backend.put_flow(flow_id, flow)
    return flow_id


def segment(start_s: int, end_s: int) -> dict:
    return {"object_id": f"obj-{start_s}", "timerange": f"[{start_s}:0_{end_s}:0)"}


def test_concurrent_writers_never_store_overlapping_segments() -> None:
    backend = new_backend()
    flow_id = new_flow(backend)
    rng = random.Random(7)
    batches = [[segment(s, s + rng.randint(1, 5)) for s in rng.sample(range(400), 60)] for _ in range(8)]
    allocate_in_backend(backend, flow_id, (b["object_id"] for batch in batches for b in batch))
    failures: list[int] = []

    def write(batch: list[dict]) -> None:
        failures.append(len(backend.add_segments(flow_id, batch)))

    threads = [threading.Thread(target=write, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    stored = backend.list_segments(flow_id, SegmentQuery(), NO_URLS, PageRequest(limit=1000)).items
    ranges = [TimeRange.parse(s["timerange"]) for s in stored]
    assert len(stored) == sum(len(b) for b in batches) - sum(failures)
    assert sum(failures) < sum(len(b) for b in batches)  # some were stored: the writers did race
    assert all(not a.overlaps(b) for a, b in itertools.pairwise(ranges))
    assert ranges == sorted(ranges, key=TimeRange.start_key)


def test_replacing_a_flow_keeps_its_source_metadata() -> None:
    backend = new_backend()
    source_id = str(uuid.uuid4())
    flow_id = new_flow(backend, source_id)
    backend.set_source_field(source_id, "label", "studio 1")
    flow = backend.get_flow(flow_id)
    backend.put_flow(flow_id, {**flow, "label": "new"})
    assert backend.get_source(source_id)["label"] == "studio 1"


def test_moving_the_last_flow_to_another_source_deletes_the_old_source() -> None:
    backend = new_backend()
    old_source = str(uuid.uuid4())
    flow_id = new_flow(backend, old_source)
    new_source = str(uuid.uuid4())
    backend.put_flow(flow_id, {**backend.get_flow(flow_id), "source_id": new_source})
    assert backend.get_source(new_source)["id"] == new_source
    with pytest.raises(NotFound):
        backend.get_source(old_source)


def test_a_page_key_on_a_flow_without_segments_gives_an_empty_page() -> None:
    backend = new_backend()
    flow_id = new_flow(backend)
    key = rules.encode_cursor("[0:0_1:0)")
    for reverse in (False, True):
        query = SegmentQuery(reverse_order=reverse)
        page = backend.list_segments(flow_id, query, NO_URLS, PageRequest(page=key))
        assert page.items == []
        assert page.next_key is None
