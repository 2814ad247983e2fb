"""Errors: every error is a JSON {type, summary, time}; malformed input is a 4xx, never a 500."""

from __future__ import annotations

import json

import pytest
from conftest import ResponseCheckFailed, error_body_problems, flow_body, new_id


def allowed(response) -> set[str]:
    return {m.strip() for m in response.headers["allow"].split(",")}


# ----------------------------------------------------------------- the response checker itself


def test_the_spec_check_fails_a_response_with_an_undocumented_status(client):
    with pytest.raises(ResponseCheckFailed, match="405"):
        client.patch("/service")


def test_the_spec_check_can_be_turned_off_for_one_call(client):
    with client.unchecked():
        assert client.patch("/service").status_code == 405
    with pytest.raises(ResponseCheckFailed):
        client.patch("/service")


# ----------------------------------------------------------------- routing errors


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/service", {"GET", "HEAD", "POST"}),
        ("/flows/{flow}", {"GET", "HEAD", "PUT", "DELETE"}),
        ("/flows/{flow}/segments", {"GET", "HEAD", "POST", "DELETE"}),
        ("/flows/{flow}/storage", {"POST"}),
        ("/flows/{flow}/read_only", {"GET", "HEAD", "PUT"}),
        ("/sources", {"GET", "HEAD"}),
        ("/objects/an-object", {"GET", "HEAD"}),
    ],
)
def test_an_unsupported_method_is_405_with_allow_listing_the_path_methods(client, path, methods):
    with client.unchecked():
        response = client.patch(path.format(flow=new_id()))
    assert response.status_code == 405
    assert allowed(response) == methods
    assert error_body_problems(response) is None


def test_post_on_a_flow_is_405(client):
    flow = flow_body()
    client.put(f"/flows/{flow['id']}", json=flow)
    with client.unchecked():
        response = client.post(f"/flows/{flow['id']}", json=flow)
    assert response.status_code == 405
    assert allowed(response) == {"GET", "HEAD", "PUT", "DELETE"}


@pytest.mark.parametrize("path", ["/nope", "/flows/{flow}/nope", "/service/nope", "/flows/{flow}/segments/extra"])
def test_a_path_that_does_not_exist_is_404(client, path):
    with client.unchecked():
        response = client.get(path.format(flow=new_id()))
    assert response.status_code == 404
    assert error_body_problems(response) is None


@pytest.mark.parametrize(
    "path",
    [
        "/flows/not-a-uuid",
        "/flows/6E2F4A1C-4B7A-4E55-9C1D-3F0E2B9A7D11",  # upper case is not a TAMS uuid
        "/flows/not-a-uuid/segments",
        "/flows/not-a-uuid/tags",
        "/flows/not-a-uuid/label",
        "/sources/not-a-uuid",
        "/sources/not-a-uuid/tags/genre",
    ],
)
def test_a_malformed_id_in_the_path_is_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert error_body_problems(response) is None


def test_put_on_a_malformed_flow_id_is_404(client):
    body = flow_body(flow_id="not-a-uuid")
    assert client.put("/flows/not-a-uuid", json=body).status_code == 404


