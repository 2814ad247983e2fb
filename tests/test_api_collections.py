"""Flow collections (multi-essence flows) and the source collections the server infers from them."""

from __future__ import annotations

import pytest
from conftest import new_id


@pytest.fixture
def muxed(tams):
    """A multi flow collecting a video and an audio flow, each on its own source."""
    video = tams.put_flow("video", container=None)
    audio = tams.put_flow("audio", container=None)
    multi = tams.put_flow(
        "multi",
        flow_collection=[{"id": video["id"], "role": "video"}, {"id": audio["id"], "role": "audio"}],
    )
    return {"video": video, "audio": audio, "multi": multi}


def collected_by(tams, flow: dict) -> list[str] | None:
    return tams.get_flow(flow["id"]).get("collected_by")


def source_collection(tams, flow: dict) -> list[dict] | None:
    items = tams.get_source(flow["source_id"]).get("source_collection")
    return None if items is None else sorted(items, key=lambda i: i["role"])


def source_collected_by(tams, flow: dict) -> list[str] | None:
    return tams.get_source(flow["source_id"]).get("collected_by")


def test_collected_flows_list_the_multi_flow_in_collected_by(tams, muxed):
    assert collected_by(tams, muxed["video"]) == [muxed["multi"]["id"]]
    assert collected_by(tams, muxed["audio"]) == [muxed["multi"]["id"]]
    assert collected_by(tams, muxed["multi"]) is None


def test_collected_by_is_in_the_flow_list_too(tams, muxed):
    flows = {f["id"]: f for f in tams.client.get("/flows").json()}
    assert flows[muxed["video"]["id"]]["collected_by"] == [muxed["multi"]["id"]]


def test_the_multi_flow_source_collects_the_member_sources(tams, muxed):
    assert source_collection(tams, muxed["multi"]) == [
        {"id": muxed["audio"]["source_id"], "role": "audio"},
        {"id": muxed["video"]["source_id"], "role": "video"},
    ]
    assert source_collected_by(tams, muxed["video"]) == [muxed["multi"]["source_id"]]
    assert source_collected_by(tams, muxed["audio"]) == [muxed["multi"]["source_id"]]
    assert source_collection(tams, muxed["video"]) is None


def test_a_flow_collected_by_two_multi_flows_lists_both(tams, muxed):
    second = tams.put_flow("multi", flow_collection=[{"id": muxed["video"]["id"], "role": "video"}])
    assert collected_by(tams, muxed["video"]) == sorted([muxed["multi"]["id"], second["id"]])
    assert source_collected_by(tams, muxed["video"]) == sorted([muxed["multi"]["source_id"], second["source_id"]])


def test_changing_the_collection_updates_members_and_sources(tams, muxed):
    path = f"/flows/{muxed['multi']['id']}/flow_collection"
    assert tams.client.put(path, json=[{"id": muxed["video"]["id"], "role": "picture"}]).status_code == 204
    assert collected_by(tams, muxed["video"]) == [muxed["multi"]["id"]]
    assert collected_by(tams, muxed["audio"]) is None
    assert source_collection(tams, muxed["multi"]) == [{"id": muxed["video"]["source_id"], "role": "picture"}]
    assert source_collected_by(tams, muxed["audio"]) is None


def test_deleting_the_collection_releases_the_members(tams, muxed):
    assert tams.client.delete(f"/flows/{muxed['multi']['id']}/flow_collection").status_code == 204
    assert collected_by(tams, muxed["video"]) is None
    assert collected_by(tams, muxed["audio"]) is None
    assert source_collection(tams, muxed["multi"]) is None
    assert source_collected_by(tams, muxed["video"]) is None


def test_replacing_the_multi_flow_without_a_collection_releases_the_members(tams, muxed):
    body = {k: v for k, v in muxed["multi"].items() if k != "flow_collection"}
    assert tams.client.put(f"/flows/{body['id']}", json=body).status_code == 204
    assert collected_by(tams, muxed["video"]) is None
    assert source_collection(tams, muxed["multi"]) is None


