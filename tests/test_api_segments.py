"""Flow segments: registering (single and bulk), listing with timerange filters, deleting."""

from __future__ import annotations

import pytest
from conftest import new_id


@pytest.fixture
def flow(tams):
    return tams.put_flow()


@pytest.fixture
def filled(tams, flow):
    """A flow with segments [0:0_10:0), [10:0_20:0), [20:0_30:0) and [40:0_50:0) (a gap before the last)."""
    tams.allocate_ids(flow["id"], *(f"object-{start}" for start in (0, 10, 20, 40)))
    for start in (0, 10, 20, 40):
        tams.post_segment(flow["id"], f"[{start}:0_{start + 10}:0)", object_id=f"object-{start}")
    return flow


# ----------------------------------------------------------------- registering


def test_posting_one_segment_is_201_with_no_body(tams, flow):
    [object_id] = tams.new_objects(flow["id"], 1)
    segment = {
        "object_id": object_id,
        "timerange": "[0:0_10:0)",
        "ts_offset": "0:0",
        "last_duration": "0:40000000",
        "sample_offset": 0,
        "sample_count": 250,
        "key_frame_count": 5,
    }
    response = tams.client.post(f"/flows/{flow['id']}/segments", json=segment)
    assert response.status_code == 201
    assert response.content == b""
    [stored] = tams.segments(flow["id"], accept_get_urls="")
    assert stored == segment


def test_posting_a_segment_sets_segments_updated(tams, flow):
    assert "segments_updated" not in tams.get_flow(flow["id"])
    tams.post_segment(flow["id"], "[0:0_10:0)")
    assert tams.get_flow(flow["id"])["segments_updated"]


def test_a_segment_timerange_is_returned_in_canonical_form(tams, flow):
    tams.post_segment(flow["id"], "0:0_10:0")
    assert tams.timeranges(flow["id"]) == ["[0:0_10:0]"]


@pytest.mark.parametrize("timerange", ["[5:0_15:0)", "[0:0_10:0)", "[9:999999999_10:0)", "[0:0]", "[-5:0_0:1)"])
def test_an_overlapping_segment_is_400(tams, flow, timerange):
    tams.allocate_ids(flow["id"], "first", "second")
    tams.post_segment(flow["id"], "[0:0_10:0)", object_id="first")
    response = tams.client.post(f"/flows/{flow['id']}/segments", json={"object_id": "second", "timerange": timerange})
    assert response.status_code == 400
    assert [s["object_id"] for s in tams.segments(flow["id"])] == ["first"]


@pytest.mark.parametrize(("first", "second"), [("[0:0_10:0)", "[10:0_20:0)"), ("[0:0_10:0]", "(10:0_20:0)")])
def test_adjacent_segments_do_not_overlap(tams, flow, first, second):
    tams.post_segment(flow["id"], first)
    tams.post_segment(flow["id"], second)
    assert tams.timeranges(flow["id"]) == [first, second]


def test_posting_segments_in_bulk_is_201(tams, flow):
    segments = [
        tams.segment(f"[{i}:0_{i + 1}:0)", object_id) for i, object_id in enumerate(tams.new_objects(flow["id"], 5))
    ]
    response = tams.client.post(f"/flows/{flow['id']}/segments", json=segments)
    assert response.status_code == 201
    assert response.content == b""
    assert tams.segments(flow["id"], accept_get_urls="") == segments


def test_a_bulk_post_with_failures_is_200_listing_them_and_stores_the_rest(tams, flow):
    tams.allocate_ids(flow["id"], "existing", "good-1", "clashes-with-existing", "good-2", "clashes-with-good-2")
    tams.post_segment(flow["id"], "[10:0_20:0)", object_id="existing")
    segments = [
        {"object_id": "good-1", "timerange": "[0:0_10:0)"},
        {"object_id": "clashes-with-existing", "timerange": "[15:0_25:0)"},
        {"object_id": "good-2", "timerange": "[20:0_30:0)"},
        {"object_id": "clashes-with-good-2", "timerange": "[29:0_31:0)"},
    ]
    response = tams.client.post(f"/flows/{flow['id']}/segments", json=segments)
    assert response.status_code == 200
    failed = response.json()["failed_segments"]
    assert [(f["object_id"], f["timerange"]) for f in failed] == [
        ("clashes-with-existing", "[15:0_25:0)"),
        ("clashes-with-good-2", "[29:0_31:0)"),
    ]
    assert all(f["error"]["type"] and f["error"]["summary"] and f["error"]["time"] for f in failed)
    assert [s["object_id"] for s in tams.segments(flow["id"])] == ["good-1", "existing", "good-2"]


