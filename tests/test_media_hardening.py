"""The server's own media URLs under attack and misuse (issue 12), on the memory and local stores:
streamed uploads within limits and time, Range downloads that read only the range, content types
bound to upload URLs and never served as active content inline, write-once objects, malformed
numbers, and a full disk (media and database)."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from conftest import (
    Tams,
    TamsClient,
    app_settings,
    backend_settings,
    error_body_problems,
    fresh_app,
)

from backends.errors import AlreadyExists
from backends.localstore import LocalObjectStore
from backends.objectstore import ServedObjectStore
from tams_server.app import TamsApp, create_app
from tams_server.media import HmacUrlSigner

BACKENDS = ["memory", "local"]
MiB = 2**20


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(built_apps: dict[Any, TamsApp], backend_name: str) -> TamsApp:
    if backend_name not in built_apps:
        built_apps[backend_name] = create_app(app_settings(**backend_settings(backend_name)))
    return fresh_app(built_apps[backend_name])


def with_settings(app: TamsApp, **changes: Any) -> TamsApp:
    app.settings = dataclasses.replace(app.settings, **changes)
    return app


@pytest.fixture
def client(app: TamsApp) -> Iterator[TamsClient]:
    with TamsClient(app, "8.2") as c:
        yield c


@pytest.fixture
def tams(client: TamsClient) -> Tams:
    return Tams(client)


def the_store(app: TamsApp) -> ServedObjectStore:
    [store] = app.backend._stores.values()  # type: ignore[attr-defined]
    assert isinstance(store, ServedObjectStore)
    return store


def allocate(tams: Tams, container: str = "video/mp2t") -> tuple[str, dict[str, str]]:
    """A new object of a new flow: its id and put_url."""
    flow = tams.put_flow(container=container)
    [media_object] = tams.allocate(flow["id"], limit=1)
    return media_object["object_id"], media_object["put_url"]


def signed_get(app: TamsApp, object_id: str) -> str:
    """A signed GET URL of the test server (signed outside a request, it names another host)."""
    parts = urlsplit(app.signer.sign("GET", the_store(app).info.id, object_id))
    return urlunsplit(parts._replace(scheme="http", netloc="testserver"))


def assert_error(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert error_body_problems(response) is None, response.text
    assert response.headers["x-content-type-options"] == "nosniff"


def leftovers(app: TamsApp) -> list[Path]:
    store = the_store(app)
    return list(store.root.glob("*/*/.tmp-*")) if isinstance(store, LocalObjectStore) else []


# --------------------------------------------------------------------------- raw ASGI requests


class Sender:
    """An ASGI ``receive`` sending ``pieces`` bytes each ``size`` long (then the end), counting
    what the app asked for; ``stall_after``: stop sending after that many pieces."""

    def __init__(self, pieces: int, size: int, stall_after: int | None = None) -> None:
        self.pieces, self.size, self.stall_after = pieces, size, stall_after
        self.sent = 0
        self.piece = bytes(range(256)) * (size // 256)
        self.on_piece: Any = None

    async def __call__(self) -> dict[str, Any]:
        if self.stall_after is not None and self.sent >= self.stall_after:
            await asyncio.sleep(30)
        if self.on_piece is not None:
            self.on_piece(self.sent)
        self.sent += 1
        return {"type": "http.request", "body": self.piece, "more_body": self.sent < self.pieces}


def put_raw(app: TamsApp, url: str, receive: Any, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """PUT ``url`` straight into the app with ``receive`` as the body; (status, body)."""
    parts = urlsplit(url)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": parts.path,
        "raw_path": parts.path.encode(),
        "root_path": "",
        "query_string": parts.query.encode(),
        "headers": [(b"host", b"testserver"), *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    answer: dict[str, Any] = {"body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    asyncio.run(app(scope, receive, send))
    return answer["status"], answer["body"]


# --------------------------------------------------------------------------- 1. streamed, bounded uploads


def test_an_upload_is_written_to_disk_as_it_arrives(built_apps: dict[Any, TamsApp]) -> None:
    if "local" not in built_apps:
        built_apps["local"] = create_app(app_settings(**backend_settings("local")))
    app = fresh_app(built_apps["local"])
    with TamsClient(app, "8.2") as client:
        object_id, put_url = allocate(Tams(client))
    sender = Sender(pieces=24, size=256 * 2**10)  # 6 MiB
    on_disk: list[int] = []
    # Halfway through the body, most of what was sent is already in the temporary file.
    sender.on_piece = lambda n: on_disk.append(sum(p.stat().st_size for p in leftovers(app))) if n == 16 else None
    status, _ = put_raw(app, put_url["url"], sender, {"content-type": put_url["content-type"]})
    assert status == 200
    assert on_disk and on_disk[0] >= 3 * MiB
    assert the_store(app).stat(object_id) == (6 * MiB, put_url["content-type"])
    assert not leftovers(app)


def test_an_upload_beyond_max_media_bytes_is_413_as_soon_as_it_passes(app: TamsApp, tams: Tams) -> None:
    with_settings(app, max_media_bytes=MiB)
    object_id, put_url = allocate(tams)
    sender = Sender(pieces=64, size=64 * 2**10)  # 4 MiB, without Content-Length
    status, body = put_raw(app, put_url["url"], sender, {"content-type": put_url["content-type"]})
    assert status == 413 and b"PayloadTooLarge" in body and b"max_media_bytes" in body
    assert sender.sent == 17  # 16 pieces make the limit; the 17th passes it and ends the upload
    assert the_store(app).stat(object_id) is None
    assert not leftovers(app)
    # At the limit is fine.
    headers = {"content-type": put_url["content-type"]}
    assert tams.client.put(put_url["url"], content=b"x" * MiB, headers=headers).status_code == 200


def test_a_declared_length_beyond_max_media_bytes_is_refused_before_reading(app: TamsApp, tams: Tams) -> None:
    with_settings(app, max_media_bytes=MiB)
    object_id, put_url = allocate(tams)
    sender = Sender(pieces=1, size=256)
    headers = {"content-type": put_url["content-type"], "content-length": str(MiB + 1)}
    status, body = put_raw(app, put_url["url"], sender, headers)
    assert status == 413 and b"PayloadTooLarge" in body
    assert sender.sent == 0
    assert the_store(app).stat(object_id) is None


def test_a_stalled_upload_ends_with_408(app: TamsApp, tams: Tams) -> None:
    with_settings(app, body_idle_timeout_s=0.2)
    object_id, put_url = allocate(tams)
    sender = Sender(pieces=10, size=1024, stall_after=2)
    status, body = put_raw(app, put_url["url"], sender, {"content-type": put_url["content-type"]})
    assert status == 408 and b"RequestTimeout" in body
    assert the_store(app).stat(object_id) is None
    assert not leftovers(app)


# --------------------------------------------------------------------------- 2. downloads read what is asked


def test_range_gets_never_read_the_whole_object(app: TamsApp, client: TamsClient, monkeypatch) -> None:
    store = the_store(app)
    size = 8 * MiB
    store.write("big", bytes(range(256)) * (size // 256), "video/mp2t")
    url = signed_get(app, "big")

    def whole(*_: Any) -> None:
        raise AssertionError("the whole object was read")

    monkeypatch.setattr(store, "read", whole)
    monkeypatch.setattr(hashlib, "md5", whole)  # nor hashed to make an ETag
    reads = _read_counter()
    for i in range(12):
        response = client.get(url, headers={"Range": f"bytes={i * 1000}-{i * 1000}"})
        assert response.status_code == 206 and response.content == bytes([(i * 1000) % 256])
    if reads is not None:
        assert reads() < MiB, "12 one-byte ranges read more than a MiB"
    whole_object = client.get(url)
    assert whole_object.status_code == 200 and len(whole_object.content) == size
    assert whole_object.headers["etag"].strip('"') == hashlib.new("md5", bytes(range(256)) * (size // 256)).hexdigest()


def _read_counter() -> Any:
    """Bytes this process read since the call (Linux /proc), or None where that is unknown."""
    io = Path("/proc/self/io")
    if not io.exists():
        return None

    def rchar() -> int:
        return int(next(line for line in io.read_text().splitlines() if line.startswith("rchar:")).split()[1])

    start = rchar()
    return lambda: rchar() - start


# --------------------------------------------------------------------------- 3. content type bound to the URL


def test_a_put_with_another_content_type_than_signed_is_403(app: TamsApp, tams: Tams) -> None:
    object_id, put_url = allocate(tams)
    html = tams.client.put(put_url["url"], content=b"<script>alert(1)</script>", headers={"content-type": "text/html"})
    assert_error(html, 403)
    assert "video/mp2t" in html.json()["summary"]
    assert the_store(app).stat(object_id) is None
    # The content type in the URL is signed too: changing it breaks the signature.
    assert_error(tams.client.put(retyped(put_url["url"], "text/html"), content=b"<b>", headers={}), 403)
    # Without a Content-Type the object gets the signed one; with it (spaced or cased), too.
    assert tams.client.put(put_url["url"], content=b"ts").status_code == 200
    assert the_store(app).stat(object_id) == (2, "video/mp2t")
    other_id, other_url = allocate(tams)
    assert tams.client.put(other_url["url"], content=b"ts", headers={"content-type": " Video/MP2T "}).status_code == 200
    assert the_store(app).stat(other_id) == (2, "video/mp2t")


def retyped(url: str, content_type: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["content_type"] = content_type
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_plain_put_urls_still_take_credentials_and_any_type(app: TamsApp, tams: Tams) -> None:
    flow = tams.put_flow()
    [media_object] = tams.allocate(flow["id"], limit=1, presigned=False)
    url = media_object["put_url"]["url"]
    assert "signature=" not in url
    assert tams.client.put(url, content=b"data", headers={"content-type": "video/mp2t"}).status_code == 200
    assert the_store(app).stat(media_object["object_id"]) == (4, "video/mp2t")


# --------------------------------------------------------------------------- 4. never active content inline

ACTIVE = [
    "text/html",
    "TEXT/HTML; charset=utf-8",
    "application/xhtml+xml",
    "image/svg+xml",
    "text/xml",
    "application/xml",
    "application/javascript",
    "text/javascript",
    "application/pdf",
    "application/x-unknown",
    None,
]


def test_active_content_is_never_served_inline(app: TamsApp, client: TamsClient) -> None:
    for i, content_type in enumerate(ACTIVE):
        the_store(app).write(f"page-{i}", b"<html><script>alert(document.cookie)</script></html>", content_type)
        response = client.get(signed_get(app, f"page-{i}"))
        assert response.status_code == 200
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-disposition"] == "attachment", content_type
        assert "sandbox" in response.headers["content-security-policy"]
        assert "default-src 'none'" in response.headers["content-security-policy"]


def test_media_is_served_inline_with_its_type(app: TamsApp, client: TamsClient) -> None:
    for i, content_type in enumerate(["video/mp2t", "audio/aac", "image/jpeg", "text/vtt", "application/mp4"]):
        the_store(app).write(f"media-{i}", b"\x47\x40\x00\x10", content_type)
        response = client.get(signed_get(app, f"media-{i}"), headers={"Range": "bytes=0-1"})
        assert response.status_code == 206
        assert response.headers["content-type"] == content_type
        assert "content-disposition" not in response.headers
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in response.headers["content-security-policy"]


def test_a_signed_put_of_html_is_not_served_back_as_an_inline_page(app: TamsApp, tams: Tams) -> None:
    """The stored XSS of issue 12: even a flow whose container is text/html gets no page."""
    object_id, put_url = allocate(tams, container="text/html")
    page = b"<html><script>fetch('/flows')</script></html>"
    assert tams.client.put(put_url["url"], content=page, headers={"content-type": "text/html"}).status_code == 200
    response = tams.client.get(signed_get(app, object_id))
    assert response.content == page
    inline_html = response.headers["content-type"].startswith("text/html") and (
        "attachment" not in response.headers.get("content-disposition", "")
    )
    assert not inline_html
    assert response.headers["x-content-type-options"] == "nosniff"


# --------------------------------------------------------------------------- 5. write-once


def test_a_second_put_to_an_uploaded_object_is_409_and_the_bytes_stay(app: TamsApp, tams: Tams) -> None:
    object_id, put_url = allocate(tams)
    headers = {"content-type": put_url["content-type"]}
    first = tams.client.put(put_url["url"], content=b"first bytes", headers=headers)
    assert first.status_code == 200
    assert_error(tams.client.put(put_url["url"], content=b"other bytes", headers=headers), 409)
    assert tams.client.get(signed_get(app, object_id)).content == b"first bytes"
    # The same bytes again (a retry after a lost answer) are no change: 200, same ETag.
    again = tams.client.put(put_url["url"], content=b"first bytes", headers=headers)
    assert again.status_code == 200 and again.headers["etag"] == first.headers["etag"]
    assert not leftovers(app)


def test_of_racing_uploads_exactly_one_wins(app: TamsApp) -> None:
    store = the_store(app)
    uploads = [store.begin_upload("raced", "video/mp2t") for _ in range(8)]
    for i, upload in enumerate(uploads):
        upload.write(bytes([i]) * 100_000)
    barrier = threading.Barrier(len(uploads))
    outcomes: list[str] = []

    def commit(upload: Any) -> None:
        barrier.wait()
        try:
            upload.commit()
            outcomes.append("won")
        except AlreadyExists:
            outcomes.append("refused")

    threads = [threading.Thread(target=commit, args=(u,)) for u in uploads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused"] * 7 + ["won"]
    data, _ = store.read("raced") or (b"", None)
    assert len(data) == 100_000 and len(set(data)) == 1
    assert not leftovers(app)


# --------------------------------------------------------------------------- 6. malformed numbers, no 500s

SIGNATURE_MARK = "f" * 64


def server_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the server logged (httpx, the test's client, logs the URLs it requests)."""
    return "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records if not r.name.startswith("httpx"))