# ----------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/flows/{flow}"),
        ("POST", "/flows/{flow}/segments"),
        ("POST", "/flows/{flow}/storage"),
        ("PUT", "/flows/{flow}/label"),
        ("PUT", "/flows/{flow}/tags/genre"),
        ("POST", "/service"),
    ],
)
def test_a_body_that_is_not_json_is_400(tams, method, path):
    flow = tams.put_flow()
    response = tams.client.request(
        method,
        path.format(flow=flow["id"]),
        content=b'{"id": ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert tams.get_flow(flow["id"]) == {**flow, **_managed(tams.get_flow(flow["id"]))}


def _managed(flow: dict) -> dict:
    return {k: flow[k] for k in ("created", "metadata_updated", "created_by", "updated_by") if k in flow}


def test_a_json_flow_put_without_content_type_is_taken_as_json(client):
    flow = flow_body()
    response = client.put(f"/flows/{flow['id']}", content=json.dumps(flow).encode())
    assert response.status_code == 201
    assert client.get(f"/flows/{flow['id']}").json()["id"] == flow["id"]


def test_a_flow_put_with_a_non_json_content_type_is_400(client):
    flow = flow_body()
    response = client.put(
        f"/flows/{flow['id']}", content=json.dumps(flow).encode(), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "change",
    [
        {"essence_parameters": {"frame_width": 0, "frame_height": 1080}},
        {"essence_parameters": {"frame_width": 1920}},
        {"essence_parameters": {"frame_width": "1920", "frame_height": 1080}},
        {"essence_parameters": {"frame_width": 1920, "frame_height": 1080, "colour": "red"}},
        {"format": "urn:x-nmos:format:smell"},
        {"source_id": "not-a-uuid"},
        {"id": 5},
        {"tags": {"genre": 1}},
        {"codec": "h264"},
        {"container": "video mp2t"},
        {"read_only": "yes"},
        {"max_bit_rate": -1},
        {"segment_duration": {"numerator": 0}},
    ],
    ids=lambda change: json.dumps(change)[:60],
)
def test_a_flow_that_breaks_the_schema_is_400(client, change):
    flow = {**flow_body(), **change}
    path_id = flow["id"] if isinstance(flow["id"], str) else new_id()
    response = client.put(f"/flows/{path_id}", json=flow)
    assert response.status_code == 400
    assert client.get(f"/flows/{path_id}").status_code == 404


@pytest.mark.parametrize("body", [[], "flow", None, 5])
def test_a_flow_body_that_is_not_an_object_is_400(client, body):
    flow_id = new_id()
    response = client.put(f"/flows/{flow_id}", content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("label", 5),
        ("description", ["text"]),
        ("tags/genre", {"a": "b"}),
        ("read_only", "yes"),
        ("max_bit_rate", -1),
        ("avg_bit_rate", 1.5),
        ("flow_collection", [{"id": "not-a-uuid", "role": "video"}]),
        ("flow_collection", [{"role": "video"}]),
    ],
)
def test_a_flow_property_of_the_wrong_type_is_400(tams, path, body):
    flow = tams.put_flow()
    response = tams.client.put(f"/flows/{flow['id']}/{path}", json=body)
    assert response.status_code == 400
    assert tams.get_flow(flow["id"]) == {**flow, **_managed(tams.get_flow(flow["id"]))}


@pytest.mark.parametrize(
    "body",
    [
        {"object_id": "o"},
        {"timerange": "[0:0_1:0)"},
        {"object_id": 5, "timerange": "[0:0_1:0)"},
        {"object_id": "o", "timerange": "0-1"},
        {"object_id": "o", "timerange": "[0:0_1:0)", "get_urls": [{"label": "cdn"}]},
        {"object_id": "o", "timerange": "[0:0_1:0)", "last_duration": "-1:0"},
        {"object_id": "o", "timerange": "()"},
        {"object_id": "o", "timerange": "[5:0_"},
        [{"object_id": "o", "timerange": "[0:0_1:0)"}, {"object_id": "p"}],
    ],
)
def test_a_segment_that_breaks_the_rules_is_400(tams, body):
    flow = tams.put_flow()
    tams.allocate_ids(flow["id"], "o", "p")  # known objects: only the rule at hand refuses the segment
    response = tams.client.post(f"/flows/{flow['id']}/segments", json=body)
    assert response.status_code == 400
    assert tams.segments(flow["id"]) == []


def test_a_negative_ts_offset_is_taken_under_every_version(tams):
    flow = tams.put_flow()
    tams.post_segment(flow["id"], "[0:0_1:0)", ts_offset="-10:0")
    [segment] = tams.segments(flow["id"])
    assert segment["ts_offset"] == "-10:0"


