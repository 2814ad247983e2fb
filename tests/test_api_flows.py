"""Flows and sources: create, replace, read, delete, filter, and the metadata sub-resources."""

from __future__ import annotations

import pytest
from conftest import AUDIO, DATA, FLOW_TEMPLATES, IMAGE, MULTI, VIDEO, flow_body, new_id, same_headers

# Set by the server: times, collections, and who made the change (the authenticated principal).
SERVER_MANAGED = (
    "created",
    "metadata_updated",
    "segments_updated",
    "collected_by",
    "timerange",
    "created_by",
    "updated_by",
)


def without_managed(flow: dict) -> dict:
    return {k: v for k, v in flow.items() if k not in SERVER_MANAGED}


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()]


# ----------------------------------------------------------------- create, replace, read, delete


@pytest.mark.parametrize("kind", sorted(FLOW_TEMPLATES))
def test_put_of_a_new_flow_is_201_with_the_flow(client, kind):
    flow = flow_body(kind, label="New flow", tags={"genre": "news"})
    response = client.put(f"/flows/{flow['id']}", json=flow)
    assert response.status_code == 201
    body = response.json()
    assert without_managed(body) == flow
    assert body["created"] and body["metadata_updated"]
    assert client.get(f"/flows/{flow['id']}").json() == body


def test_put_ignores_server_managed_fields(client):
    flow = flow_body(
        created="2000-01-01T00:00:00Z",
        metadata_updated="2000-01-01T00:00:00Z",
        segments_updated="2000-01-01T00:00:00Z",
        collected_by=[new_id()],
        timerange="[0:0_10:0)",
    )
    body = client.put(f"/flows/{flow['id']}", json=flow).json()
    assert body["created"] != "2000-01-01T00:00:00Z"
    assert body["metadata_updated"] != "2000-01-01T00:00:00Z"
    assert "segments_updated" not in body
    assert "collected_by" not in body
    assert "timerange" not in body


def test_put_of_an_existing_flow_is_204_and_replaces_it(tams):
    flow = tams.put_flow(label="Old", description="Gone after the PUT", tags={"a": "1"})
    first = tams.get_flow(flow["id"])
    replacement = {**flow, "label": "New", "tags": {"b": "2"}}
    del replacement["description"]
    response = tams.client.put(f"/flows/{flow['id']}", json=replacement)
    assert response.status_code == 204
    assert response.content == b""
    stored = tams.get_flow(flow["id"])
    assert without_managed(stored) == replacement
    assert stored["created"] == first["created"]
    assert stored["metadata_updated"] >= first["metadata_updated"]


def test_put_with_a_body_id_that_differs_from_the_path_is_404(client):
    flow = flow_body()
    other = new_id()
    assert client.put(f"/flows/{other}", json=flow).status_code == 404
    assert client.get(f"/flows/{other}").status_code == 404
    assert client.get(f"/flows/{flow['id']}").status_code == 404


def test_get_of_an_unknown_flow_is_404(client):
    for method in ("GET", "HEAD"):
        assert client.request(method, f"/flows/{new_id()}").status_code == 404


def test_head_of_a_flow_has_the_get_headers_and_no_body(tams):
    flow = tams.put_flow()
    get = tams.client.get(f"/flows/{flow['id']}")
    head = tams.client.head(f"/flows/{flow['id']}")
    assert head.status_code == 200
    assert head.content == b""
    assert same_headers(head, get), (dict(head.headers), dict(get.headers))


