"""Hosts a request may name (``trusted_hosts``), writes from other sites' pages, the data directory's
modes: a client must not choose the host of URLs handed to others, and a web page must not write
with a browser's credentials."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

import pytest
from conftest import ADMIN_HEADERS, app_settings, error_body_problems, flow_body
from starlette.testclient import TestClient

from tams_server.app import create_app
from tams_server.origins import HostPolicy, is_loopback_interface


def client_for(host: str, **settings: object) -> TestClient:
    app = create_app(app_settings(**settings))
    return TestClient(app, base_url=f"http://{host}", headers=ADMIN_HEADERS, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("trusted", "host", "allowed"),
    [
        (["tams.example"], "tams.example", True),
        (["tams.example"], "tams.example:8080", True),
        (["tams.example"], "TAMS.example", True),
        (["tams.example"], "evil.example", False),
        (["tams.example"], "tams.example.evil.example", False),
        (["tams.example:443"], "tams.example:8080", False),
        (["*.example"], "tams.example", True),
        (["*.example"], "example", False),
        (["[::1]"], "[::1]:4010", True),
        (["127.0.0.1"], "127.0.0.1:4010", True),
        (None, "anything.example", True),
        ([], "anything.example", False),
    ],
)
def test_host_policy(trusted: list[str] | None, host: str, allowed: bool) -> None:
    assert HostPolicy(trusted, None).host_allowed(host) is allowed


def test_a_request_for_an_untrusted_host_is_refused_before_anything_is_served() -> None:
    with client_for("evil.example", trusted_hosts=["tams.example"]) as client:
        response = client.get("/service")
        assert response.status_code == 400
        assert error_body_problems(response) is None
        assert "evil.example" in response.json()["summary"]


def test_urls_handed_out_name_a_trusted_host() -> None:
    flow = flow_body()
    with client_for("tams.example", trusted_hosts=["tams.example"]) as client:
        assert client.put(f"/flows/{flow['id']}", json=flow).status_code == 201
        [allocated] = client.post(f"/flows/{flow['id']}/storage", json={"limit": 1}).json()["media_objects"]
        assert allocated["put_url"]["url"].startswith("http://tams.example/_media/")


def test_the_public_url_host_is_trusted_with_the_list() -> None:
    settings = {"trusted_hosts": ["internal.example"], "public_url": "https://tams.example"}
    with client_for("tams.example", **settings) as client:
        assert client.get("/service").status_code == 200


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("https://evil.example", 403),
        ("null", 403),
        ("http://tams.example", 201),  # the server's own pages (its future web UI) may write
        (None, 201),  # scripts and tools send no Origin
    ],
)
def test_writes_from_another_sites_page_are_refused(origin: str | None, status: int) -> None:
    flow = flow_body()
    headers = {"Origin": origin} if origin else {}
    with client_for("tams.example") as client:
        response = client.put(f"/flows/{flow['id']}", json=flow, headers=headers)
        assert response.status_code == status, response.text
        if status == 403:
            assert error_body_problems(response) is None
            assert client.get(f"/flows/{flow['id']}").status_code == 404  # nothing was written
        # Reads are not writes: a page may read what its credentials allow (CORS still applies).
        assert client.get("/service", headers=headers).status_code == 200


def test_a_cross_site_fetch_without_origin_is_refused() -> None:
    with client_for("tams.example") as client:
        response = client.post("/flows", json=flow_body(), headers={"Sec-Fetch-Site": "cross-site"})
        assert response.status_code == 403


def test_a_browser_body_without_content_type_is_not_read_as_json() -> None:
    """A page can send a body without Content-Type and without a CORS preflight: only tools may."""
    flow = flow_body()

    def put_without_content_type(client: TestClient, headers: dict[str, str]) -> int:
        request = client.build_request("PUT", f"/flows/{flow['id']}", content=json.dumps(flow), headers=headers)
        request.headers.pop("content-type", None)
        return client.send(request).status_code

    with client_for("tams.example") as client:
        assert put_without_content_type(client, {"Origin": "http://tams.example"}) == 400
        assert put_without_content_type(client, {}) == 201


def test_the_data_directory_is_owner_only(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    create_app(app_settings(data_dir=str(open_dir), backend="local"))
    assert stat.S_IMODE(open_dir.stat().st_mode) == 0o700
    fresh = tmp_path / "fresh" / str(uuid.uuid4())
    create_app(app_settings(data_dir=str(fresh)))
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False), ("192.0.2.1", False)],
)
def test_loopback_interfaces(host: str, loopback: bool) -> None:
    assert is_loopback_interface(host) is loopback


def test_umask_leaves_new_files_owner_only(tmp_path: Path) -> None:
    from tams_server import datadir

    old = os.umask(0o022)
    try:
        datadir.private_files()
        (tmp_path / "f").write_bytes(b"x")
        assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o600
    finally:
        os.umask(old)