# ----------------------------------------------------------------- query parameters


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/flows", {"timerange": "nonsense"}),
        ("/flows", {"timerange": "[0:00_1:0)"}),
        ("/flows", {"limit": "0"}),
        ("/flows", {"limit": "-1"}),
        ("/flows", {"limit": "many"}),
        ("/flows", {"frame_width": "wide"}),
        ("/flows", {"format": "urn:x-nmos:format:smell"}),
        ("/flows", {"source_id": "not-a-uuid"}),
        ("/flows", {"tag_exists.genre": "maybe"}),
        ("/sources", {"format": "video"}),
        ("/sources", {"limit": "0"}),
        ("/sources", {"tag_exists.genre": "1"}),
        ("/flows/{flow}", {"timerange": "1:0-2:0"}),
        ("/flows/{flow}", {"include_timerange": "maybe"}),
        ("/flows/{flow}/segments", {"timerange": "[0:1000000000_1:0)"}),
        ("/flows/{flow}/segments", {"reverse_order": "maybe"}),
        ("/flows/{flow}/segments", {"limit": "0"}),
        ("/flows/{flow}/segments", {"accept_storage_ids": "not-a-uuid"}),
        ("/flows/{flow}/segments", {"accept_get_urls": ",,"}),
        ("/flows/{flow}/segments", {"presigned": "sometimes"}),
        ("/flows/{flow}/segments", {"verbose_storage": "very"}),
    ],
)
def test_a_bad_query_parameter_is_400(tams, path, params):
    flow = tams.put_flow()
    tams.post_segment(flow["id"], "[0:0_10:0)", get_urls=[{"url": "https://cdn.example.com/o", "label": "cdn"}])
    for method in ("GET", "HEAD"):
        response = tams.client.request(method, path.format(flow=flow["id"]), params=params)
        assert response.status_code == 400, (method, response.text)


def test_a_bad_timerange_on_segment_delete_is_400(tams):
    flow = tams.put_flow()
    tams.post_segment(flow["id"], "[0:0_10:0)")
    assert tams.client.delete(f"/flows/{flow['id']}/segments", params={"timerange": "bad"}).status_code == 400
    assert len(tams.segments(flow["id"])) == 1


def _objects_path(tams) -> str:
    flow = tams.put_flow()
    return f"/objects/{tams.post_segment(flow['id'], '[0:0_10:0)')['object_id']}"


def _segments_path(tams) -> str:
    flow = tams.put_flow()
    tams.post_segment(flow["id"], "[0:0_10:0)")
    return f"/flows/{flow['id']}/segments"


def _flows_path(tams) -> str:
    tams.put_flow()
    return "/flows"


def _sources_path(tams) -> str:
    tams.put_flow()
    return "/sources"


PAGED = {"flows": _flows_path, "sources": _sources_path, "segments": _segments_path, "objects": _objects_path}


@pytest.mark.parametrize("listing", sorted(PAGED))
def test_an_undecodable_page_key_is_400(tams, listing):
    path = PAGED[listing](tams)
    assert tams.client.get(path, params={"page": "zzzz"}).status_code == 400


@pytest.mark.parametrize(
    "listing",
    ["flows", "sources", "objects", "segments"],
)
def test_a_page_key_with_characters_outside_base64_is_400(tams, listing):
    path = PAGED[listing](tams)
    response = tams.client.get(path, params={"page": "!!!"})
    assert response.status_code == 400


# ----------------------------------------------------------------- the error body


def test_error_bodies_are_json_with_type_summary_and_time(tams):
    flow = tams.put_flow()
    errors = [
        tams.client.get(f"/flows/{new_id()}"),
        tams.client.get("/flows", params={"limit": "0"}),
        tams.client.put(f"/flows/{new_id()}", json=flow),
        tams.client.post(f"/flows/{flow['id']}/segments", json={"object_id": "o", "timerange": "()"}),
        tams.client.post("/service/webhooks", json={"url": "ftp://x/", "events": ["flows/created"]}),
    ]
    assert [r.status_code for r in errors] == [404, 400, 404, 400, 400]
    for response in errors:
        assert response.headers["content-type"] == "application/json"
        assert error_body_problems(response) is None
        assert set(response.json()) <= {"type", "summary", "time", "traceback"}