def test_delete_flow_is_204_then_the_flow_is_gone(tams):
    flow = tams.put_flow()
    tams.post_segment(flow["id"], "[0:0_10:0)")
    response = tams.client.delete(f"/flows/{flow['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert tams.client.get(f"/flows/{flow['id']}").status_code == 404
    assert tams.client.delete(f"/flows/{flow['id']}").status_code == 404
    assert tams.segments(flow["id"]) == []
    assert flow["id"] not in ids(tams.client.get("/flows"))


# ----------------------------------------------------------------- sources follow their flows


def test_a_flow_put_creates_its_source_with_id_and_format(tams):
    flow = tams.put_flow("audio")
    source = tams.get_source(flow["source_id"])
    assert source["id"] == flow["source_id"]
    assert source["format"] == AUDIO
    assert source["created"]
    assert ids(tams.client.get("/sources")) == [flow["source_id"]]


def test_a_source_lives_until_its_last_flow_is_deleted(tams):
    source_id = new_id()
    first = tams.put_flow(source_id=source_id)
    second = tams.put_flow(source_id=source_id, codec="video/h265")
    assert tams.client.delete(f"/flows/{first['id']}").status_code == 204
    assert tams.get_source(source_id)["id"] == source_id
    assert tams.client.delete(f"/flows/{second['id']}").status_code == 204
    assert tams.client.get(f"/sources/{source_id}").status_code == 404
    assert ids(tams.client.get("/sources")) == []


def test_moving_a_flow_to_another_source_deletes_the_emptied_source(tams):
    flow = tams.put_flow()
    new_source = new_id()
    assert tams.client.put(f"/flows/{flow['id']}", json={**flow, "source_id": new_source}).status_code == 204
    assert tams.client.get(f"/sources/{flow['source_id']}").status_code == 404
    assert tams.get_source(new_source)["format"] == VIDEO


def test_get_of_an_unknown_source_is_404(client):
    for method in ("GET", "HEAD"):
        assert client.request(method, f"/sources/{new_id()}").status_code == 404


# ----------------------------------------------------------------- flow list filters


@pytest.fixture
def catalogue(tams):
    """Five flows of different kinds, labels, tags and sizes."""
    shared_source = new_id()
    flows = {
        "hd": tams.put_flow("video", source_id=shared_source, label="hd", tags={"genre": "news", "lang": "en"}),
        "sd": tams.put_flow(
            "video",
            source_id=shared_source,
            label="sd",
            codec="video/mpeg2",
            essence_parameters={"frame_width": 720, "frame_height": 576, "frame_rate": {"numerator": 25}},
            tags={"genre": "sport"},
        ),
        "audio": tams.put_flow("audio", label="audio", tags={"genre": "news"}),
        "data": tams.put_flow("data", label="data"),
        "multi": tams.put_flow("multi", label="multi", tags={"lang": "cy"}),
    }
    return {name: flow["id"] for name, flow in flows.items()} | {"source": shared_source}


def names(catalogue, response) -> set[str]:
    by_id = {v: k for k, v in catalogue.items()}
    return {by_id[i] for i in ids(response)}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"hd", "sd", "audio", "data", "multi"}),
        ({"format": VIDEO}, {"hd", "sd"}),
        ({"format": AUDIO}, {"audio"}),
        ({"format": IMAGE}, set()),
        ({"format": MULTI}, {"multi"}),
        ({"codec": "video/mpeg2"}, {"sd"}),
        ({"codec": "audio/aac"}, {"audio"}),
        ({"label": "hd"}, {"hd"}),
        ({"label": "nothing"}, set()),
        ({"tag.genre": "news"}, {"hd", "audio"}),
        ({"tag.genre": "sport"}, {"sd"}),
        ({"tag.genre": "News"}, set()),
        ({"tag_exists.lang": "true"}, {"hd", "multi"}),
        ({"tag_exists.lang": "false"}, {"sd", "audio", "data"}),
        ({"tag_exists.genre": "false", "tag_exists.lang": "false"}, {"data"}),
        ({"tag.genre": "news", "tag_exists.lang": "true"}, {"hd"}),
        ({"frame_width": "720"}, {"sd"}),
        ({"frame_height": "1080"}, {"hd"}),
        ({"frame_width": "1920", "frame_height": "576"}, set()),
        ({"format": VIDEO, "label": "sd"}, {"sd"}),
    ],
)
def test_flow_list_filters(client, catalogue, params, expected):
    assert names(catalogue, client.get("/flows", params=params)) == expected


def test_flow_list_filters_by_source_id(client, catalogue):
    response = client.get("/flows", params={"source_id": catalogue["source"]})
    assert names(catalogue, response) == {"hd", "sd"}
    assert client.get("/flows", params={"source_id": new_id()}).json() == []


def test_flow_list_tag_names_are_url_decoded(tams):
    flow = tams.put_flow(tags={"my tag": "a value"})
    tams.put_flow(tags={"my": "a value"})
    response = tams.client.get("/flows?tag.my%20tag=a%20value")
    assert ids(response) == [flow["id"]]


def test_flow_list_is_sorted_consistently(tams):
    for _ in range(5):
        tams.put_flow()
    first = ids(tams.client.get("/flows"))
    assert ids(tams.client.get("/flows")) == first
    assert len(first) == 5