BAD_EXPIRIES = ["9" * 5000, "\u00b2", "-1", "1e12", "", "0x10", " 1"]


def test_a_malformed_expiry_is_403(app: TamsApp, client: TamsClient, caplog) -> None:
    the_store(app).write("o", b"bytes", "video/mp2t")
    caplog.set_level(logging.DEBUG)
    for expires in BAD_EXPIRIES:
        query = urlencode({"expires": expires, "signature": SIGNATURE_MARK})
        response = client.get(f"http://testserver/_media/{the_store(app).info.id}/o?{query}")
        assert_error(response, 403)
    assert SIGNATURE_MARK not in server_log(caplog)


BAD_RANGES = [
    ("bytes=" + "9" * 5000 + "-", 416),
    ("bytes=0-" + "9" * 5000, 206),
    ("bytes=-" + "9" * 5000, 206),
    ("bytes=\u00b2-3", 200),
    ("bytes=3-1", 416),
    ("bytes=1-2,4-5", 200),
    ("bytes=-0", 416),
    ("items=1-2", 200),
]


def test_a_malformed_range_is_no_server_error(app: TamsApp, client: TamsClient) -> None:
    the_store(app).write("o", b"0123456789", "video/mp2t")
    for range_header, status in BAD_RANGES:
        response = client.get(signed_get(app, "o"), headers={"Range": range_header.encode("latin-1")})
        assert response.status_code == status, range_header[:20]
        if status == 416:
            assert_error(response, 416)
        else:
            assert response.content == b"0123456789"


