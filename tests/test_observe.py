"""Request observation: X-Request-Id on every response, JSON log lines, nothing secret logged."""

from __future__ import annotations

import io
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from tams_server import observe
from tams_server.app import create_app
from tests.conftest import ADMIN_HEADERS, ADMIN_TOKEN, app_settings, flow_body
from tools import server_process

ID = "x-request-id"


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = create_app(app_settings(log_format="json", default_version="8.2"))
    app.access_lines = observe.AccessLines(stream=io.StringIO(), flush_s=3600)  # flushed by the tests
    with TestClient(app, headers=ADMIN_HEADERS) as test_client:
        yield test_client


Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def lines(client: TestClient) -> Lines:
    """The access lines written so far in the test."""
    writer = client.app.access_lines  # type: ignore[attr-defined]
    stream = writer.stream
    writer.flush()  # earlier tests' lines
    start = len(stream.getvalue())

    def written() -> list[dict[str, Any]]:
        writer.flush()
        return [json.loads(line) for line in stream.getvalue()[start:].splitlines()]

    return written


def _media_url(client: TestClient) -> str:
    flow = flow_body("video")
    assert client.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    [media] = client.post(f"/flows/{flow['id']}/storage", json={"limit": 1}).json()["media_objects"]
    put = media["put_url"]
    assert client.put(put["url"], content=b"bytes", headers={"Content-Type": put["content-type"]}).status_code == 200
    segment = {"object_id": media["object_id"], "timerange": "[0:0_1:0)"}
    assert client.post(f"/flows/{flow['id']}/segments", json=segment).status_code == 201
    [stored] = client.get(f"/flows/{flow['id']}/segments", params={"presigned": "true"}).json()
    return stored["get_urls"][0]["url"]


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    answers = [
        client.get("/flows"),
        client.get("/v7.0/flows"),
        client.get("/flows", headers={"Authorization": "Bearer wrong"}),  # 401
        client.get("/no-such-thing"),  # 404
        client.delete("/service"),  # 405
        client.get("/healthz"),
        client.get("/readyz"),
        client.get("/metrics"),
        client.get(_media_url(client)),
        client.get("/media/unknown?expires=1&signature=x"),
    ]
    ids = [a.headers.get(ID) for a in answers]
    assert all(ids), [(a.request.url, a.status_code) for a in answers if not a.headers.get(ID)]
    assert len(set(ids)) == len(ids)


def test_a_clients_own_id_is_kept_when_usable(client: TestClient) -> None:
    own = f"trace-{uuid.uuid4()}"
    assert client.get("/flows", headers={ID: own}).headers[ID] == own
    for unusable in (b"has space", b"x" * 129, b"semi;colon", "\u00fcmlaut".encode(), b""):
        given = client.get("/flows", headers={ID: unusable}).headers[ID]
        assert given.encode() != unusable and observe._CLIENT_ID.fullmatch(given.encode())


def test_one_json_line_per_request_with_what_happened(client: TestClient, lines: Lines) -> None:
    answer = client.get("/v7.0/flows", params={"limit": 1}, headers={ID: "abc-1"})
    client.get("/flows/not-a-uuid")
    client.get("/readyz")
    lines = lines()
    assert len(lines) == 3
    line = lines[0]
    assert line["request_id"] == "abc-1"
    assert line["method"] == "GET"
    assert line["path"] == "/v7.0/flows?limit=1"
    assert line["version"] == "7.0"
    assert line["operation"] == "GET_flows"
    assert line["status"] == 200
    assert line["principal"] == "admin-token"
    assert line["bytes_sent"] == len(answer.content)
    assert line["latency_ms"] > 0
    assert {"time", "level", "logger", "message"} <= set(line) and line["logger"] == "tams_server.access"
    assert (lines[1]["version"], lines[1]["operation"], lines[1]["status"]) == ("8.2", "GET_flows-flowId", 404)
    assert (lines[2]["version"], lines[2]["operation"], lines[2]["principal"]) == (None, "readyz", None)


def test_secrets_never_reach_a_line(client: TestClient, lines: Lines) -> None:
    media_url = _media_url(client)
    signature = httpx.URL(media_url).params["signature"]
    before = len(lines())
    no_header = TestClient(client.app)
    assert no_header.get("/flows", params={"access_token": ADMIN_TOKEN}).status_code == 200
    assert no_header.get("/flows", params={"ACCESS_TOKEN": "guess", "x": "1"}).status_code == 401
    assert no_header.get(media_url).status_code == 200
    lines = lines()[before:]
    text = json.dumps(lines)
    assert len(lines) == 3
    assert ADMIN_TOKEN not in text and signature not in text and "guess" not in text
    assert lines[0]["principal"] == "admin-token"
    assert "signature=REDACTED" in lines[2]["path"]


def test_redacted_query_hides_every_secret_value() -> None:
    query = b"a=1&access_token=t0k&signature=s1g&Signature=S2&xaccess_token=kept"
    assert observe.redacted_query(query) == (
        "a=1&access_token=REDACTED&signature=REDACTED&Signature=REDACTED&xaccess_token=kept"
    )


def test_json_lines_only_when_asked_for_and_at_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tams_server.access"):
        assert observe.access_lines("text") is None
        assert observe.access_lines("json") is not None
    with caplog.at_level(logging.WARNING, logger="tams_server.access"):
        assert observe.access_lines("json") is None


def _observed(request_id: str) -> observe.Observation:
    scope = {
        "method": "GET",
        "path": "/flows",
        "query_string": b"",
        "headers": [(b"x-request-id", request_id.encode())],
    }
    return observe.Observation(scope)


def test_lines_are_written_in_batches_and_at_the_end() -> None:
    stream = io.StringIO()
    writer = observe.AccessLines(stream=stream, flush_s=3600, batch_lines=3)
    writer.add(_observed("a"), 200, 0.001)
    writer.add(_observed("b"), 200, 0.001)
    assert stream.getvalue() == ""  # waits for more
    writer.add(_observed("c"), 404, 0.001)  # a full batch goes out at once
    writer.add(_observed("d"), 200, 0.001)
    assert [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()] == ["a", "b", "c"]
    writer.close()
    assert [json.loads(line)["status"] for line in stream.getvalue().splitlines()] == [200, 200, 404, 200]
    timed = observe.AccessLines(stream=io.StringIO(), flush_s=0.05)
    timed.add(_observed("late"), 200, 0.001)
    deadline = time.monotonic() + 5
    while "late" not in timed.stream.getvalue() and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.01)
    assert "late" in timed.stream.getvalue()  # type: ignore[union-attr]
    timed.close()


def test_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log_format"):
        observe.configure_logging("info", "xml")


def test_a_real_server_writes_only_json_lines(tmp_path: Path) -> None:
    env = {**os.environ, "TAMS_ADMIN_TOKEN": ADMIN_TOKEN, "TAMS_DATA_DIR": str(tmp_path / "data")}
    log = tmp_path / "server.log"
    with server_process.running(["--log-format", "json"], env, log=log, ready_path="/healthz") as url:
        answer = httpx.get(url + "/flows", headers={**ADMIN_HEADERS, ID: "from-test"})
        assert answer.status_code == 200
    parsed = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert any(p["logger"].startswith("uvicorn") for p in parsed)  # uvicorn's own lines too
    [request] = [p for p in parsed if p.get("request_id") == "from-test"]
    assert (request["operation"], request["status"], request["version"]) == ("GET_flows", 200, "8.2")
    assert not [p for p in parsed if p["logger"] == "uvicorn.access"]  # ours replace uvicorn's access lines