def test_posting_segments_to_a_flow_without_container_is_400(tams):
    flow = tams.put_flow(container=None)
    segment = tams.segment("[0:0_10:0)", get_urls=[{"url": "https://cdn.example.com/media/0", "label": "cdn"}])
    response = tams.client.post(f"/flows/{flow['id']}/segments", json=segment)
    assert response.status_code == 400
    assert tams.segments(flow["id"]) == []


def test_posting_segments_to_an_unknown_flow_is_404(tams):
    flow_id = new_id()
    assert tams.client.post(f"/flows/{flow_id}/segments", json=tams.segment("[0:0_10:0)")).status_code == 404
    assert tams.client.post(f"/flows/{flow_id}/segments", json=[tams.segment("[0:0_10:0)")]).status_code == 404
    assert tams.client.get(f"/flows/{flow_id}").status_code == 404


# ----------------------------------------------------------------- listing


def test_segments_are_listed_in_ascending_order(tams, flow):
    for start in (20, 0, 40, 10):
        tams.post_segment(flow["id"], f"[{start}:0_{start + 10}:0)")
    assert tams.timeranges(flow["id"]) == ["[0:0_10:0)", "[10:0_20:0)", "[20:0_30:0)", "[40:0_50:0)"]


def test_reverse_order_lists_segments_descending(tams, filled):
    assert tams.timeranges(filled["id"], reverse_order="true") == [
        "[40:0_50:0)",
        "[20:0_30:0)",
        "[10:0_20:0)",
        "[0:0_10:0)",
    ]
    assert tams.timeranges(filled["id"], reverse_order="false") == tams.timeranges(filled["id"])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("_", ["[0:0_10:0)", "[10:0_20:0)", "[20:0_30:0)", "[40:0_50:0)"]),
        ("[10:0_20:0)", ["[10:0_20:0)"]),  # [0:0_10:0) ends just before 10:0
        ("[10:0]", ["[10:0_20:0)"]),
        ("10:0", ["[10:0_20:0)"]),
        ("[5:0_15:0)", ["[0:0_10:0)", "[10:0_20:0)"]),
        ("[10:0_20:0]", ["[10:0_20:0)", "[20:0_30:0)"]),
        ("(10:0_20:0)", ["[10:0_20:0)"]),
        ("[30:0_40:0)", []),  # the gap
        ("[30:0_40:0]", ["[40:0_50:0)"]),
        ("[45:0_", ["[40:0_50:0)"]),
        ("_0:0]", ["[0:0_10:0)"]),
        ("_0:0)", []),
        ("[50:0_60:0)", []),
        ("()", []),
        ("[15:0_15:0)", []),
    ],
)
def test_the_timerange_filter_selects_overlapping_segments(tams, filled, query, expected):
    assert tams.timeranges(filled["id"], timerange=query) == expected
    assert tams.timeranges(filled["id"], timerange=query, reverse_order="true") == expected[::-1]


def test_segments_of_an_unknown_flow_are_an_empty_list(client):
    for method in ("GET", "HEAD"):
        response = client.request(method, f"/flows/{new_id()}/segments")
        assert response.status_code == 200
    assert client.get(f"/flows/{new_id()}/segments").json() == []


