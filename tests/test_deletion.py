"""Deletion: the 204 and 202 paths of both deletes, request progress, and object reclamation."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import (
    ADMIN_HEADERS,
    AppClient,
    allocate_objects,
    app_settings,
    backend_settings,
    flow_body,
    fresh_app,
    test_backends,
)
from starlette.testclient import TestClient

from backends import deletion, rules
from backends.timerange import TimeRange
from tams_server.app import TamsApp, create_app

THRESHOLD = 5


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_backend" in metafunc.fixturenames:
        metafunc.parametrize("store_backend", test_backends(metafunc.config))


@pytest.fixture
def app(store_backend: str, built_apps: dict[str, TamsApp]) -> TamsApp:
    """An app with small deletion thresholds on each backend under test, with a new empty store."""
    if store_backend not in built_apps:
        settings = app_settings(
            **backend_settings(store_backend),
            async_delete_threshold=THRESHOLD,
            delete_chunk=2,
            object_grace_s=0,
            unregistered_object_ttl_s=0,
        )
        built_apps[store_backend] = create_app(settings)
    return fresh_app(built_apps[store_backend])


@pytest.fixture
def client(app: TamsApp) -> TestClient:
    return AppClient(app, headers=ADMIN_HEADERS)


def flow_with_segments(client: TestClient, count: int) -> dict[str, Any]:
    flow = flow_body()
    assert client.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    ids = allocate_objects(client, flow["id"], count)
    segments = [{"object_id": object_id, "timerange": f"[{i}:0_{i + 1}:0)"} for i, object_id in enumerate(ids)]
    assert client.post(f"/flows/{flow['id']}/segments", json=segments).status_code == 201
    return flow


def wait_done(client: TestClient, location: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        request = client.get(location).json()
        if request["status"] in ("done", "error"):
            return request
        time.sleep(0.02)
    raise AssertionError(f"deletion request {location} did not finish")


def test_small_deletes_finish_at_once(client: TestClient) -> None:
    flow = flow_with_segments(client, THRESHOLD)
    assert client.delete(f"/flows/{flow['id']}/segments", params={"timerange": "[0:0_2:0)"}).status_code == 204
    remaining = [s["timerange"] for s in client.get(f"/flows/{flow['id']}/segments").json()]
    assert remaining == ["[2:0_3:0)", "[3:0_4:0)", "[4:0_5:0)"]
    assert client.delete(f"/flows/{flow['id']}").status_code == 204
    assert client.get(f"/flows/{flow['id']}").status_code == 404
    assert client.get("/flow-delete-requests").json() == []


def test_a_large_segment_delete_runs_on_and_reports_progress(client: TestClient) -> None:
    flow = flow_with_segments(client, 3 * THRESHOLD)
    response = client.delete(f"/flows/{flow['id']}/segments", params={"timerange": "[2:0_"})
    assert response.status_code == 202
    request = response.json()
    assert response.headers["location"].endswith(f"/flow-delete-requests/{request['id']}")
    assert request["flow_id"] == flow["id"]
    assert request["delete_flow"] is False
    assert request["timerange_to_delete"] == "[2:0_"
    assert request["status"] in ("created", "started", "done")
    finished = wait_done(client, response.headers["location"])
    assert finished["status"] == "done"
    assert finished["timerange_remaining"] == "()"
    assert [s["timerange"] for s in client.get(f"/flows/{flow['id']}/segments").json()] == [
        "[0:0_1:0)",
        "[1:0_2:0)",
    ]
    assert [r["id"] for r in client.get("/flow-delete-requests").json()] == [request["id"]]


def test_a_large_flow_delete_runs_on_and_deletes_the_source(client: TestClient) -> None:
    flow = flow_with_segments(client, 3 * THRESHOLD)
    response = client.delete(f"/flows/{flow['id']}")
    assert response.status_code == 202
    assert response.json()["delete_flow"] is True
    assert wait_done(client, response.headers["location"])["status"] == "done"
    assert client.get(f"/flows/{flow['id']}").status_code == 404
    assert client.get(f"/sources/{flow['source_id']}").status_code == 404


def test_an_object_id_filter_limits_a_large_delete(client: TestClient) -> None:
    flow = flow_body()
    client.put(f"/flows/{flow['id']}", json=flow)
    assert client.post(f"/flows/{flow['id']}/storage", json={"object_ids": ["a", "b"]}).status_code == 201
    segments = [{"object_id": "a" if i % 2 else "b", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(4 * THRESHOLD)]
    client.post(f"/flows/{flow['id']}/segments", json=segments)
    response = client.delete(f"/flows/{flow['id']}/segments", params={"object_id": "a"})
    assert response.status_code == 202
    wait_done(client, response.headers["location"])
    assert {s["object_id"] for s in client.get(f"/flows/{flow['id']}/segments").json()} == {"b"}


def upload(client: TestClient, flow_id: str) -> tuple[str, str]:
    [media] = client.post(f"/flows/{flow_id}/storage", json={"limit": 1}).json()["media_objects"]
    headers = {"content-type": media["put_url"]["content-type"]}
    assert client.put(media["put_url"]["url"], content=b"media", headers=headers).status_code == 200
    return media["object_id"], media["put_url"]["url"]


def test_bytes_go_only_when_no_flow_references_the_object(app: TamsApp, client: TestClient) -> None:
    flow, other = flow_body(), flow_body()
    for f in (flow, other):
        client.put(f"/flows/{f['id']}", json=f)
    object_id, _ = upload(client, flow["id"])
    for f in (flow, other):
        segment = {"object_id": object_id, "timerange": "[0:0_1:0)"}
        assert client.post(f"/flows/{f['id']}/segments", json=segment).status_code == 201
    get_url = client.get(f"/flows/{other['id']}/segments").json()[0]["get_urls"][0]["url"]

    client.delete(f"/flows/{flow['id']}/segments")
    assert app.backend.reclaim_objects() == 0  # the other flow still uses it
    assert client.get(get_url).content == b"media"

    client.delete(f"/flows/{other['id']}/segments")
    assert app.backend.reclaim_objects() == 1  # grace period 0 in this app
    assert client.get(get_url).status_code == 404
    assert client.get(f"/objects/{object_id}").status_code == 404


def test_objects_allocated_but_never_registered_are_reclaimed(app: TamsApp, client: TestClient) -> None:
    flow = flow_body()
    client.put(f"/flows/{flow['id']}", json=flow)
    object_id, _ = upload(client, flow["id"])
    assert client.get(f"/objects/{object_id}").status_code == 404  # allocated, not registered (8.x MUST)
    assert app.backend.reclaim_objects() == 1
    assert client.get(f"/objects/{object_id}").status_code == 404


def test_the_grace_period_keeps_unreferenced_bytes(client: TestClient) -> None:
    app = create_app(app_settings(object_grace_s=3600, unregistered_object_ttl_s=3600))
    client = TestClient(app, headers=ADMIN_HEADERS)
    flow = flow_body()
    client.put(f"/flows/{flow['id']}", json=flow)
    object_id, _ = upload(client, flow["id"])
    client.post(f"/flows/{flow['id']}/segments", json={"object_id": object_id, "timerange": "[0:0_1:0)"})
    client.delete(f"/flows/{flow['id']}/segments")
    assert app.backend.reclaim_objects() == 0
    assert client.get(f"/objects/{object_id}").json()["referenced_by_flows"] == []


def test_each_chunk_shrinks_the_remaining_timerange(app: TamsApp, client: TestClient) -> None:
    flow = flow_with_segments(client, 5)  # [0:0_1:0) ... [4:0_5:0)
    request = deletion.new_request(flow["id"], TimeRange.parse("[1:0_4:0]"), None, delete_flow=False)
    assert str(app.backend.delete_chunk(request, 2)) == "[3:0_4:0]"  # [1:0_2:0) and [2:0_3:0) went
    request["timerange_remaining"] = "[3:0_4:0]"
    assert app.backend.delete_chunk(request, 2).is_empty  # [3:0_4:0) went; [4:0_5:0) is not covered
    timeranges = [s["timerange"] for s in client.get(f"/flows/{flow['id']}/segments").json()]
    assert timeranges == ["[0:0_1:0)", "[4:0_5:0)"]


def test_an_init_object_stays_while_a_kept_media_object_names_it(
    app: TamsApp, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One rule (media_objects.spare_named_inits) on every backend: while a media object is kept
    (here: still in its grace period), the init object it names stays, whatever its own timers say."""
    flow = flow_body()
    client.put(f"/flows/{flow['id']}", json=flow)
    init_id, _ = upload(client, flow["id"])
    time.sleep(0.01)
    cut = time.time()
    time.sleep(0.01)
    media_id, _ = upload(client, flow["id"])
    segment = {"object_id": media_id, "timerange": "[0:0_1:0)", "init_object_id": init_id}
    assert client.post(f"/flows/{flow['id']}/segments", json=segment).status_code == 201
    client.delete(f"/flows/{flow['id']}/segments")
    real = rules.reclaimable
    # Only objects allocated before ``cut`` (the init object) are past their time.
    monkeypatch.setattr(rules, "reclaimable", lambda unregistered, allocated_at, *rest: allocated_at < cut)
    assert app.backend.reclaim_objects() == 0
    assert client.get(f"/objects/{init_id}").status_code == 200
    monkeypatch.setattr(rules, "reclaimable", real)
    assert app.backend.reclaim_objects() == 2
    assert client.get(f"/objects/{init_id}").status_code == 404


def test_an_init_object_goes_with_the_controlled_media_object_naming_it(app: TamsApp, client: TestClient) -> None:
    flow = flow_body()
    client.put(f"/flows/{flow['id']}", json=flow)
    init_id, _ = upload(client, flow["id"])
    media_id, _ = upload(client, flow["id"])
    segment = {"object_id": media_id, "timerange": "[0:0_1:0)", "init_object_id": init_id}
    assert client.post(f"/flows/{flow['id']}/segments", json=segment).status_code == 201
    client.delete(f"/flows/{flow['id']}/segments")
    assert app.backend.reclaim_objects() == 2
    assert client.get(f"/objects/{init_id}").status_code == 404
