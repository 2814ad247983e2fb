"""TAMS 8.x flow profiles, the flow PUT rules they bring, ``vfr`` and ordered collections,
and how each of them looks to a 7.0 client of the same store."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_upgrade
from conftest import AUDIO, FLOW_TEMPLATES, VIDEO, TamsClient, app_settings, fresh_app, new_id
from starlette.testclient import TestClient

from tams_server.app import create_app
from tams_server.auth import CredentialStore, required_scope

V82 = pytest.mark.versions("8.2")
# Tests of both versions at once (a 7.0 and an 8.2 client of one store) run once.
BOTH = pytest.mark.versions("7.0")

HOUSE_VIDEO: dict[str, Any] = {
    "format": VIDEO,
    "codec": "video/h264",
    "container": "video/mp2t",
    "avg_bit_rate": 50000,
    "essence_parameters": {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 50}},
}
PROXY_VIDEO: dict[str, Any] = {**HOUSE_VIDEO, "avg_bit_rate": 2000, "codec": "video/mp4v-es"}
HOUSE_AUDIO: dict[str, Any] = {
    "format": AUDIO,
    "codec": "audio/aac",
    "container": "video/mp2t",
    "essence_parameters": {"sample_rate": 48000, "channels": 2},
}


def profile_body(metadata: dict[str, Any], profile_id: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"id": profile_id or new_id(), "flow_metadata": copy.deepcopy(metadata), **fields}


def post_profile(client: TamsClient, metadata: dict[str, Any] = HOUSE_VIDEO, **fields: Any) -> dict[str, Any]:
    body = profile_body(metadata, **fields)
    response = client.post(f"/service/profiles/{body['id']}", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def put(client: TamsClient, body: dict[str, Any]) -> Any:
    return client.put(f"/flows/{body['id']}", json=body)


def profiled_flow(client: TamsClient, profile_id: str, **fields: Any) -> dict[str, Any]:
    body = {"id": new_id(), "source_id": new_id(), "profile_id": profile_id, **fields}
    response = put(client, body)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def both(app_template: Any) -> Iterator[tuple[TamsClient, TamsClient]]:
    """A 7.0 and an 8.2 client of one store (of the backend under test)."""
    app = fresh_app(app_template)
    with TamsClient(app, "7.0") as c70, TamsClient(app, "8.2") as c82:
        yield c70, c82


# --- profiles ----------------------------------------------------------------------------


@V82
def test_a_profile_is_created_once_and_read_back(client: TamsClient) -> None:
    profile = post_profile(client, label="house", tags={"encoder": "x264"})
    assert profile["flow_metadata"] == HOUSE_VIDEO
    assert profile["label"] == "house" and "created" in profile
    assert client.get(f"/service/profiles/{profile['id']}").json() == profile
    assert client.head(f"/service/profiles/{profile['id']}").status_code == 200
    # Immutable: the same id again is refused, even with the same body, and nothing changes.
    again = client.post(f"/service/profiles/{profile['id']}", json={**profile, "label": "changed"})
    assert again.status_code == 400
    assert client.get(f"/service/profiles/{profile['id']}").json()["label"] == "house"


@V82
def test_profile_errors(client: TamsClient) -> None:
    assert client.get(f"/service/profiles/{new_id()}").status_code == 404
    assert client.head(f"/service/profiles/{new_id()}").status_code == 404
    body = profile_body(HOUSE_VIDEO)
    assert client.post(f"/service/profiles/{new_id()}", json=body).status_code == 400  # id mismatch
    # A multi-essence profile, and a video profile breaking the vfr rule, are not profiles.
    multi = profile_body({"format": "urn:x-nmos:format:multi", "container": "video/mp2t"})
    assert client.post(f"/service/profiles/{multi['id']}", json=multi).status_code == 400
    no_rate = copy.deepcopy(HOUSE_VIDEO)
    del no_rate["essence_parameters"]["frame_rate"]
    bad = profile_body(no_rate)
    assert client.post(f"/service/profiles/{bad['id']}", json=bad).status_code == 400
    assert client.get("/service/profiles").json() == []


@V82
def test_profiles_are_filtered_and_paged(client: TamsClient) -> None:
    house = post_profile(client, HOUSE_VIDEO, label="house")
    proxy = post_profile(client, PROXY_VIDEO, label="proxy")
    audio = post_profile(client, HOUSE_AUDIO, label="house")

    def ids(**params: Any) -> set[str]:
        response = client.get("/service/profiles", params=params)
        assert response.status_code == 200
        return {p["id"] for p in response.json()}

    assert ids() == {house["id"], proxy["id"], audio["id"]}
    assert ids(format=VIDEO) == {house["id"], proxy["id"]}
    assert ids(codec="video/mp4v-es") == {proxy["id"]}
    assert ids(label="house") == {house["id"], audio["id"]}
    assert ids(label="house", format=AUDIO) == {audio["id"]}
    assert ids(format="urn:x-nmos:format:multi") == set()  # no multi-essence profiles

    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        response = client.get("/service/profiles", params=params)
        assert response.headers["x-paging-limit"] == "2"
        seen += [p["id"] for p in response.json()]
        if "x-paging-nextkey" not in response.headers:
            break
        params["page"] = response.headers["x-paging-nextkey"]
    assert sorted(seen) == seen and set(seen) == ids()
    head = client.head("/service/profiles", params={"limit": 1})
    assert head.status_code == 200 and "x-paging-nextkey" in head.headers


def test_creating_a_profile_needs_admin(tmp_path: Path) -> None:
    assert required_scope("POST", f"/service/profiles/{new_id()}") == "admin"
    assert required_scope("GET", f"/service/profiles/{new_id()}") == "read"
    assert required_scope("GET", "/service/profiles") == "read"
    store = CredentialStore(tmp_path / "credentials.json")
    editor = store.add_token("editor", ["read", "write", "delete"])
    settings = app_settings(data_dir=str(tmp_path), versions=["7.0", "8.2"], default_version="8.2")
    client = TestClient(create_app(settings), headers={"Authorization": f"Bearer {editor}"})
    body = profile_body(HOUSE_VIDEO)
    for base in ("", "/v8.2"):
        assert client.post(f"{base}/service/profiles/{body['id']}", json=body).status_code == 403
        assert client.get(f"{base}/service/profiles").status_code == 200


# --- flows from profiles -----------------------------------------------------------------


@V82
def test_a_flow_from_a_profile_carries_its_technical_metadata(client: TamsClient) -> None:
    profile = post_profile(client, tags={"encoder": "x264"})
    flow = profiled_flow(client, profile["id"], label="cam 1", max_bit_rate=80000, tags={"a": "b"})
    for name, value in HOUSE_VIDEO.items():
        assert flow[name] == value
    assert flow["profile_id"] == profile["id"]
    assert flow["tags"] == {"a": "b"}  # profile tags are not copied
    assert flow["max_bit_rate"] == 80000
    assert client.get(f"/flows/{flow['id']}").json() == flow
    listed = client.get("/flows", params={"format": VIDEO, "frame_width": 1920}).json()
    assert [f["id"] for f in listed] == [flow["id"]]
    # Common fields stay editable through a PUT naming the profile again.
    assert put(client, {"id": flow["id"], "source_id": flow["source_id"], "profile_id": profile["id"], "label": "x"})
    assert client.get(f"/flows/{flow['id']}/label").json() == "x"


@V82
def test_flow_put_profile_rules(client: TamsClient) -> None:
    profile = post_profile(client)
    base = {"id": new_id(), "source_id": new_id(), "profile_id": profile["id"]}
    # Unknown profile.
    assert put(client, {**base, "profile_id": new_id()}).status_code == 400
    # profile_id with a full technical description (both schema branches match) ...
    assert put(client, {**base, **FLOW_TEMPLATES["video"]}).status_code == 400
    # ... and with any single technical field, which the schema lets through.
    for name, value in HOUSE_VIDEO.items():
        response = put(client, {**base, name: value})
        assert response.status_code == 400, name
        assert response.json()["type"] == "BadRequest"
    assert client.get(f"/flows/{base['id']}").status_code == 404
    assert put(client, base).status_code == 201


@V82
def test_bit_rates_of_a_profiled_flow(client: TamsClient) -> None:
    flow = profiled_flow(client, post_profile(client)["id"])
    assert client.put(f"/flows/{flow['id']}/avg_bit_rate", json=1).status_code == 400
    # Removing it is refused with the status DELETE declares for a change the flow does not permit.
    refused = client.delete(f"/flows/{flow['id']}/avg_bit_rate")
    assert refused.status_code == 403 and "comes from profile" in refused.json()["summary"]
    assert client.get(f"/flows/{flow['id']}/avg_bit_rate").json() == HOUSE_VIDEO["avg_bit_rate"]
    # max_bit_rate is measured per flow, never part of a profile.
    assert client.put(f"/flows/{flow['id']}/max_bit_rate", json=90000).status_code == 204
    assert client.get(f"/flows/{flow['id']}/max_bit_rate").json() == 90000


@V82
def test_unlinking_a_profile(client: TamsClient) -> None:
    flow = profiled_flow(client, post_profile(client)["id"])
    common = {"id": flow["id"], "source_id": flow["source_id"]}
    # Changing technical metadata while linked is refused.
    assert put(client, {**common, **PROXY_VIDEO}).status_code == 400
    # Sending it again unchanged keeps the link.
    assert put(client, {**common, **HOUSE_VIDEO, "label": "same"}).status_code == 204
    assert client.get(f"/flows/{flow['id']}").json()["profile_id"] == flow["profile_id"]
    # profile_id "" with a full description unlinks: then anything may change.
    assert put(client, {**common, **PROXY_VIDEO, "profile_id": ""}).status_code == 204
    stored = client.get(f"/flows/{flow['id']}").json()
    assert "profile_id" not in stored and stored["codec"] == PROXY_VIDEO["codec"]
    assert client.put(f"/flows/{flow['id']}/avg_bit_rate", json=1).status_code == 204
    # "" alone is not a valid flow.
    assert put(client, {**common, "profile_id": ""}).status_code == 400


@V82
def test_a_read_only_profiled_flow_refuses_any_put(client: TamsClient) -> None:
    flow = profiled_flow(client, post_profile(client)["id"])
    assert client.put(f"/flows/{flow['id']}/read_only", json=True).status_code == 204
    common = {"id": flow["id"], "source_id": flow["source_id"]}
    assert put(client, {**common, **PROXY_VIDEO}).status_code == 403
    assert put(client, {**common, "profile_id": flow["profile_id"], "label": "x"}).status_code == 403


@BOTH
def test_a_profiled_flow_seen_from_7_0(both: tuple[TamsClient, TamsClient]) -> None:
    c70, c82 = both
    flow = profiled_flow(c82, post_profile(c82)["id"], label="cam")
    seen = c70.get(f"/flows/{flow['id']}").json()
    assert "profile_id" not in seen
    assert {k: seen[k] for k in HOUSE_VIDEO} == HOUSE_VIDEO
    assert "profile_id" not in c70.get("/flows").json()[0]
    # A 7.0 client writing it back with another label keeps the link; changing its technical
    # metadata is refused (it cannot unlink a profile it does not know of).
    assert c70.put(f"/flows/{flow['id']}", json={**seen, "label": "renamed"}).status_code == 204
    assert c82.get(f"/flows/{flow['id']}").json()["profile_id"] == flow["profile_id"]
    assert c70.put(f"/flows/{flow['id']}", json={**seen, "codec": "video/mp4v-es"}).status_code == 400
    assert c70.put(f"/flows/{flow['id']}/avg_bit_rate", json=5).status_code == 400


# --- vfr ---------------------------------------------------------------------------------


def video(**params: Any) -> dict[str, Any]:
    body = {"id": new_id(), "source_id": new_id(), **copy.deepcopy(FLOW_TEMPLATES["video"])}
    body["essence_parameters"].pop("frame_rate")
    body["essence_parameters"].update(params)
    return body


@V82
def test_vfr_rules_under_8_2(client: TamsClient) -> None:
    assert put(client, video()).status_code == 400  # no frame_rate, no vfr
    assert put(client, video(vfr=False)).status_code == 400
    assert put(client, video(vfr=True, frame_rate={"numerator": 25})).status_code == 400
    body = video(vfr=True, init_segments=True)
    assert put(client, body).status_code == 201
    assert client.get(f"/flows/{body['id']}").json()["essence_parameters"] == body["essence_parameters"]


@BOTH
def test_vfr_across_versions(both: tuple[TamsClient, TamsClient]) -> None:
    c70, c82 = both
    # 7.0 allows a video flow without frame_rate: 8.2 sees it as vfr, 7.0 as written.
    body = video()
    assert put(c70, body).status_code == 201
    assert c70.get(f"/flows/{body['id']}").json()["essence_parameters"] == body["essence_parameters"]
    assert c82.get(f"/flows/{body['id']}").json()["essence_parameters"]["vfr"] is True
    # 8.2's vfr and init_segments are not shown to 7.0 (closed essence_parameters there).
    other = video(vfr=True, init_segments=True)
    assert put(c82, other).status_code == 201
    params = c70.get(f"/flows/{other['id']}").json()["essence_parameters"]
    assert "vfr" not in params and "init_segments" not in params
    multi = {"id": new_id(), "source_id": new_id(), **FLOW_TEMPLATES["multi"], "essence_parameters": {}}
    multi["essence_parameters"]["init_segments"] = True
    assert put(c82, multi).status_code == 201
    assert "essence_parameters" not in c70.get(f"/flows/{multi['id']}").json()
    assert {f["id"] for f in c70.get("/flows").json()} == {body["id"], other["id"], multi["id"]}


# --- ordered collections -----------------------------------------------------------------


def members(client: TamsClient, n: int) -> list[dict[str, Any]]:
    flows = []
    for _ in range(n):
        body = {"id": new_id(), "source_id": new_id(), **copy.deepcopy(FLOW_TEMPLATES["audio"])}
        assert put(client, body).status_code == 201
        flows.append(body)
    return flows


@V82
def test_collection_order_is_kept_and_role_optional(client: TamsClient) -> None:
    a, b, c = members(client, 3)
    items = [{"id": c["id"]}, {"id": a["id"], "role": "L"}, {"id": b["id"]}]
    multi = {"id": new_id(), "source_id": new_id(), **FLOW_TEMPLATES["multi"], "flow_collection": items}
    assert put(client, multi).status_code == 201
    assert client.get(f"/flows/{multi['id']}").json()["flow_collection"] == items
    assert client.get(f"/flows/{multi['id']}/flow_collection").json() == items
    reordered = [items[2], items[0], items[1]]
    assert client.put(f"/flows/{multi['id']}/flow_collection", json=reordered).status_code == 204
    assert client.get(f"/flows/{multi['id']}/flow_collection").json() == reordered
    source = client.get(f"/sources/{multi['source_id']}").json()
    assert {(i["id"], i.get("role")) for i in source["source_collection"]} == {
        (a["source_id"], "L"),
        (b["source_id"], None),
        (c["source_id"], None),
    }


@BOTH
def test_collections_without_roles_seen_from_7_0(both: tuple[TamsClient, TamsClient]) -> None:
    c70, c82 = both
    a, b = members(c82, 2)
    items = [{"id": b["id"]}, {"id": a["id"], "role": "R"}]
    multi = {"id": new_id(), "source_id": new_id(), **FLOW_TEMPLATES["multi"], "flow_collection": items}
    assert put(c82, multi).status_code == 201
    filled = [{"id": b["id"], "role": ""}, {"id": a["id"], "role": "R"}]
    assert c70.get(f"/flows/{multi['id']}").json()["flow_collection"] == filled
    assert c70.get(f"/flows/{multi['id']}/flow_collection").json() == filled
    listed = {f["id"]: f for f in c70.get("/flows").json()}
    assert listed[multi["id"]]["flow_collection"] == filled
    roles = {i["id"]: i["role"] for i in c70.get(f"/sources/{multi['source_id']}").json()["source_collection"]}
    assert roles == {b["source_id"]: "", a["source_id"]: "R"}
    # Written through 7.0, the order is kept for 8.2 too.
    order = [{"id": a["id"], "role": "x"}, {"id": b["id"], "role": "y"}]
    assert c70.put(f"/flows/{multi['id']}/flow_collection", json=order).status_code == 204
    assert c82.get(f"/flows/{multi['id']}/flow_collection").json() == order


def test_a_video_flow_without_frame_rate_from_the_7_0_release_reads_as_vfr_under_8_2(tmp_path: Path) -> None:
    """A flow the 7.0-only release stored without frame_rate (and so without vfr)."""
    app = test_upgrade.open_local(tmp_path)  # the 7.0-only release's data directory (local backend)
    c82, c70 = test_upgrade.client(app, "8.2"), test_upgrade.client(app, "7.0")
    legacy = [
        f for f in c70.get("/flows").json() if f["format"] == VIDEO and "frame_rate" not in f["essence_parameters"]
    ]
    assert legacy
    for flow in legacy:
        assert c82.get(f"/flows/{flow['id']}").json()["essence_parameters"]["vfr"] is True
        assert "vfr" not in c70.get(f"/flows/{flow['id']}").json()["essence_parameters"]
    assert all(
        "frame_rate" in f["essence_parameters"] or f["essence_parameters"]["vfr"]
        for f in c82.get("/flows", params={"format": VIDEO}).json()
    )
    app.backend.close()


def test_profiles_and_profiled_flows_survive_a_restart_of_the_local_store(tmp_path: Path) -> None:
    settings = app_settings(backend="local", data_dir=str(tmp_path), versions=["7.0", "8.2"], default_version="8.2")
    app = create_app(settings)
    with TamsClient(app, "8.2") as c82:
        profile = post_profile(c82)
        flow = profiled_flow(c82, profile["id"])
    app.backend.close()
    app = create_app(settings)
    try:
        with TamsClient(app, "8.2") as c82:
            assert c82.get(f"/service/profiles/{profile['id']}").json() == profile
            assert c82.get(f"/flows/{flow['id']}").json()["profile_id"] == profile["id"]
            again = profile_body(HOUSE_VIDEO, profile["id"])
            assert c82.post(f"/service/profiles/{profile['id']}", json=again).status_code == 400
    finally:
        app.backend.close()


@V82
def test_flow_events_are_shown_to_a_7_0_registration_as_7_0_flows(client: TamsClient) -> None:
    from test_webhooks import Receiver

    receiver = Receiver()
    try:
        with TamsClient(client.app, "7.0") as c70:
            body = {"url": receiver.url + "/70", "events": ["flows/created"]}
            assert c70.post("/service/webhooks", json=body).status_code in (200, 201)
            hook82 = {"url": receiver.url + "/82", "events": ["flows/created"]}
            assert client.post("/service/webhooks", json=hook82).status_code == 201
            flow = profiled_flow(client, post_profile(client)["id"])
            assert client.app.webhooks.wait_idle(10)
        by_path = {r["path"]: r["body"]["event"]["flow"] for r in receiver.received}
        assert by_path["/hook/82"]["profile_id"] == flow["profile_id"]
        assert "profile_id" not in by_path["/hook/70"]
        assert by_path["/hook/70"]["codec"] == HOUSE_VIDEO["codec"]
    finally:
        receiver.server.shutdown()
