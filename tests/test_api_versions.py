"""One server, several API versions: base paths, the root's default, URLs, page keys, scopes."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ADMIN_HEADERS, OFFICIAL_SPECS, allocate_objects, app_settings, flow_body, new_id
from starlette.testclient import TestClient

import spec
from tams_server.app import create_app
from tams_server.auth import CredentialStore
from tams_server.cli import spec_overrides
from tams_server.versions import describe_mounts, plan_mounts


def spec_82() -> Path:
    """A spec file of 8.2: ours when written, else the official one; skip without either."""
    for candidate in (spec.spec_path("8.2"), OFFICIAL_SPECS["8.2"]):
        if candidate.is_file():
            return candidate
    pytest.skip("no TAMS 8.2 spec file here")


@pytest.fixture
def two_versions() -> TestClient:
    """A server of 7.0 and 8.2, 8.2 at the root."""
    settings = app_settings(versions=["7.0", "8.2"], default_version="8.2", specs={"8.2": str(spec_82())})
    return TestClient(create_app(settings), headers=ADMIN_HEADERS)


def test_each_version_is_served_under_its_prefix_and_the_default_at_the_root(two_versions: TestClient) -> None:
    assert two_versions.get("/v7.0/service").json()["api_version"] == "7.0"
    assert two_versions.get("/v8.2/service").json()["api_version"] == "8.2"
    assert two_versions.get("/service").json()["api_version"] == "8.2"
    # A base path alone is the root listing of its version, as with a trailing slash.
    for path in ("/v7.0", "/v7.0/", "/v8.2", "/"):
        response = two_versions.get(path)
        assert response.status_code == 200, path
        assert "flows" in response.json()
    assert two_versions.get("/v9.9/flows").status_code == 404


def test_data_written_under_one_version_is_read_under_the_other(two_versions: TestClient) -> None:
    body = flow_body()
    assert two_versions.put(f"/v7.0/flows/{body['id']}", json=body).status_code == 201
    assert two_versions.get(f"/v8.2/flows/{body['id']}").json()["id"] == body["id"]
    assert two_versions.get(f"/flows/{body['id']}").json()["source_id"] == body["source_id"]


def test_links_carry_the_base_path_and_page_keys_stay_with_their_version(two_versions: TestClient) -> None:
    for _ in range(3):
        body = flow_body()
        two_versions.put(f"/v7.0/flows/{body['id']}", json=body)
    for base in ("/v7.0", "/v8.2", ""):
        response = two_versions.get(f"{base}/flows", params={"limit": 1})
        assert response.headers["link"].startswith(f"<http://testserver{base}/flows?")
        key = response.headers["x-paging-nextkey"]
        assert two_versions.get(f"{base}/flows", params={"limit": 1, "page": key}).status_code == 200
    key_70 = two_versions.get("/v7.0/flows", params={"limit": 1}).headers["x-paging-nextkey"]
    refused = two_versions.get("/v8.2/flows", params={"limit": 1, "page": key_70})
    assert refused.status_code == 400
    assert "page key" in refused.json()["summary"]
    # The root serves 8.2, so an 8.2 key is good there.
    key_82 = two_versions.get("/v8.2/flows", params={"limit": 1}).headers["x-paging-nextkey"]
    assert two_versions.get("/flows", params={"limit": 1, "page": key_82}).status_code == 200


def test_a_page_key_of_one_order_is_refused_in_the_other(two_versions: TestClient) -> None:
    body = flow_body()
    two_versions.put(f"/v7.0/flows/{body['id']}", json=body)
    ids = allocate_objects(two_versions, body["id"], 3, "/v7.0")
    segments = [{"object_id": object_id, "timerange": f"[{i}:0_{i + 1}:0)"} for i, object_id in enumerate(ids)]
    assert two_versions.post(f"/v7.0/flows/{body['id']}/segments", json=segments).status_code == 201
    path = f"/v7.0/flows/{body['id']}/segments"
    forward = two_versions.get(path, params={"limit": 1}).headers["x-paging-nextkey"]
    reverse = two_versions.get(path, params={"limit": 1, "reverse_order": "true"}).headers["x-paging-nextkey"]
    assert two_versions.get(path, params={"limit": 1, "page": forward}).status_code == 200
    assert two_versions.get(path, params={"limit": 1, "page": reverse, "reverse_order": "true"}).status_code == 200
    assert two_versions.get(path, params={"limit": 1, "page": reverse}).status_code == 400
    assert two_versions.get(path, params={"limit": 1, "page": forward, "reverse_order": "true"}).status_code == 400


def test_a_background_delete_is_located_under_the_base_path_it_was_asked_under() -> None:
    settings = app_settings(
        versions=["7.0", "8.2"], default_version="7.0", specs={"8.2": str(spec_82())}, async_delete_threshold=1
    )
    client = TestClient(create_app(settings), headers=ADMIN_HEADERS)
    for base in ("/v7.0", "/v8.2", ""):
        body = flow_body()
        client.put(f"{base}/flows/{body['id']}", json=body)
        ids = allocate_objects(client, body["id"], 3, base)
        segments = [{"object_id": object_id, "timerange": f"[{i}:0_{i + 1}:0)"} for i, object_id in enumerate(ids)]
        assert client.post(f"{base}/flows/{body['id']}/segments", json=segments).status_code == 201
        response = client.delete(f"{base}/flows/{body['id']}/segments")
        assert response.status_code == 202
        assert response.headers["location"] == f"http://testserver{base}/flow-delete-requests/{response.json()['id']}"


@pytest.mark.parametrize("base", ["", "/v7.0", "/v8.2"])
def test_webhook_routes_need_admin_under_every_base_path(tmp_path: Path, base: str) -> None:
    store = CredentialStore(tmp_path / "credentials.json")
    everything_but_admin = store.add_token("editor", ["read", "write", "delete"])
    settings = app_settings(
        data_dir=str(tmp_path), versions=["7.0", "8.2"], default_version="8.2", specs={"8.2": str(spec_82())}
    )
    client = TestClient(create_app(settings), headers={"Authorization": f"Bearer {everything_but_admin}"})
    assert client.get(f"{base}/flows").status_code == 200
    webhook = {"url": "http://127.0.0.1:9/", "events": ["flows/created"]}
    for path in ("/service/webhooks", "/service/webhooks/", f"/service/webhooks/{new_id()}"):
        for method in ("GET", "HEAD", "POST", "PUT", "DELETE"):
            response = client.request(method, base + path, json=webhook if method in ("POST", "PUT") else None)
            assert response.status_code == 403, (method, base + path, response.text)


def test_only_the_configured_versions_are_served() -> None:
    client = TestClient(create_app(app_settings(versions=["7.0"], default_version=None)), headers=ADMIN_HEADERS)
    assert client.get("/service").json()["api_version"] == "7.0"
    assert client.get("/v7.0/service").status_code == 200
    assert client.get("/v8.2/service").status_code == 404


def test_a_single_spec_file_is_served_alone_under_its_version() -> None:
    official = spec_82()
    mounts = plan_mounts(None, None, str(official), {})
    assert [(m.version, m.base_path) for m in mounts] == [("8.2", "/v8.2"), ("8.2", "")]
    assert {m.spec_path for m in mounts} == {official}
    assert describe_mounts(mounts) == "TAMS 8.2 at /v8.2 and /"


def test_mount_settings_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match=r"default_version 8\.2"):
        plan_mounts(["7.0"], "8.2", None, {})
    with pytest.raises(ValueError, match=r"no spec file for TAMS 6\.0"):
        plan_mounts(["6.0"], None, None, {})
    with pytest.raises(ValueError, match=r"describes TAMS 7\.0, not 8\.2"):
        plan_mounts(["7.0", "8.2"], None, None, {"8.2": str(spec.spec_path("7.0"))})


def test_spec_options_of_the_command_line(tmp_path: Path) -> None:
    assert spec_overrides(["8.2=/x/8.2.yaml", "7.0=/y.yaml"]) == {"specs": {"8.2": "/x/8.2.yaml", "7.0": "/y.yaml"}}
    assert spec_overrides(["/x/one.yaml"]) == {"spec": "/x/one.yaml"}
    odd = tmp_path / "a=b.yaml"
    odd.write_text("")
    assert spec_overrides([str(odd)]) == {"spec": str(odd)}  # an existing file is a file, "=" or not


def test_service_shows_each_version_its_own_fields(two_versions: TestClient) -> None:
    v70, v82 = two_versions.get("/v7.0/service").json(), two_versions.get("/v8.2/service").json()
    # 8.1+: how long an allocated object and a presigned URL stay usable, from the settings that decide it.
    assert v82["min_object_timeout"] == "86400:0"
    assert v82["min_presigned_url_timeout"] == "3600:0"
    assert "min_object_timeout" not in v70 and "min_presigned_url_timeout" not in v70
    for info in (v70, v82):
        assert info["service_version"].endswith("TAMS 7.0 at /v7.0, TAMS 8.2 at /v8.2 and /")