def test_deleting_the_multi_flow_releases_the_members(tams, muxed):
    assert tams.client.delete(f"/flows/{muxed['multi']['id']}").status_code == 204
    assert collected_by(tams, muxed["video"]) is None
    assert collected_by(tams, muxed["audio"]) is None
    assert source_collected_by(tams, muxed["video"]) is None
    assert tams.client.get(f"/sources/{muxed['multi']['source_id']}").status_code == 404


def test_deleting_a_member_flow_removes_it_from_the_collection(tams, muxed):
    assert tams.client.delete(f"/flows/{muxed['audio']['id']}").status_code == 204
    collection = tams.client.get(f"/flows/{muxed['multi']['id']}/flow_collection")
    assert collection.status_code == 200
    assert [item["id"] for item in collection.json()] == [muxed["video"]["id"]]
    assert source_collection(tams, muxed["multi"]) == [{"id": muxed["video"]["source_id"], "role": "video"}]
    assert tams.client.get(f"/sources/{muxed['audio']['source_id']}").status_code == 404


def test_deleting_every_member_leaves_no_empty_collection_behind(tams, muxed):
    for kind in ("video", "audio"):
        assert tams.client.delete(f"/flows/{muxed[kind]['id']}").status_code == 204
    assert "flow_collection" not in tams.get_flow(muxed["multi"]["id"])
    assert tams.client.get(f"/flows/{muxed['multi']['id']}/flow_collection").status_code == 404
    assert "source_collection" not in tams.get_source(muxed["multi"]["source_id"])


def test_moving_a_member_to_another_source_moves_the_source_collection(tams, muxed):
    new_source = new_id()
    moved = {**muxed["video"], "source_id": new_source}
    assert tams.client.put(f"/flows/{moved['id']}", json=moved).status_code == 204
    assert {"id": new_source, "role": "video"} in source_collection(tams, muxed["multi"])
    assert {"id": muxed["video"]["source_id"], "role": "video"} not in source_collection(tams, muxed["multi"])
    assert tams.get_source(new_source)["collected_by"] == [muxed["multi"]["source_id"]]


def test_replacing_a_member_flow_keeps_it_collected(tams, muxed):
    replacement = {**muxed["video"], "label": "relabelled"}
    assert tams.client.put(f"/flows/{replacement['id']}", json=replacement).status_code == 204
    assert collected_by(tams, muxed["video"]) == [muxed["multi"]["id"]]


def test_a_collection_naming_an_unknown_flow_is_400(tams, muxed):
    path = f"/flows/{muxed['multi']['id']}/flow_collection"
    response = tams.client.put(path, json=[{"id": new_id(), "role": "video"}])
    assert response.status_code == 400
    assert len(tams.client.get(path).json()) == 2


def test_a_flow_put_with_a_collection_naming_an_unknown_flow_is_400(tams):
    multi = tams.flow_body("multi", flow_collection=[{"id": new_id(), "role": "video"}])
    assert tams.client.put(f"/flows/{multi['id']}", json=multi).status_code == 400
    assert tams.client.get(f"/flows/{multi['id']}").status_code == 404
    assert tams.client.get(f"/sources/{multi['source_id']}").status_code == 404


def test_a_flow_cannot_collect_itself(tams):
    multi = tams.put_flow("multi")
    path = f"/flows/{multi['id']}/flow_collection"
    assert tams.client.put(path, json=[{"id": multi["id"], "role": "self"}]).status_code == 400
    assert tams.client.get(path).status_code == 404


def test_collected_by_sent_by_a_client_is_ignored(tams, muxed):
    body = {**muxed["audio"], "collected_by": [new_id()]}
    assert tams.client.put(f"/flows/{body['id']}", json=body).status_code == 204
    assert collected_by(tams, muxed["audio"]) == [muxed["multi"]["id"]]


def test_flows_of_one_source_do_not_make_the_source_collect_itself(tams):
    source_id = new_id()
    video = tams.put_flow("video", source_id=source_id, container=None)
    tams.put_flow("multi", source_id=source_id, flow_collection=[{"id": video["id"], "role": "video"}])
    source = tams.get_source(source_id)
    assert "source_collection" not in source
    assert "collected_by" not in source