def test_a_failing_store_is_a_500_with_the_error_body_and_no_signature_in_the_log(
    app: TamsApp, client: TamsClient, caplog, monkeypatch
) -> None:
    store = the_store(app)

    def broken(*_: Any) -> None:
        raise RuntimeError("the disk controller is on fire")

    monkeypatch.setattr(store, "open_object", broken)
    caplog.set_level(logging.DEBUG)
    url = signed_get(app, "o")
    signature = parse_qs(urlsplit(url).query)["signature"][0]
    response = client.get(url)
    assert_error(response, 500)
    assert "on fire" in server_log(caplog) and "REDACTED" in server_log(caplog)
    assert signature not in server_log(caplog)


# --------------------------------------------------------------------------- 7. a full disk


def test_a_media_put_on_a_full_disk_is_507_and_leaves_nothing(built_apps: dict[Any, TamsApp], monkeypatch) -> None:
    if "local" not in built_apps:
        built_apps["local"] = create_app(app_settings(**backend_settings("local")))
    app = fresh_app(built_apps["local"])
    with TamsClient(app, "8.2") as client:
        tams = Tams(client)
        object_id, put_url = allocate(tams)
        import backends.localstore as localstore

        real_fdopen = localstore.os.fdopen
        monkeypatch.setattr(localstore.os, "fdopen", lambda *a, **kw: _FillingFile(real_fdopen(*a, **kw), 100_000))
        headers = {"content-type": put_url["content-type"]}
        response = client.put(put_url["url"], content=b"x" * 300_000, headers=headers)
        assert_error(response, 507)
        assert response.json()["type"] == "InsufficientStorage"
        assert "/" not in response.json()["summary"].replace("http://", "")
        assert the_store(app).stat(object_id) is None
        assert not leftovers(app)
        monkeypatch.undo()  # space again: the same URL works
        assert client.put(put_url["url"], content=b"x" * 300_000, headers=headers).status_code == 200


