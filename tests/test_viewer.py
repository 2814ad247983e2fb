"""The web viewer's static files at ``/viewer/`` (the page itself runs in a real browser in
test_viewer_browser.py): served from an exact-name table with their types and a strict CSP, HEAD,
ETag revalidation, 405, no path ever joined to a directory, and no credentials for the page while
the API behind it wants them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from conftest import app_settings
from starlette.testclient import TestClient

from tams_server.app import create_app
from tams_server.viewer import route

FILE_PATHS = [f"/viewer{name}" for name in route.FILES]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    # app_settings: an admin token, so the API requires credentials; this client sends none.
    with TestClient(create_app(app_settings(default_version="8.2")), follow_redirects=False) as anonymous:
        yield anonymous


def directives(csp: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (part.strip() for part in csp.split(";")) if d}


@pytest.mark.parametrize("path", FILE_PATHS)
def test_each_file_is_served_with_its_type_csp_and_validator(client: TestClient, path: str) -> None:
    name, media_type = route.FILES[path.removeprefix("/viewer")]
    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.content == (route.STATIC / name).read_bytes()
    assert answer.headers["content-type"] == media_type
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["referrer-policy"] == "no-referrer"
    policy = directives(answer.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    for kind in ("script-src", "style-src", "connect-src"):
        assert policy[kind] == ["'self'"], kind  # no inline code, no other host
    assert policy["media-src"] == ["'self'", "blob:"]  # MSE plays a blob: URL of a MediaSource
    assert policy["frame-ancestors"] == ["'none'"]
    # HEAD: the same headers, no body; a matching ETag revalidates to 304.
    head = client.head(path)
    assert head.status_code == 200 and head.content == b""
    assert {k: v for k, v in head.headers.items() if k != "x-request-id"} == {
        k: v for k, v in answer.headers.items() if k != "x-request-id"
    }
    again = client.get(path, headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_the_table_serves_every_static_file_and_every_file_the_page_loads() -> None:
    shipped = {p.name for p in route.STATIC.iterdir() if p.is_file()}
    assert {name for name, _ in route.FILES.values()} == shipped
    index = (route.STATIC / "index.html").read_text()
    loaded = set(re.findall(r'(?:src|href)="([\w.-]+\.(?:js|css))"', index))
    for script in route.STATIC.glob("*.js"):
        loaded |= set(re.findall(r'from "\./([\w.-]+\.js)"', script.read_text()))
    assert loaded and {f"/{name}" for name in loaded} <= set(route.FILES)


def test_the_page_has_no_inline_script_or_style() -> None:
    # The CSP (script-src and style-src 'self') would block them.
    index = (route.STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", index)
    assert "<style" not in index and " style=" not in index
    assert not re.search(r"\son\w+=", index)


def test_viewer_redirects_to_its_directory(client: TestClient) -> None:
    answer = client.get("/viewer")
    assert answer.status_code == 308
    assert answer.headers["location"] == "viewer/"  # relative: right behind a proxy prefix
    assert client.get("/viewer", follow_redirects=True).url.path == "/viewer/"
    assert client.head("/viewer").status_code == 308


@pytest.mark.parametrize("path", ["/viewer", "/viewer/", "/viewer/viewer.js"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_refused(client: TestClient, path: str, method: str) -> None:
    answer = client.request(method, path)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, HEAD"


def serve_raw(path: str) -> tuple[int, bytes]:
    """route.serve for a path exactly as given (HTTP clients remove dot segments before sending;
    test_viewer_browser.py sends them over a real socket too)."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
    }
    anyio.run(route.serve, scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize(
    "path",
    [
        "/viewer/../viewer/route.py",
        "/viewer/../../setup.cfg",
        "/viewer/./viewer.js",
        "/viewer//viewer.js",
        "/viewer/%2e%2e/route.py",
        "/viewer/..%2froute.py",
        "/viewer/static/viewer.js",
        "/viewer/route.py",
        "/viewer/__init__.py",
        "/viewer/index.html",
        "/viewer/viewer.js/",
        "/viewer/VIEWER.JS",
        "/viewer/viewer.js\x00",
        "/viewer/\\viewer.js",
        "/viewerx",
    ],
)
def test_only_the_named_files_exist(path: str) -> None:
    status, body = serve_raw(path)
    assert status == 404
    assert b"import" not in body and b"PREFIX" not in body


def test_through_the_app_unknown_names_are_404(client: TestClient) -> None:
    for path in ["/viewer/nothing.js", "/viewer/%2e%2e/route.py", "/viewer/static/index.html"]:
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert answer.json()["type"] == "NotFound"


def test_the_page_needs_no_credentials_where_the_api_does(client: TestClient) -> None:
    assert client.get("/v8.2/flows").status_code == 401
    page = client.get("/viewer/")
    assert page.status_code == 200
    assert b"<title>TAMS viewer</title>" in page.content
    # The page calls the 8.2 API relative to where it is served, and keeps credentials in memory.
    api = (route.STATIC / "api.js").read_text()
    assert 'new URL("../v8.2/", document.baseURI)' in api
    code = "\n".join(p.read_text() for p in Path(route.STATIC).glob("*.js"))
    # (test_viewer_browser.py also looks in the browser's storage after signing in.)
    assert not re.search(r"\b(localStorage|sessionStorage|indexedDB)\s*[.\[]|document\.cookie\s*=", code)