def test_flow_list_timerange_selects_flows_with_overlapping_segments(tams):
    early = tams.put_flow()
    late = tams.put_flow()
    empty = tams.put_flow()
    tams.post_segment(early["id"], "[0:0_10:0)")
    tams.post_segment(late["id"], "[10:0_20:0)")

    def listed(timerange: str) -> set[str]:
        return set(ids(tams.client.get("/flows", params={"timerange": timerange})))

    assert listed("[0:0_5:0)") == {early["id"]}
    assert listed("[5:0_15:0)") == {early["id"], late["id"]}
    assert listed("[10:0]") == {late["id"]}  # [0:0_10:0) ends before 10:0
    assert listed("[30:0_") == set()
    assert listed("()") == {empty["id"]}
    # "_" is the parameter's default, so it filters nothing: flows without segments stay listed.
    assert listed("_") == {early["id"], late["id"], empty["id"]}


def test_flow_list_without_timerange_lists_flows_with_and_without_segments(tams):
    with_segments = tams.put_flow()
    tams.post_segment(with_segments["id"], "[0:0_10:0)")
    without = tams.put_flow()
    assert set(ids(tams.client.get("/flows"))) == {with_segments["id"], without["id"]}


# ----------------------------------------------------------------- source list filters


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"video", "audio", "data"}),
        ({"format": VIDEO}, {"video"}),
        ({"format": DATA}, {"data"}),
        ({"label": "Audio source"}, {"audio"}),
        ({"tag.genre": "news"}, {"video", "audio"}),
        ({"tag_exists.genre": "true"}, {"video", "audio"}),
        ({"tag_exists.genre": "false"}, {"data"}),
        ({"tag.genre": "news", "format": AUDIO}, {"audio"}),
    ],
)
def test_source_list_filters(tams, params, expected):
    sources = {kind: tams.put_flow(kind)["source_id"] for kind in ("video", "audio", "data")}
    for kind in ("video", "audio"):
        assert tams.client.put(f"/sources/{sources[kind]}/tags/genre", json="news").status_code == 204
    assert tams.client.put(f"/sources/{sources['audio']}/label", json="Audio source").status_code == 204
    by_id = {v: k for k, v in sources.items()}
    assert {by_id[i] for i in ids(tams.client.get("/sources", params=params))} == expected


# ----------------------------------------------------------------- include_timerange


def test_flow_timerange_is_only_given_when_asked_for(tams):
    flow = tams.put_flow()
    tams.post_segment(flow["id"], "[0:0_10:0)")
    assert "timerange" not in tams.get_flow(flow["id"])
    assert "timerange" not in tams.get_flow(flow["id"], include_timerange="false")
    assert "timerange" not in tams.get_flow(flow["id"], timerange="[0:0_5:0)")


def test_flow_timerange_spans_its_segments(tams):
    flow = tams.put_flow()
    tams.post_segment(flow["id"], "[10:0_20:0)")
    tams.post_segment(flow["id"], "[0:0_10:0)")
    tams.post_segment(flow["id"], "[30:0_40:0)")
    assert tams.get_flow(flow["id"], include_timerange="true")["timerange"] == "[0:0_40:0)"


def test_flow_timerange_of_a_flow_without_segments_is_empty(tams):
    flow = tams.put_flow()
    assert tams.get_flow(flow["id"], include_timerange="true")["timerange"] == "()"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("_", "[0:0_40:0)"),
        ("[5:0_20:0)", "[5:0_20:0)"),
        ("[35:0_", "[35:0_40:0)"),
        ("_5:0]", "[0:0_5:0]"),
        ("[50:0_60:0)", "()"),
        ("()", "()"),
    ],
)
def test_flow_timerange_is_limited_to_the_query_timerange(tams, query, expected):
    flow = tams.put_flow()
    tams.post_segment(flow["id"], "[0:0_10:0)")
    tams.post_segment(flow["id"], "[30:0_40:0)")
    assert tams.get_flow(flow["id"], include_timerange="true", timerange=query)["timerange"] == expected


# ----------------------------------------------------------------- flow property sub-resources

