"""Request bodies (tams_server.bodies): size and time limits, and JSON the server could not store or
answer faithfully, all refused with a 4xx and the TAMS error body before Connexion reads them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
from conftest import ADMIN_HEADERS, OFFICIAL_SPECS, app_settings, error_body_problems, flow_body, new_id
from hypothesis import strategies as st
from starlette.testclient import TestClient

import spec
from tams_server import bodies, specload
from tams_server.app import TamsApp, create_app
from tams_server.config import Settings

MAX_BODY = 32768
MAX_STRING = 512
IDLE = 0.3
TOTAL = 0.8
VERSIONS = ("7.0", "8.2")


@pytest.fixture(scope="module")
def app() -> TamsApp:
    """One app with small limits, so the tests need no large bodies and no long waits."""
    return create_app(
        app_settings(
            max_body_bytes=MAX_BODY, max_string_bytes=MAX_STRING, body_idle_timeout_s=IDLE, body_timeout_s=TOTAL
        )
    )


@pytest.fixture(scope="module")
def clients(app: TamsApp) -> Iterator[dict[str, TestClient]]:
    made = {
        version: TestClient(
            app, base_url=f"http://testserver/v{version}", raise_server_exceptions=False, headers=ADMIN_HEADERS
        )
        for version in VERSIONS
    }
    yield made


@pytest.fixture(scope="module")
def flow_id(clients: dict[str, TestClient]) -> str:
    flow = flow_body()
    assert clients["7.0"].put(f"/flows/{flow['id']}", json=flow).status_code == 201
    return flow["id"]


def refused(response: Any, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert error_body_problems(response) is None, response.text
    summary = response.json()["summary"]
    for word in words:
        assert word in summary, summary


def put_label(client: TestClient, flow_id: str, content: bytes, **headers: str) -> Any:
    return client.put(
        f"/flows/{flow_id}/label", content=content, headers={"Content-Type": "application/json", **headers}
    )


# --------------------------------------------------------------------------- every operation with a body


def body_operations(version: str) -> list[tuple[str, str]]:
    document = specload.resolve_internal(specload.bundle(spec.spec_path(version)))
    return [
        (method.upper(), template)
        for template, item in document["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "requestBody" in operation
    ]


BODY_OPERATIONS = [(version, *op) for version in VERSIONS for op in body_operations(version)]


@pytest.mark.parametrize(
    ("version", "method", "template"), BODY_OPERATIONS, ids=[f"{v} {m} {t}" for v, m, t in BODY_OPERATIONS]
)
def test_a_body_that_is_not_utf8_is_400_on_every_operation_with_a_body(
    clients: dict[str, TestClient], flow_id: str, version: str, method: str, template: str
) -> None:
    # The fuzzer's 262 x 500: printf '\xff' | curl -X PUT --data-binary @- .../flows/$F/label
    path = (
        template.replace("{flowId}", flow_id)
        .replace("{sourceId}", new_id())
        .replace("{name}", "genre")
        .replace("{objectId}", "an-object")
        .replace("{webhookId}", new_id())
        .replace("{profileId}", new_id())
    )
    for content in (b"\xff", b'{"label": "caf\xe9"}'):
        response = clients[version].request(method, path, content=content, headers={"Content-Type": "application/json"})
        refused(response, 400, "not UTF-8")


# --------------------------------------------------------------------------- JSON the server will not take


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (b"\xff", 400, ["not UTF-8"]),
        (b'"\xed\xa0\x80"', 400, ["not UTF-8"]),  # a surrogate encoded as UTF-8 is not UTF-8
        (b'"label', 400, ["not valid JSON"]),
        (b"1" * 4301, 400, ["4300 digits"]),
        (b'{"a": [' + b"9" * 5000 + b"]}", 400, ["4300 digits"]),
        (b'"\\ud800"', 400, ["surrogate"]),
        (b'"ok \\udfff"', 400, ["surrogate"]),
        (b'{"tags": {"\\ud800": "x"}}', 400, ["surrogate"]),
        (b"[" * 10_000 + b"]" * 10_000, 400, ["nested more than 64"]),
        (b"[" * 65 + b"]" * 65, 400, ["nested more than 64"]),
        (b'{"a":' * 65 + b"1" + b"}" * 65, 400, ["nested more than 64"]),
        (b"NaN", 400, ["non-finite"]),
        (b'{"x": -Infinity}', 400, ["non-finite"]),
        (b"[1e999]", 400, ["too large"]),
    ],
    ids=lambda value: repr(value)[:40] if isinstance(value, bytes) else "",
)
def test_json_the_server_could_not_keep_is_400(
    clients: dict[str, TestClient], flow_id: str, content: bytes, status: int, words: list[str]
) -> None:
    refused(put_label(clients["7.0"], flow_id, content), status, *words)


def test_json_that_is_fine_passes_unchanged(clients: dict[str, TestClient], flow_id: str) -> None:
    client = clients["8.2"]
    label = "caf\u00e9 \U0001f600 \\ud800 \u2028 " + "x" * (MAX_STRING - 40)
    content = json.dumps(label, ensure_ascii=True).encode()  # the emoji as an escaped surrogate pair
    assert b"\\ud83d\\ude00" in content
    assert put_label(client, flow_id, content).status_code in (200, 201, 204)
    assert client.get(f"/flows/{flow_id}/label").json() == label
    # Nested as deep as allowed, and a big integer below Python's limit: both fine.
    deep = b'{"t":' * 63 + b"1" + b"}" * 63
    assert put_label(client, flow_id, deep).status_code == 400  # the schema refuses it, not the guard
    assert "nested" not in put_label(client, flow_id, deep).json()["summary"]
    assert "digits" not in put_label(client, flow_id, b"9" * 4299).json()["summary"]


def test_a_string_above_the_limit_is_413_naming_the_field(clients: dict[str, TestClient], flow_id: str) -> None:
    flow = flow_body(flow_id=flow_id, tags={"genre": "x" * (MAX_STRING + 1)})
    response = clients["7.0"].put(f"/flows/{flow_id}", json=flow)
    refused(response, 413, f"longer than {MAX_STRING} bytes", "tags/genre")
    # Counted in UTF-8 bytes: 200 three-byte characters are 600 bytes.
    refused(put_label(clients["7.0"], flow_id, json.dumps("\u20ac" * 200).encode()), 413, "longer than")
    refused(put_label(clients["7.0"], flow_id, json.dumps({"k" * 600: 1}).encode()), 413, "longer than")
    assert put_label(clients["7.0"], flow_id, json.dumps("\u20ac" * 170).encode()).status_code == 204


def test_a_body_above_the_limit_is_413(clients: dict[str, TestClient], flow_id: str) -> None:
    segments = [{"object_id": new_id(), "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(500)]
    response = clients["8.2"].post(f"/flows/{flow_id}/segments", json=segments)
    refused(response, 413, f"larger than {MAX_BODY} bytes")
    assert response.headers["connection"] == "close"


def test_the_default_limits_take_a_bulk_post_of_10000_segments() -> None:
    segments = [
        {"object_id": new_id(), "timerange": f"[{i}:0_{i + 1}:0)", "ts_offset": "0:0", "last_duration": "1:0"}
        for i in range(10_000)
    ]
    content = json.dumps(segments).encode()
    settings = Settings()
    assert len(content) <= settings.max_body_bytes
    started = time.perf_counter()
    assert bodies.parse(content, settings.max_string_bytes) == segments
    assert time.perf_counter() - started < 1.0  # measured ~0.05 s: the walk costs little beside parsing


# --------------------------------------------------------------------------- at the ASGI level: slow and chunked bodies


def scope_for(method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    all_headers = {**ADMIN_HEADERS, "host": "testserver", **headers}
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in all_headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def call(
    app: TamsApp, method: str, path: str, chunks: list[tuple[float, bytes]], headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes, int]:
    """Send ``chunks`` (each after its delay); (status, headers, body, chunks the app asked for)."""
    asked = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if asked >= len(chunks):
            await asyncio.sleep(3600)  # the client waits for the answer
        delay, chunk = chunks[asked]
        asked += 1
        await asyncio.sleep(delay)
        return {"type": "http.request", "body": chunk, "more_body": asked < len(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope_for(method, path, headers), receive, send), timeout=5)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body, asked


def check_error(status: int, body: bytes, expected: int, word: str) -> None:
    assert status == expected, body
    parsed = json.loads(body)
    assert set(parsed) == {"type", "summary", "time"}, parsed
    assert word in parsed["summary"], parsed


def test_a_declared_length_above_the_limit_is_413_before_reading(app: TamsApp, flow_id: str) -> None:
    headers = {"content-type": "application/json", "content-length": str(MAX_BODY + 1)}
    status, response_headers, body, asked = asyncio.run(
        call(app, "PUT", f"/flows/{flow_id}/label", [(0, b'"x"')], headers)
    )
    check_error(status, body, 413, "larger than")
    assert asked == 0
    assert response_headers["connection"] == "close"


def test_a_chunked_body_is_counted_while_read(app: TamsApp, flow_id: str) -> None:
    chunks = [(0, b'"' + b"x" * 8000)] * 10 + [(0, b'"')]
    status, _, body, asked = asyncio.run(
        call(app, "PUT", f"/flows/{flow_id}/label", chunks, {"content-type": "application/json"})
    )
    check_error(status, body, 413, "larger than")
    assert asked == 5  # refused at the chunk that went over, not after all of them


def test_a_chunked_body_within_the_limit_reaches_the_handler(app: TamsApp, flow_id: str) -> None:
    chunks = [(0, b'"chun'), (0.01, b'ked"')]
    status, _, body, _ = asyncio.run(
        call(app, "PUT", f"/v8.2/flows/{flow_id}/label", chunks, {"content-type": "application/json"})
    )
    assert status == 204, body
    status, _, body, _ = asyncio.run(call(app, "GET", f"/v8.2/flows/{flow_id}/label", [(0, b"")], {}))
    assert json.loads(body) == "chunked"


def test_a_body_whose_next_part_is_late_is_408(app: TamsApp, flow_id: str) -> None:
    chunks = [(0, b'"slow'), (IDLE * 3, b' body"')]
    started = time.monotonic()
    status, headers, body, _ = asyncio.run(
        call(app, "PUT", f"/flows/{flow_id}/label", chunks, {"content-type": "application/json"})
    )
    check_error(status, body, 408, "did not arrive")
    assert time.monotonic() - started < IDLE * 2.5
    assert headers["connection"] == "close"


def test_a_body_that_trickles_past_the_total_time_is_408(app: TamsApp, flow_id: str) -> None:
    chunks = [(0, b'"')] + [(IDLE / 3, b"x")] * 40 + [(0, b'"')]  # each part in time, the whole not
    started = time.monotonic()
    status, _, body, asked = asyncio.run(
        call(app, "PUT", f"/flows/{flow_id}/label", chunks, {"content-type": "application/json"})
    )
    check_error(status, body, 408, "did not arrive in time")
    assert TOTAL * 0.9 < time.monotonic() - started < TOTAL * 2
    assert asked < len(chunks)


json_values = st.recursive(
    st.none() | st.integers() | st.text(st.characters(exclude_categories=()), max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=20,
)


@hypothesis.settings(max_examples=300, deadline=None, database=None)
@hypothesis.given(value=json_values, nesting=st.integers(0, 70), limit=st.integers(4, 24))
def test_the_quick_check_and_the_walk_agree(value: Any, nesting: int, limit: int) -> None:
    for _ in range(nesting):
        value = [value]
    walked: bodies.Refused | None = None
    try:
        bodies._Walk(limit, surrogates=True).value(value, 0)
    except bodies.Refused as refused:
        walked = refused
    assert bodies._fine(value, limit, surrogates=True) is (walked is None)


# --------------------------------------------------------------------------- what a refused flow is told


@pytest.fixture(scope="module")
def official_clients() -> dict[str, TestClient]:
    if not all(path.is_file() for path in OFFICIAL_SPECS.values()):
        pytest.skip("the official specs are not here")
    app = create_app(app_settings(specs={version: str(path) for version, path in OFFICIAL_SPECS.items()}))
    return {
        version: TestClient(app, base_url=f"http://testserver/v{version}", headers=ADMIN_HEADERS)
        for version in VERSIONS
    }


@pytest.mark.parametrize("which_spec", ["ours", "official"])
@pytest.mark.parametrize("version", VERSIONS)
def test_a_flow_that_fits_no_kind_is_told_what_its_own_format_lacks(
    clients: dict[str, TestClient], official_clients: dict[str, TestClient], version: str, which_spec: str
) -> None:
    client = (clients if which_spec == "ours" else official_clients)[version]

    def summary(body: dict[str, Any]) -> str:
        response = client.put(f"/flows/{body['id']}", json=body)
        assert response.status_code == 400, response.text
        return response.json()["summary"]

    # The case: a data flow without essence_parameters was told it is not a video flow.
    said = summary(flow_body("data", essence_parameters=None))
    assert "'essence_parameters' is a required property" in said, said
    assert "urn:x-nmos:format:video" not in said, said
    said = summary(flow_body("image", essence_parameters={"frame_width": 1}))
    assert "'frame_height' is a required property (at essence_parameters)" in said, said
    said = summary(flow_body("audio", essence_parameters={"sample_rate": "fast"}))
    assert "'fast' is not of type 'integer' (at essence_parameters/sample_rate)" in said, said
    # A format no kind has: every format allowed is listed.
    said = summary(flow_body("video", format="urn:x-nmos:format:smell"))
    for kind in ("video", "audio", "data", "multi"):
        assert f"urn:x-nmos:format:{kind}" in said, said