def test_the_object_id_filter_selects_that_objects_segments(tams, flow):
    tams.allocate_ids(flow["id"], "shared", "other")
    tams.post_segment(flow["id"], "[0:0_10:0)", object_id="shared")
    tams.post_segment(flow["id"], "[10:0_20:0)", object_id="other")
    tams.post_segment(flow["id"], "[20:0_30:0)", object_id="shared")
    assert tams.timeranges(flow["id"], object_id="shared") == ["[0:0_10:0)", "[20:0_30:0)"]
    assert tams.timeranges(flow["id"], object_id="shared", timerange="[15:0_") == ["[20:0_30:0)"]
    assert tams.timeranges(flow["id"], object_id="missing") == []


# ----------------------------------------------------------------- deleting


def test_deleting_all_segments_is_204(tams, filled):
    response = tams.client.delete(f"/flows/{filled['id']}/segments")
    assert response.status_code == 204
    assert response.content == b""
    assert tams.segments(filled["id"]) == []
    assert tams.get_flow(filled["id"], include_timerange="true")["timerange"] == "()"


@pytest.mark.parametrize(
    ("timerange", "left"),
    [
        ("[0:0_20:0)", ["[20:0_30:0)", "[40:0_50:0)"]),
        ("[5:0_25:0)", ["[0:0_10:0)", "[20:0_30:0)", "[40:0_50:0)"]),  # only [10:0_20:0) is covered
        ("[10:0_20:0)", ["[0:0_10:0)", "[20:0_30:0)", "[40:0_50:0)"]),
        ("[10:0_19:999999999]", ["[0:0_10:0)", "[10:0_20:0)", "[20:0_30:0)", "[40:0_50:0)"]),
        ("(0:0_10:0)", ["[0:0_10:0)", "[10:0_20:0)", "[20:0_30:0)", "[40:0_50:0)"]),
        ("[25:0_", ["[0:0_10:0)", "[10:0_20:0)", "[20:0_30:0)"]),
        ("()", ["[0:0_10:0)", "[10:0_20:0)", "[20:0_30:0)", "[40:0_50:0)"]),
    ],
)
def test_deleting_by_timerange_removes_only_segments_it_covers(tams, filled, timerange, left):
    response = tams.client.delete(f"/flows/{filled['id']}/segments", params={"timerange": timerange})
    assert response.status_code == 204
    assert tams.timeranges(filled["id"]) == left


def test_deleting_by_object_id_removes_only_that_objects_segments(tams, flow):
    tams.allocate_ids(flow["id"], "doomed", "kept")
    tams.post_segment(flow["id"], "[0:0_10:0)", object_id="doomed")
    tams.post_segment(flow["id"], "[10:0_20:0)", object_id="kept")
    tams.post_segment(flow["id"], "[20:0_30:0)", object_id="doomed")
    response = tams.client.delete(f"/flows/{flow['id']}/segments", params={"object_id": "doomed"})
    assert response.status_code == 204
    assert [s["object_id"] for s in tams.segments(flow["id"])] == ["kept"]


def test_deleting_by_object_id_and_timerange_needs_both(tams, flow):
    tams.allocate_ids(flow["id"], "doomed", "kept")
    tams.post_segment(flow["id"], "[0:0_10:0)", object_id="doomed")
    tams.post_segment(flow["id"], "[10:0_20:0)", object_id="kept")
    tams.post_segment(flow["id"], "[20:0_30:0)", object_id="doomed")
    params = {"object_id": "doomed", "timerange": "[15:0_"}
    assert tams.client.delete(f"/flows/{flow['id']}/segments", params=params).status_code == 204
    assert tams.timeranges(flow["id"]) == ["[0:0_10:0)", "[10:0_20:0)"]


def test_deleting_segments_of_an_unknown_flow_is_404(client):
    assert client.delete(f"/flows/{new_id()}/segments").status_code == 404


def test_a_deleted_segment_range_can_be_filled_again(tams, filled):
    tams.client.delete(f"/flows/{filled['id']}/segments", params={"timerange": "[10:0_20:0)"})
    tams.post_segment(filled["id"], "[10:0_20:0)", object_id="refill")
    assert [s["object_id"] for s in tams.segments(filled["id"], timerange="[10:0_20:0)")] == ["refill"]


# ----------------------------------------------------------------- objects a segment may name

CDN = [{"url": "https://cdn.example.com/media/1", "label": "cdn"}]


