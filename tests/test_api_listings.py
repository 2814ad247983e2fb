"""8.2 listings: orders (ADR-0052), keyset page keys, new filters, any-of and list-valued tags,
paged storage backends and delete requests, and how 7.0 sees all of it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Tams, TamsClient, flow_body, fresh_app, new_id

from backends import deletion, ordering
from backends.base import FlowQuery, ListingOrder, PageRequest, TagFilter
from backends.rules import matches_flow, matches_tags
from backends.timerange import TimeRange

BOTH = pytest.mark.versions("7.0", "8.2")
V82 = pytest.mark.versions("8.2")


@pytest.fixture
def clients(app_template: Any) -> Iterator[tuple[TamsClient, TamsClient]]:
    """A 7.0 and an 8.2 client of one app (one store)."""
    app = fresh_app(app_template)
    with TamsClient(app, "7.0") as old, TamsClient(app, "8.2") as new:
        yield old, new


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()]


def all_pages(tams: Tams, path: str, **params: Any) -> list[str]:
    return [item["id"] for response in tams.pages(path, **params) for item in response.json()]


def put_flows(tams: Tams, count: int, **fields: Any) -> list[str]:
    made = []
    for _ in range(count):
        made.append(tams.put_flow(**fields)["id"])
        time.sleep(0.002)  # distinct ``created`` stamps
    return made


# --- the order rule itself ---------------------------------------------------------------------


def test_order_puts_missing_keys_last_ties_by_id_and_reverse_turns_it_all_around() -> None:
    items = [
        {"id": "4", "label": "b"},
        {"id": "2"},
        {"id": "3", "label": "a"},
        {"id": "1"},
        {"id": "0", "label": "a"},
    ]
    by_label = ListingOrder("label", newest_first=False)
    assert [i["id"] for i in ordering.sort(items, by_label)] == ["0", "3", "4", "1", "2"]
    reverse = ListingOrder("label", newest_first=False, reverse=True)
    assert [i["id"] for i in ordering.sort(items, reverse)] == ["2", "1", "4", "3", "0"]
    newest = ListingOrder("label", newest_first=True)
    assert [i["id"] for i in ordering.sort(items, newest)] == ["4", "0", "3", "1", "2"]


def test_keyset_pages_resume_after_the_last_position_even_when_items_change() -> None:
    items = [
        {"id": str(i), "created": "2026-01-01T00:00:00Z" if i % 2 else f"2026-01-0{i + 1}T00:00:00Z"} for i in range(6)
    ]
    order = ListingOrder()
    first = ordering.ordered_page(items, order, PageRequest(limit=2))
    assert [i["id"] for i in first.items] == ["4", "2"]
    # The first listed item goes away: the next page neither skips nor repeats.
    rest = [i for i in items if i["id"] != "4"]
    second = ordering.ordered_page(rest, order, PageRequest(limit=10, page=first.next_key))
    assert [i["id"] for i in second.items] == ["0", "1", "3", "5"]
    assert second.next_key is None


def test_the_tag_matcher_is_any_of_and_looks_inside_lists() -> None:
    flow = {"tags": {"genre": ["news", "sport"], "lang": "en"}}
    assert matches_tags(flow, TagFilter({"genre": frozenset({"sport", "drama"})}))
    assert matches_tags(flow, TagFilter({"lang": frozenset({"fr", "en"})}))
    assert not matches_tags(flow, TagFilter({"genre": frozenset({"news,sport"})}))
    assert not matches_tags(flow, TagFilter({"missing": frozenset({"x"})}))


def test_profile_id_and_status_filters_read_the_stored_fields() -> None:
    profiled = {"id": new_id(), "profile_id": "p1", "status": "ingesting"}
    assert matches_flow(profiled, FlowQuery(profile_id="p1", status="ingesting"))
    assert not matches_flow(profiled, FlowQuery(profile_id="p2"))
    assert not matches_flow({"id": new_id()}, FlowQuery(status="ingesting"))


# --- /flows and /sources order -----------------------------------------------------------------


@BOTH
def test_flows_are_listed_newest_first_by_default(client: TamsClient, tams: Tams) -> None:
    made = put_flows(tams, 4)
    assert ids(client.get("/flows")) == made[::-1]
    assert all_pages(tams, "/flows", limit=3) == made[::-1]


@V82
def test_flows_by_label_missing_labels_last_and_reverse(client: TamsClient, tams: Tams) -> None:
    b = tams.put_flow(label="b")["id"]
    a = tams.put_flow(label="a")["id"]
    unlabelled = sorted(tams.put_flow()["id"] for _ in range(2))
    response = client.get("/flows", params={"sort_by": "label"})
    assert ids(response) == [a, b, *unlabelled]
    assert response.headers["x-paging-reverse-order"] == "false"
    assert response.headers["x-paging-count"] == "4"
    response = client.get("/flows", params={"sort_by": "label", "reverse_order": "true"})
    assert ids(response) == [*unlabelled[::-1], b, a]
    assert response.headers["x-paging-reverse-order"] == "true"


@V82
def test_flows_paged_across_ties_list_each_flow_once_in_id_order(client: TamsClient, tams: Tams) -> None:
    same = sorted(tams.put_flow(label="same")["id"] for _ in range(5))
    for reverse in ("false", "true"):
        listed = all_pages(tams, "/flows", sort_by="label", reverse_order=reverse, limit=2)
        assert listed == (same if reverse == "false" else same[::-1])
    response = client.get("/flows", params={"sort_by": "label", "limit": 2})
    assert response.headers["x-paging-count"] == "2"


@V82
def test_flows_by_metadata_updated_follow_edits(client: TamsClient, tams: Tams) -> None:
    made = put_flows(tams, 3)
    assert client.put(f"/flows/{made[0]}/label", json="edited").status_code == 204
    assert ids(client.get("/flows", params={"sort_by": "metadata_updated"}))[0] == made[0]
    assert ids(client.get("/flows", params={"sort_by": "created"}))[-1] == made[0]


@V82
def test_a_page_key_of_one_order_is_refused_under_another(client: TamsClient, tams: Tams) -> None:
    put_flows(tams, 3)
    key = client.get("/flows", params={"limit": 1}).headers["x-paging-nextkey"]
    assert client.get("/flows", params={"limit": 1, "page": key}).status_code == 200
    for other in ({"sort_by": "label"}, {"reverse_order": "true"}):
        response = client.get("/flows", params={"limit": 1, "page": key, **other})
        assert response.status_code == 400


@V82
def test_sources_by_created_updated_and_label(client: TamsClient, tams: Tams) -> None:
    sources = [tams.get_flow(f)["source_id"] for f in put_flows(tams, 3)]
    assert ids(client.get("/sources")) == sources[::-1]
    assert client.put(f"/sources/{sources[0]}/label", json="z").status_code == 204
    assert ids(client.get("/sources", params={"sort_by": "updated"}))[0] == sources[0]
    by_label = ids(client.get("/sources", params={"sort_by": "label"}))
    assert by_label[0] == sources[0]
    assert by_label[1:] == sorted(sources[1:])
    response = client.get("/sources", params={"sort_by": "label", "reverse_order": "true", "limit": 2})
    assert response.headers["x-paging-count"] == "2"
    assert ids(response) == sorted(sources[1:])[::-1]


# --- filters -----------------------------------------------------------------------------------


@V82
def test_flows_filtered_by_status(client: TamsClient, tams: Tams) -> None:
    ingesting = tams.put_flow(status="ingesting")["id"]
    tams.put_flow(status="closed_complete")
    tams.put_flow()
    assert ids(client.get("/flows", params={"status": "ingesting"})) == [ingesting]
    assert tams.get_flow(ingesting)["status"] == "ingesting"
    with client.unchecked():
        assert client.get("/flows", params={"status": "bogus"}).status_code == 400


@V82
def test_flows_filtered_by_init_segments_unset_counting_as_false(client: TamsClient, tams: Tams) -> None:
    essence = {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 25}}
    with_init = tams.put_flow(essence_parameters={**essence, "init_segments": True})["id"]
    explicit_false = tams.put_flow(essence_parameters={**essence, "init_segments": False})["id"]
    unset = tams.put_flow()["id"]
    assert ids(client.get("/flows", params={"init_segments": "true"})) == [with_init]
    assert set(ids(client.get("/flows", params={"init_segments": "false"}))) == {explicit_false, unset}


def _collection(tams: Tams) -> tuple[str, str, str]:
    """A flow collecting another, and a third on its own: (collector, member, alone)."""
    member = tams.put_flow()["id"]
    alone = tams.put_flow()["id"]
    collector = tams.put_flow("multi", flow_collection=[{"id": member, "role": "video"}])["id"]
    return collector, member, alone


@V82
def test_flows_filtered_by_collected_by_ids(client: TamsClient, tams: Tams) -> None:
    collector, member, alone = _collection(tams)
    assert ids(client.get("/flows", params={"collected_by_ids": collector})) == [member]
    assert ids(client.get("/flows", params={"collected_by_ids": f"{new_id()},{collector}"})) == [member]
    assert set(ids(client.get("/flows", params={"collected_by_ids": ""}))) == {collector, alone}
    assert ids(client.get("/flows", params={"collected_by_ids": new_id()})) == []


@V82
def test_sources_filtered_by_collected_by_ids(client: TamsClient, tams: Tams) -> None:
    collector, member, alone = _collection(tams)
    source = {f: tams.get_flow(f)["source_id"] for f in (collector, member, alone)}
    assert ids(client.get("/sources", params={"collected_by_ids": source[collector]})) == [source[member]]
    top = set(ids(client.get("/sources", params={"collected_by_ids": ""})))
    assert top == {source[collector], source[alone]}


# --- tags --------------------------------------------------------------------------------------


@V82
def test_tag_filters_are_any_of_under_82_and_match_list_elements(client: TamsClient, tams: Tams) -> None:
    news = tams.put_flow(tags={"genre": "news"})["id"]
    both = tams.put_flow(tags={"genre": ["sport", "drama"]})["id"]
    tams.put_flow(tags={"genre": "weather"})
    tams.put_flow(tags={"genre": "news,sport"})
    assert set(ids(client.get("/flows", params={"tag.genre": "news,sport"}))) == {news, both}
    assert ids(client.get("/flows", params={"tag.genre": "drama"})) == [both]
    source = tams.get_flow(both)["source_id"]
    assert client.put(f"/sources/{source}/tags/genre", json=["a", "b"]).status_code == 204
    assert ids(client.get("/sources", params={"tag.genre": "x,b"})) == [source]


@pytest.mark.versions("7.0")
def test_tag_filter_under_70_is_an_exact_string(client: TamsClient, tams: Tams) -> None:
    tams.put_flow(tags={"genre": "news"})
    comma = tams.put_flow(tags={"genre": "news,sport"})["id"]
    assert ids(client.get("/flows", params={"tag.genre": "news,sport"})) == [comma]


@V82
def test_list_tags_are_stored_from_82_and_shown_joined_to_70(clients: tuple[TamsClient, TamsClient]) -> None:
    old, new = clients
    body = flow_body(tags={"genre": ["news", "sport"], "plain": "x"})
    assert new.put(f"/flows/{body['id']}", json=body).json()["tags"]["genre"] == ["news", "sport"]
    flow_id, source_id = body["id"], body["source_id"]
    assert new.put(f"/flows/{flow_id}/tags/lang", json=["en", "fr"]).status_code == 204
    assert new.put(f"/sources/{source_id}/tags/k", json=["1", "2"]).status_code == 204
    assert new.get(f"/flows/{flow_id}/tags/lang").json() == ["en", "fr"]
    assert new.get(f"/flows/{flow_id}").json()["tags"] == {
        "genre": ["news", "sport"],
        "plain": "x",
        "lang": ["en", "fr"],
    }
    # 7.0 sees one string per tag, elements joined by commas, everywhere tags appear.
    assert old.get(f"/flows/{flow_id}").json()["tags"] == {"genre": "news,sport", "plain": "x", "lang": "en,fr"}
    assert old.get("/flows").json()[0]["tags"]["genre"] == "news,sport"
    assert old.get(f"/flows/{flow_id}/tags").json()["lang"] == "en,fr"
    assert old.get(f"/flows/{flow_id}/tags/genre").json() == "news,sport"
    assert old.get(f"/sources/{source_id}").json()["tags"] == {"k": "1,2"}
    assert old.get("/sources").json()[0]["tags"] == {"k": "1,2"}
    assert old.get(f"/sources/{source_id}/tags/k").json() == "1,2"
    # A 7.0 filter on one element still finds the flow; 8.2 keeps the list.
    assert ids(old.get("/flows", params={"tag.genre": "sport"})) == [flow_id]
    assert old.put(f"/flows/{flow_id}/tags/genre", json="weather").status_code == 204
    assert new.get(f"/flows/{flow_id}/tags/genre").json() == "weather"


@V82
def test_status_written_under_82_is_kept_and_hidden_under_70(clients: tuple[TamsClient, TamsClient]) -> None:
    """7.0 has no flow status: its view leaves it out (as every 8.x-only field), the store keeps it."""
    old, new = clients
    body = flow_body(status="awaiting_content")
    assert new.put(f"/flows/{body['id']}", json=body).status_code == 201
    assert "status" not in old.get(f"/flows/{body['id']}").json()
    assert new.get(f"/flows/{body['id']}").json()["status"] == "awaiting_content"
    assert ids(new.get("/flows", params={"status": "awaiting_content"})) == [body["id"]]


@V82
def test_flows_written_under_70_list_in_the_same_order_under_both(clients: tuple[TamsClient, TamsClient]) -> None:
    old, new = clients
    made = []
    for _ in range(3):
        body = flow_body()
        assert old.put(f"/flows/{body['id']}", json=body).status_code == 201
        made.append(body["id"])
        time.sleep(0.002)
    assert ids(old.get("/flows")) == ids(new.get("/flows")) == made[::-1]


# --- storage backends and delete requests ------------------------------------------------------


@V82
def test_storage_backends_are_paged_and_filtered_by_tags(client: TamsClient) -> None:
    response = client.get("/service/storage-backends", params={"limit": 1})
    assert len(response.json()) == 1
    assert response.headers["x-paging-count"] == "1"
    assert response.headers["x-paging-reverse-order"] == "false"
    assert response.headers["x-paging-limit"] == "1"
    # Our backends have no tags: a value filter excludes them, an absence filter keeps them.
    assert client.get("/service/storage-backends", params={"tag.auth": "a"}).json() == []
    assert len(client.get("/service/storage-backends", params={"tag_exists.auth": "false"}).json()) == 1
    assert client.get("/service/storage-backends", params={"tag_exists.auth": "true"}).json() == []


@pytest.mark.versions("7.0")
def test_storage_backends_under_70_are_one_unpaged_list(client: TamsClient) -> None:
    response = client.get("/service/storage-backends")
    assert response.status_code == 200
    assert "x-paging-limit" not in response.headers


def _delete_requests(client: TamsClient, count: int) -> list[dict[str, Any]]:
    """Deletion requests saved straight into the store (a real one needs thousands of segments)."""
    store = client.app.backend  # type: ignore[attr-defined]
    made = []
    for i in range(count):
        request = deletion.new_request(new_id(), TimeRange.eternity(), None, delete_flow=False)
        request["expiry"] = f"2999-01-0{count - i}T00:00:00Z"
        store.save_delete_request(request)
        made.append(request)
        time.sleep(0.002)
    return made


@V82
def test_delete_requests_are_paged_newest_first_by_created_or_expiry(client: TamsClient, tams: Tams) -> None:
    made = [r["id"] for r in _delete_requests(client, 3)]
    assert all_pages(tams, "/flow-delete-requests", limit=2) == made[::-1]
    assert all_pages(tams, "/flow-delete-requests", sort_by="expiry", limit=2) == made
    response = client.get("/flow-delete-requests", params={"reverse_order": "true"})
    assert ids(response) == made
    assert response.headers["x-paging-reverse-order"] == "true"


@pytest.mark.versions("7.0")
def test_delete_requests_under_70_are_one_unpaged_list(client: TamsClient) -> None:
    made = [r["id"] for r in _delete_requests(client, 3)]
    response = client.get("/flow-delete-requests", params={"limit": 1})
    assert ids(response) == made[::-1]


# --- storage_backend_tag on segments -----------------------------------------------------------


@V82
def test_storage_backend_tag_filters_get_urls(client: TamsClient, tams: Tams) -> None:
    flow_id = tams.put_flow()["id"]
    [obj] = tams.allocate(flow_id, limit=1)
    tams.post_segment(flow_id, "[0:0_1:0)", obj["object_id"])
    external = {"url": "https://example.com/x", "label": "elsewhere"}
    tams.post_segment(flow_id, "[1:0_2:0)", get_urls=[external])
    plain = tams.segments(flow_id)
    assert [len(s["get_urls"]) for s in plain] == [1, 1]
    # No storage backend has tag "auth": its value filter leaves no URL; absence keeps them all.
    assert [s["get_urls"] for s in tams.segments(flow_id, **{"storage_backend_tag.auth": "a"})] == [[], []]
    kept = tams.segments(flow_id, **{"storage_backend_tag_exists.auth": "false"})
    assert [len(s["get_urls"]) for s in kept] == [1, 1]
