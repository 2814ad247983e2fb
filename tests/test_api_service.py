"""Service endpoints: the API root, /service, storage backends, webhooks (not offered), delete requests."""

from __future__ import annotations

import pytest
from conftest import new_id


def test_root_lists_the_top_level_paths(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"service", "flows", "sources", "objects", "flow-delete-requests"}


def test_head_root_has_no_body(client):
    response = client.head("/")
    assert response.status_code == 200
    assert response.content == b""


def test_service_reports_api_version_and_type(client):
    response = client.get("/service")
    assert response.status_code == 200
    body = response.json()
    assert body["api_version"] == client.version
    assert body["type"].startswith("urn:x-tams:service")


def test_head_service_has_no_body(client):
    response = client.head("/service")
    assert response.status_code == 200
    assert response.content == b""


def test_post_service_sets_name_and_description(client):
    response = client.post("/service", json={"name": "Test store", "description": "A store for tests"})
    assert response.status_code == 200
    body = client.get("/service").json()
    assert body["name"] == "Test store"
    assert body["description"] == "A store for tests"
    assert body["api_version"] == client.version


def test_post_service_changes_only_the_fields_given(client):
    client.post("/service", json={"name": "First", "description": "Kept"})
    assert client.post("/service", json={"name": "Second"}).status_code == 200
    body = client.get("/service").json()
    assert (body["name"], body["description"]) == ("Second", "Kept")


@pytest.mark.parametrize("body", [{"name": 5}, ["name"], "name"])
def test_post_service_with_a_bad_body_is_rejected(client, body):
    response = client.post("/service", json=body)
    assert response.status_code == 400
    assert "name" not in client.get("/service").json()


def test_post_service_cannot_change_api_version_or_type(client):
    client.post("/service", json={"name": "x", "api_version": "1.0", "type": "urn:x-tams:service.other"})
    body = client.get("/service").json()
    assert body["api_version"] == client.version
    assert body["type"] != "urn:x-tams:service.other"


def test_storage_backends_lists_one_default_backend(client):
    response = client.get("/service/storage-backends")
    assert response.status_code == 200
    backends = response.json()
    assert len(backends) == 1
    backend = backends[0]
    assert backend["default_storage"] is True
    assert backend["store_type"] == "http_object_store"
    assert backend["label"]
    assert {"id", "provider", "store_product"} <= set(backend)


def test_head_storage_backends_has_no_body(client):
    response = client.head("/service/storage-backends")
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_webhooks_start_with_no_registration(client, method):
    response = client.request(method, "/service/webhooks")
    assert response.status_code == 200
    assert response.json() == [] if method == "GET" else response.content == b""


def test_service_advertises_webhooks(client):
    mechanisms = client.get("/service").json().get("event_stream_mechanisms", [])
    assert "webhooks" in [m["name"] for m in mechanisms]


def test_flow_delete_requests_is_an_empty_list(client):
    response = client.get("/flow-delete-requests")
    assert response.status_code == 200
    assert response.json() == []
    head = client.head("/flow-delete-requests")
    assert (head.status_code, head.content) == (200, b"")


def test_deletes_finish_at_once_so_no_delete_request_is_left(tams):
    flow = tams.put_flow()
    tams.post_segment(flow["id"], "[0:0_10:0)")
    assert tams.client.delete(f"/flows/{flow['id']}/segments").status_code == 204
    assert tams.client.delete(f"/flows/{flow['id']}").status_code == 204
    assert tams.client.get("/flow-delete-requests").json() == []


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_unknown_flow_delete_request_is_404(client, method):
    response = client.request(method, f"/flow-delete-requests/{new_id()}")
    assert response.status_code == 404