PROPERTIES = {
    "label": ("A label", "Another label"),
    "description": ("A description", "Another description"),
    "max_bit_rate": (8000, 0),
    "avg_bit_rate": (5000, 6000),
}


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_flow_property_round_trip(tams, name):
    flow = tams.put_flow()
    path = f"/flows/{flow['id']}/{name}"
    first, second = PROPERTIES[name]
    assert tams.client.get(path).status_code == 404
    assert tams.client.head(path).status_code == 404
    for value in (first, second):
        assert tams.client.put(path, json=value).status_code == 204
        response = tams.client.get(path)
        assert response.status_code == 200
        assert response.json() == value
        assert tams.get_flow(flow["id"])[name] == value
    head = tams.client.head(path)
    assert (head.status_code, head.content) == (200, b"")
    assert tams.client.delete(path).status_code == 204
    assert tams.client.get(path).status_code == 404
    assert name not in tams.get_flow(flow["id"])


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_a_flow_property_put_in_the_flow_body_is_served_by_its_sub_resource(tams, name):
    value = PROPERTIES[name][0]
    flow = tams.put_flow(**{name: value})
    assert tams.client.get(f"/flows/{flow['id']}/{name}").json() == value


def test_a_property_change_updates_metadata_updated(tams):
    flow = tams.put_flow()
    before = tams.get_flow(flow["id"])["metadata_updated"]
    tams.client.put(f"/flows/{flow['id']}/label", json="changed")
    assert tams.get_flow(flow["id"])["metadata_updated"] > before


def test_read_only_round_trip(tams):
    flow = tams.put_flow()
    path = f"/flows/{flow['id']}/read_only"
    for value in (True, False):
        assert tams.client.put(path, json=value).status_code == 204
        assert tams.client.get(path).json() is value
        assert tams.get_flow(flow["id"])["read_only"] is value
    assert (tams.client.head(path).status_code, tams.client.head(path).content) == (200, b"")


def test_read_only_is_false_until_set(tams):
    flow = tams.put_flow()
    response = tams.client.get(f"/flows/{flow['id']}/read_only")
    assert response.status_code == 200
    assert response.json() is False


def test_read_only_has_no_delete(tams):
    flow = tams.put_flow(read_only=False)
    with tams.client.unchecked():
        response = tams.client.delete(f"/flows/{flow['id']}/read_only")
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "HEAD", "PUT"}


def test_read_only_given_in_the_flow_body_is_served(tams):
    flow = tams.put_flow(read_only=False)
    assert tams.client.get(f"/flows/{flow['id']}/read_only").json() is False


def test_flow_collection_round_trip(tams):
    members = [tams.put_flow(container=None)["id"] for _ in range(2)]
    multi = tams.put_flow("multi")
    path = f"/flows/{multi['id']}/flow_collection"
    collection = [
        {"id": members[0], "role": "video"},
        {"id": members[1], "role": "audio", "container_mapping": {"track_index": 1}},
    ]
    assert tams.client.get(path).status_code == 404
    assert tams.client.put(path, json=collection).status_code == 204
    assert tams.client.get(path).json() == collection
    assert tams.get_flow(multi["id"])["flow_collection"] == collection
    assert tams.client.delete(path).status_code == 204
    assert tams.client.get(path).status_code == 404


@pytest.mark.parametrize(
    ("method", "sub", "body"),
    [
        ("GET", "label", None),
        ("PUT", "label", "x"),
        ("DELETE", "label", None),
        ("GET", "description", None),
        ("PUT", "description", "x"),
        ("DELETE", "description", None),
        ("GET", "read_only", None),
        ("PUT", "read_only", True),
        ("GET", "flow_collection", None),
        ("PUT", "flow_collection", []),
        ("DELETE", "flow_collection", None),
        ("GET", "max_bit_rate", None),
        ("PUT", "max_bit_rate", 1),
        ("DELETE", "max_bit_rate", None),
        ("GET", "avg_bit_rate", None),
        ("PUT", "avg_bit_rate", 1),
        ("DELETE", "avg_bit_rate", None),
        ("GET", "tags", None),
        ("GET", "tags/genre", None),
        ("PUT", "tags/genre", "news"),
        ("DELETE", "tags/genre", None),
        ("HEAD", "tags", None),
        ("HEAD", "label", None),
    ],
)
def test_flow_sub_resources_of_an_unknown_flow_are_404(client, method, sub, body):
    path = f"/flows/{new_id()}/{sub}"
    response = client.request(method, path) if body is None else client.request(method, path, json=body)
    assert response.status_code == 404