def refusal_is_helpful(summary: str, flow_id: str) -> None:
    assert "nobody could read it" in summary
    assert f"POST /flows/{flow_id}/storage" in summary and "get_urls" in summary


def test_a_segment_on_an_object_never_seen_is_400_unless_it_brings_get_urls(tams, flow):
    body = {"object_id": new_id(), "timerange": "[0:0_10:0)"}
    for refused in (body, {**body, "get_urls": []}):
        response = tams.client.post(f"/flows/{flow['id']}/segments", json=refused)
        assert response.status_code == 400
        refusal_is_helpful(response.json()["summary"], flow["id"])
    assert tams.segments(flow["id"]) == []
    assert tams.client.get(f"/objects/{body['object_id']}").status_code == 404
    assert "segments_updated" not in tams.get_flow(flow["id"])
    tams.post_segment(flow["id"], body["timerange"], body["object_id"], get_urls=CDN)
    [listed] = tams.segments(flow["id"])
    assert [u["url"] for u in listed["get_urls"]] == [CDN[0]["url"]]


def test_a_bulk_post_lists_a_segment_on_an_object_never_seen_among_its_failures(tams, flow):
    [allocated] = tams.new_objects(flow["id"], 1)
    unknown, own_urls = new_id(), new_id()
    segments = [
        {"object_id": unknown, "timerange": "[0:0_10:0)"},
        {"object_id": allocated, "timerange": "[10:0_20:0)"},
        {"object_id": own_urls, "timerange": "[20:0_30:0)", "get_urls": CDN},
    ]
    response = tams.client.post(f"/flows/{flow['id']}/segments", json=segments)
    assert response.status_code == 200
    [failed] = response.json()["failed_segments"]
    assert (failed["object_id"], failed["timerange"]) == (unknown, "[0:0_10:0)")
    refusal_is_helpful(failed["error"]["summary"], flow["id"])
    assert [s["object_id"] for s in tams.segments(flow["id"])] == [allocated, own_urls]


@pytest.mark.parametrize("bulk", [False, True], ids=["single", "bulk"])
def test_an_allocated_or_registered_object_needs_no_get_urls(tams, flow, bulk):
    """Allocated for the flow, or registered by any flow (with controlled bytes or only the URLs
    its first segment gave): the store knows where the object is."""
    [allocated] = tams.new_objects(flow["id"], 1)
    external = new_id()
    tams.post_segment(flow["id"], "[0:0_10:0)", external, get_urls=CDN)
    other = tams.put_flow()

    def post(flow_id: str, *bodies: dict) -> None:
        response = tams.client.post(f"/flows/{flow_id}/segments", json=list(bodies) if bulk else bodies[0])
        assert response.status_code == 201, response.text

    post(flow["id"], {"object_id": allocated, "timerange": "[10:0_20:0)"})
    reused = [{"object_id": allocated, "timerange": "[0:0_10:0)"}, {"object_id": external, "timerange": "[10:0_20:0)"}]
    if bulk:
        post(other["id"], *reused)
    else:
        for body in reused:
            post(other["id"], body)
    listed = {s["object_id"]: s["get_urls"] for s in tams.segments(other["id"])}
    assert [u["url"] for u in listed[external]] == [CDN[0]["url"]]
    assert len(listed[allocated]) == 1 and listed[allocated][0]["url"] != CDN[0]["url"]


@pytest.mark.versions("8.2")
def test_an_init_object_never_seen_is_accepted_and_gets_its_urls_as_instances(tams, flow):
    """A segment POST has no place for its init object's URLs, so an init object the store has not
    seen is registered without instances; the client adds them under /objects/{id}/instances."""
    [media] = tams.new_objects(flow["id"], 1)
    init = new_id()
    tams.post_segment(flow["id"], "[0:0_10:0)", media, init_object_id=init)
    assert tams.client.post(f"/objects/{init}/instances", json=CDN[0]).status_code == 201
    [listed] = tams.segments(flow["id"])
    assert listed["init_object"]["object_id"] == init
    assert [u["url"] for u in listed["init_object"]["get_urls"]] == [CDN[0]["url"]]