class _FillingFile:
    """A file on a disk with ``room`` bytes left."""

    def __init__(self, f: Any, room: int) -> None:
        self._f, self._room = f, room

    def write(self, data: bytes) -> int:
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return int(self._f.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def test_a_full_database_disk_is_507_without_paths(built_apps: dict[Any, TamsApp], monkeypatch) -> None:
    if "local" not in built_apps:
        built_apps["local"] = create_app(app_settings(**backend_settings("local")))
    app = fresh_app(built_apps["local"])
    engine = app.backend.engine  # type: ignore[attr-defined]
    monkeypatch.setattr(engine, "_writer", _FailingCommit(engine._writer, "database or disk is full"))
    body = Tams.flow_body()
    with TamsClient(app, "8.2") as client, client.unchecked():
        response = client.put(f"/flows/{body['id']}", json=body)
    assert_json_error(response, 507)
    summary = response.json()["summary"]
    assert "busy" not in summary and str(engine.path.parent) not in summary and "/" not in summary


def test_a_store_that_stays_busy_says_so_without_the_engines_message(
    built_apps: dict[Any, TamsApp], monkeypatch, caplog
) -> None:
    if "local" not in built_apps:
        built_apps["local"] = create_app(app_settings(**backend_settings("local")))
    app = fresh_app(built_apps["local"])
    engine = app.backend.engine  # type: ignore[attr-defined]
    conflict = f"database is locked ({engine.path})"
    monkeypatch.setattr(engine, "_writer", _FailingCommit(engine._writer, conflict))
    body = Tams.flow_body()
    with TamsClient(app, "8.2") as client, client.unchecked():
        response = client.put(f"/flows/{body['id']}", json=body)
    assert_json_error(response, 503)
    assert str(engine.path) not in response.json()["summary"]
    assert str(engine.path) in caplog.text  # the operator still sees it


def assert_json_error(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert error_body_problems(response) is None, response.text


class _FailingCommit:
    """The SQLite engine's writer connection, whose COMMIT fails with ``message`` (as SQLite reports it)."""

    def __init__(self, connection: Any, message: str) -> None:
        self._connection, self._message = connection, message

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            raise sqlite3.OperationalError(self._message)
        return self._connection.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def test_server_side_writes_are_write_once_too(app: TamsApp) -> None:
    store = the_store(app)
    store.put("copied", b"bytes", "video/mp2t")
    store.put("copied", b"bytes", "video/mp2t")  # the same bytes again: a copy run twice is fine
    with pytest.raises(AlreadyExists):
        store.put("copied", b"other", "video/mp2t")
    assert store.read("copied") == (b"bytes", "video/mp2t")


def test_a_read_url_is_the_same_for_a_quarter_of_its_lifetime_and_lives_at_least_its_lifetime(monkeypatch) -> None:
    signer = HmacUrlSigner(b"k" * 32, lambda: "http://tams", lifetime_s=3600)
    now = [1_800_000_000.0]
    monkeypatch.setattr("tams_server.media.time.time", lambda: now[0])
    urls = []
    for elapsed in range(0, 3601, 60):
        now[0] = 1_800_000_000.0 + elapsed
        url = signer.sign("GET", "store", "object")
        expires = int(parse_qs(urlsplit(url).query)["expires"][0])
        assert now[0] + 3600 <= expires <= now[0] + 3600 + 900
        urls.append(url)
    assert len(set(urls[:15])) == 1  # the first 15 minutes: one URL
    assert len(set(urls)) == 5  # an hour: a new one every 15 minutes
    # Upload URLs keep their exact lifetime (they are minted once, for one PUT).
    upload = signer.sign("PUT", "store", "object")
    assert int(parse_qs(urlsplit(upload).query)["expires"][0]) == now[0] + 3600