def test_flow_tags_round_trip(tams):
    flow = tams.put_flow(tags={"genre": "news"})
    base = f"/flows/{flow['id']}/tags"
    assert tams.client.get(base).json() == {"genre": "news"}
    assert tams.client.put(f"{base}/lang", json="en").status_code == 204
    assert tams.client.get(f"{base}/lang").json() == "en"
    assert tams.client.get(base).json() == {"genre": "news", "lang": "en"}
    assert tams.get_flow(flow["id"])["tags"] == {"genre": "news", "lang": "en"}
    assert tams.client.put(f"{base}/lang", json="cy").status_code == 204
    assert tams.client.get(f"{base}/lang").json() == "cy"
    assert tams.client.delete(f"{base}/genre").status_code == 204
    assert tams.client.get(f"{base}/genre").status_code == 404
    assert tams.client.get(base).json() == {"lang": "cy"}


def test_flow_tags_of_a_flow_without_tags_is_an_empty_object(tams):
    flow = tams.put_flow()
    response = tams.client.get(f"/flows/{flow['id']}/tags")
    assert (response.status_code, response.json()) == (200, {})


def test_deleting_an_unset_flow_tag_is_404(tams):
    flow = tams.put_flow()
    assert tams.client.delete(f"/flows/{flow['id']}/tags/genre").status_code == 404


# ----------------------------------------------------------------- source sub-resources


@pytest.mark.parametrize("name", ["label", "description"])
def test_source_property_round_trip(tams, name):
    source_id = tams.put_flow()["source_id"]
    path = f"/sources/{source_id}/{name}"
    assert tams.client.get(path).status_code == 404
    assert tams.client.put(path, json="Some text").status_code == 204
    assert tams.client.get(path).json() == "Some text"
    head = tams.client.head(path)
    assert (head.status_code, head.content) == (200, b"")
    assert tams.get_source(source_id)[name] == "Some text"
    assert tams.client.delete(path).status_code == 204
    assert tams.client.get(path).status_code == 404
    assert name not in tams.get_source(source_id)


def test_source_tags_round_trip(tams):
    source_id = tams.put_flow()["source_id"]
    base = f"/sources/{source_id}/tags"
    assert tams.client.get(base).json() == {}
    assert tams.client.put(f"{base}/genre", json="news").status_code == 204
    assert tams.client.get(f"{base}/genre").json() == "news"
    assert tams.client.get(base).json() == {"genre": "news"}
    assert tams.get_source(source_id)["tags"] == {"genre": "news"}
    assert tams.client.delete(f"{base}/genre").status_code == 204
    assert tams.client.get(f"{base}/genre").status_code == 404
    assert tams.client.delete(f"{base}/genre").status_code == 404


def test_source_metadata_is_not_flow_metadata(tams):
    flow = tams.put_flow(label="Flow label")
    assert tams.client.put(f"/sources/{flow['source_id']}/label", json="Source label").status_code == 204
    assert tams.get_flow(flow["id"])["label"] == "Flow label"
    assert tams.get_source(flow["source_id"])["label"] == "Source label"


@pytest.mark.parametrize(
    ("method", "sub", "body"),
    [
        ("GET", "tags", None),
        ("GET", "tags/genre", None),
        ("PUT", "tags/genre", "news"),
        ("DELETE", "tags/genre", None),
        ("GET", "label", None),
        ("PUT", "label", "x"),
        ("DELETE", "label", None),
        ("GET", "description", None),
        ("PUT", "description", "x"),
        ("DELETE", "description", None),
    ],
)
def test_source_sub_resources_of_an_unknown_source_are_404(client, method, sub, body):
    path = f"/sources/{new_id()}/{sub}"
    response = client.request(method, path) if body is None else client.request(method, path, json=body)
    assert response.status_code == 404


def test_sources_cannot_be_put_or_deleted(tams):
    source_id = tams.put_flow()["source_id"]
    with tams.client.unchecked():
        put = tams.client.put(f"/sources/{source_id}", json={"id": source_id, "format": VIDEO})
        delete = tams.client.delete(f"/sources/{source_id}")
    assert (put.status_code, delete.status_code) == (405, 405)
    assert tams.get_source(source_id)["id"] == source_id


def test_tag_names_with_a_slash_work_on_the_tag_routes(tams):
    flow = tams.put_flow()
    for base in (f"/flows/{flow['id']}", f"/sources/{flow['source_id']}"):
        assert tams.client.put(f"{base}/tags/a%2Fb", json="x").status_code == 204
        assert tams.client.get(f"{base}/tags/a%2Fb").json() == "x"
        assert tams.client.get(f"{base}/tags").json() == {"a/b": "x"}
        assert tams.client.delete(f"{base}/tags/a%2Fb").status_code == 204
        assert tams.client.get(f"{base}/tags").json() == {}
