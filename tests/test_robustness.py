"""Malformed and hostile input never gives a 5xx, and every error is JSON ``{type, summary, time}``.

* The sweep sends the inputs of issue 12 (ids with CR/LF, 5,000-digit and invalid-UTF-8 path and
  query values, bodies that are not UTF-8, nested 10,000 deep, with 4,300+-digit integers, lone
  surrogates, non-finite numbers, oversized strings and bodies) to every operation of both API
  versions, on every backend (``test_backends``: memory, local and vast by default).
* Hypothesis sends every operation random path values, query values and JSON bodies (mixing
  valid ids and timeranges with junk), and every query parameter its edge values: on the first
  backend (edge values on the newest version), on all and longer with ``TAMS_TEST_LONG=1``.
* Hostile requests of the media URLs, webhook registrations and storage allocation, by the part of
  the server that answers them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from conftest import ADMIN_HEADERS, app_settings, backend_settings, flow_body, test_backends
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import spec
from tams_server import specload
from tams_server.app import create_app
from tams_server.config import Settings

LONG = os.environ.get("TAMS_TEST_LONG", "") not in ("", "0")
VERSIONS = ("7.0", "8.2")
FLOW_ID = str(uuid.uuid4())
SOURCE_ID = str(uuid.uuid4())
OBJECT_ID = "robustness-object"

RAW_JUNK = object()  # stands for a body that is not JSON at all


def operations_of(version: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(version, method, template, operation) of every operation, with the path item's parameters."""
    document = specload.resolve_internal(specload.bundle(spec.spec_path(version)))
    found = []
    for template, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method in ("get", "head", "put", "post", "delete"):
                operation = {**operation, "parameters": [*shared, *operation.get("parameters", [])]}
                found.append((version, method, template, operation))
    return found


OPERATIONS = [entry for version in VERSIONS for entry in operations_of(version)]
OPERATION_IDS = [f"{v} {m.upper()} {t}" for v, m, t, _ in OPERATIONS]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    backends = test_backends(metafunc.config)
    if "sweep_backend" in metafunc.fixturenames:
        metafunc.parametrize("sweep_backend", backends, scope="module")
    if "random_backend" in metafunc.fixturenames:
        metafunc.parametrize("random_backend", backends if LONG else backends[:1], scope="module")


# --------------------------------------------------------------------------- apps with a little data


@dataclass
class Store:
    """A client of an app on one backend, and the ids of what it holds."""

    client: TestClient
    ids: dict[str, str] = field(default_factory=dict)

    def path(self, version: str, template: str, **hostile: str) -> str:
        """``template`` under ``version``'s base path, each parameter an id that exists (or ``hostile``'s)."""
        path = template
        for name in re.findall(r"\{([^}]+)\}", template):
            path = path.replace("{" + name + "}", hostile.get(name, self.ids.get(name, str(uuid.uuid4()))))
        return f"/v{version}{path}"


def seeded(backend: str) -> Iterator[Store]:
    app = create_app(app_settings(**backend_settings(backend)))
    with TestClient(app, raise_server_exceptions=False, headers=ADMIN_HEADERS) as client:
        store = Store(client, {"flowId": FLOW_ID, "sourceId": SOURCE_ID, "objectId": OBJECT_ID, "name": "genre"})
        flow = flow_body(flow_id=FLOW_ID, source_id=SOURCE_ID, tags={"genre": "news"})
        assert client.put(f"/v8.2/flows/{FLOW_ID}", json=flow).status_code == 201
        allocated = client.post(f"/v8.2/flows/{FLOW_ID}/storage", json={"object_ids": [OBJECT_ID]})
        assert allocated.status_code == 201, allocated.text
        put_url = allocated.json()["media_objects"][0]["put_url"]
        if "/_media/" in put_url["url"]:  # the server's own media store (not an S3 endpoint)
            headers = {"Content-Type": put_url.get("content-type", "video/mp2t")}
            assert client.put(put_url["url"], content=b"\x47" * 188, headers=headers).status_code in (200, 201)
        segments = [
            {"object_id": OBJECT_ID if i == 0 else f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"}
            | ({} if i == 0 else {"get_urls": [{"url": f"https://media.example/o{i}", "label": "elsewhere"}]})
            for i in range(5)
        ]
        posted = client.post(f"/v8.2/flows/{FLOW_ID}/segments", json=segments)
        assert posted.status_code in (200, 201), posted.text
        hook = client.post(
            "/v8.2/service/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["flows/created"]}
        )
        if hook.status_code == 201:
            store.ids["webhookId"] = hook.json()["id"]
        yield store


@pytest.fixture(scope="module")
def swept(sweep_backend: str) -> Iterator[Store]:
    yield from seeded(sweep_backend)


@pytest.fixture(scope="module")
def random_store(random_backend: str) -> Iterator[Store]:
    yield from seeded(random_backend)


def check(response: Any, context: object) -> None:
    assert response.status_code < 500, (context, response.status_code, response.text[:500])
    if response.status_code >= 400 and response.request.method != "HEAD":
        try:
            body = response.json()
        except ValueError:
            body = None
        assert isinstance(body, dict) and set(body) >= {"type", "summary", "time"}, (context, response.text[:500])


# --------------------------------------------------------------------------- the sweep: the inputs of issue 12

DEFAULTS = Settings()
# Path values, percent-encoded as sent: CR/LF in an id, a final newline, 5,000 digits, bytes that
# are not UTF-8 (a lone surrogate's encoding, a bare 0xff).
HOSTILE_PATH_VALUES = ["abc%0D%0Adef", "{valid}%0A", "9" * 5000, "%ED%A0%80", "%FF", "a%5Cb%3F%23"]
HOSTILE_QUERY_VALUES = ["9" * 5000, "a%0D%0Ab", "%ED%A0%80", "%FF", "-" + "9" * 5000]
HOSTILE_BODIES: list[tuple[str, bytes]] = [
    ("not UTF-8", b"\xff"),
    ("not UTF-8 inside a string", b'{"label": "caf\xe9"}'),
    ("nested 10,000 deep", b"[" * 10_000 + b"]" * 10_000),
    ("an object nested 10,000 deep", b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
    ("a 4,300+-digit integer", b'{"frame_width": ' + b"9" * 4400 + b"}"),
    ("a bare 5,000-digit integer", b"9" * 5000),
    ("a lone surrogate", b'"\\ud800"'),
    ("a lone surrogate in a key", b'{"\\udc00": "x"}'),
    ("NaN", b'{"max_bit_rate": NaN}'),
    ("1e999", b"[1e999]"),
    ("an oversized string", json.dumps("x" * (DEFAULTS.max_string_bytes + 1)).encode()),
    ("an oversized tag", json.dumps({"genre": "x" * (DEFAULTS.max_string_bytes + 1)}).encode()),
    ("an oversized body", b"[" + b'"x",' * (DEFAULTS.max_body_bytes // 4) + b'"x"]'),
    ("not JSON", b'{"id": '),
]


def query_strings(operation: dict[str, Any], value: str) -> list[str]:
    """Every query parameter of ``operation`` set to ``value`` (templated names get a hostile name),
    as few query strings as keep each URL within what a client sends (64 KiB)."""
    names = [p["name"] for p in operation["parameters"] if p["in"] == "query"]
    pairs = [f"{quote(name.replace('{name}', 'x%0D%0Ay'), safe='%')}={value}" for name in names]
    per_url = max(1, 50_000 // len(pairs[0]))
    return ["&".join(pairs[i : i + per_url]) for i in range(0, len(pairs), per_url)]


@pytest.mark.parametrize(("version", "method", "template", "operation"), OPERATIONS, ids=OPERATION_IDS)
def test_hostile_paths_and_queries_are_refused_cleanly(
    swept: Store, version: str, method: str, template: str, operation: dict[str, Any]
) -> None:
    client = swept.client
    for name in re.findall(r"\{([^}]+)\}", template):
        for value in HOSTILE_PATH_VALUES:
            value = value.replace("{valid}", swept.ids.get(name, ""))
            path = swept.path(version, template, **{name: value})
            check(client.request(method.upper(), path), (method, path))
    if any(p["in"] == "query" for p in operation["parameters"]):
        path = swept.path(version, template)
        for value in HOSTILE_QUERY_VALUES:
            for query in query_strings(operation, value):
                check(client.request(method.upper(), f"{path}?{query}"), (method, path, query[:300]))


BODY_OPERATIONS = [entry for entry in OPERATIONS if "requestBody" in entry[3]]


@pytest.mark.parametrize(
    ("version", "method", "template", "operation"),
    BODY_OPERATIONS,
    ids=[f"{v} {m.upper()} {t}" for v, m, t, _ in BODY_OPERATIONS],
)
def test_hostile_bodies_are_refused_cleanly(
    swept: Store, version: str, method: str, template: str, operation: dict[str, Any]
) -> None:
    path = swept.path(version, template)
    for what, content in HOSTILE_BODIES:
        response = swept.client.request(
            method.upper(), path, content=content, headers={"Content-Type": "application/json"}
        )
        check(response, (method, path, what))
        assert 400 <= response.status_code < 500, (method, path, what, response.text[:300])


@pytest.mark.parametrize("version", VERSIONS)
def test_a_query_parameter_named_like_a_path_parameter_logs_no_error(
    swept: Store, version: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = swept.client
    label = client.put(f"/v{version}/flows/{FLOW_ID}/label", json="the label")
    assert label.status_code in (200, 201, 204), label.text
    with caplog.at_level(logging.DEBUG):
        for query in ("flowId=x", "flow_id=x", "body=x", "flowId=x&flowId=y"):
            response = client.get(f"/v{version}/flows/{FLOW_ID}/label?{query}")
            assert response.status_code == 200, response.text
            assert response.json() == "the label"
        response = client.put(f"/v{version}/flows/{FLOW_ID}/label?flowId=x&body=y", json="changed")
        assert response.status_code in (200, 201, 204), response.text
        assert client.get(f"/v{version}/flows/{FLOW_ID}/label").json() == "changed"
        listing = client.get(f"/v{version}/flows/{FLOW_ID}/segments?flowId=x&limit=2")
        assert listing.status_code == 200, listing.text
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not loud, [r.getMessage() for r in loud]


# --------------------------------------------------------------------------- media, webhooks, storage


@dataclass(frozen=True)
class Owned:
    """A hostile request for one part of the server (``owner``), and the statuses it may get."""

    owner: str
    what: str
    expected: tuple[int, ...]


MEDIA = "media (tams_server/media.py)"
WEBHOOKS = "webhooks (registration checks)"
STORAGE = "storage allocation (handlers/storage.py, backends)"
OWNED_CASES = [
    Owned(MEDIA, "expires of 5,000 digits on a signed media URL", (400, 403)),
    Owned(MEDIA, "Range of 5,000 digits on a signed media URL", (200, 206, 400, 416)),
    Owned(WEBHOOKS, "webhook URL with a bad port", (400,)),
    Owned(WEBHOOKS, "webhook URL with a bad IPv6 literal", (400,)),
    Owned(WEBHOOKS, "webhook URL with an oversized host", (400,)),
    Owned(STORAGE, "object ids with ? # \\ at allocation", (400,)),
    Owned(STORAGE, "storage limit above 1000", (201,)),
]


def owned_request(store: Store, case: Owned) -> Any:
    client = store.client
    if case.owner == MEDIA:
        media = [
            url["url"]
            for segment in client.get(f"/v8.2/flows/{FLOW_ID}/segments").json()
            for url in segment.get("get_urls", [])
            if "/_media/" in url["url"]
        ]
        if not media:
            pytest.skip("this backend serves no media URLs of its own (/_media)")
        if case.what.startswith("expires"):
            return client.get(re.sub(r"expires=\d+", "expires=" + "9" * 5000, media[0]))
        return client.get(media[0], headers={"Range": "bytes=" + "9" * 5000 + "-"})
    if case.owner == WEBHOOKS:
        url = {
            "webhook URL with a bad port": "http://127.0.0.1:99999/hook",
            "webhook URL with a bad IPv6 literal": "http://[::1/hook",
            "webhook URL with an oversized host": "http://" + "a" * 300 + ".example/hook",
        }[case.what]
        return client.post("/v8.2/service/webhooks", json={"url": url, "events": ["flows/created"]})
    if case.what.startswith("object ids"):
        return client.post(f"/v8.2/flows/{FLOW_ID}/storage", json={"object_ids": ["a?b", "a#b", "a\\b"]})
    return client.post(f"/v8.2/flows/{FLOW_ID}/storage", json={"limit": 5000})


@pytest.mark.parametrize("case", [pytest.param(case, id=case.what) for case in OWNED_CASES])
def test_hostile_input_of_media_webhooks_and_storage(swept: Store, case: Owned) -> None:
    response = owned_request(swept, case)
    check(response, case.what)
    assert response.status_code in case.expected, (case.what, response.status_code, response.text[:300])


# --------------------------------------------------------------------------- random input (Hypothesis)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
# Edge values drawn uniformly, so each operation meets most of them within a short budget.
EDGE_VALUES = ["", "0", "-1", "1", "99999999999999999999999", "abc", "true", "false", "null", ",", "a,,b"]
TIMERANGES = ["_", "()", "[0:0_10:0)", "[5:0]", "(1:0_", "_3:0]", "10:0_5:0", "[1:0)", "0:0", "[", "1:999999999"]
junk = st.sampled_from([*EDGE_VALUES, *TIMERANGES, FLOW_ID, SOURCE_ID, "x" * 500, "9" * 5000]) | st.text(max_size=20)
path_values = st.sampled_from(
    [FLOW_ID, SOURCE_ID, str(uuid.uuid4()), "a/b", "%2F", "x" * 300, "a%0D%0Ab", FLOW_ID + "%0A"]
) | st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20).map(lambda text: quote(text, safe=""))


def request_for(data: st.DataObject, template: str, operation: dict[str, Any]) -> tuple[str, dict[str, str], Any]:
    path = template
    query: dict[str, str] = {}
    for parameter in operation["parameters"]:
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", data.draw(path_values))
        elif parameter["in"] == "query" and data.draw(st.booleans()):
            name = parameter["name"].replace("{name}", data.draw(st.sampled_from(["genre", "x y", ""])))
            query[name] = data.draw(junk)
    body = data.draw(json_values | st.just(RAW_JUNK)) if "requestBody" in operation else None
    return path, query, body


@pytest.mark.parametrize(("version", "method", "template", "operation"), OPERATIONS, ids=OPERATION_IDS)
@settings(max_examples=100 if LONG else 12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data())
def test_no_input_gives_a_server_error(
    random_store: Store, version: str, method: str, template: str, operation: dict[str, Any], data: st.DataObject
) -> None:
    path, query, body = request_for(data, template, operation)
    path = f"/v{version}{path}"
    client = random_store.client
    if body is RAW_JUNK:
        headers = {"Content-Type": "application/json"}
        response = client.request(method.upper(), path, params=query, content=b'{"id": ', headers=headers)
    else:
        response = client.request(method.upper(), path, params=query, json=body)
    check(response, (method, path, query, body))


# Every version with TAMS_TEST_LONG=1; the newest alone by default (the sweep covers both).
QUERY_PARAMETERS = [
    (version, method, template, parameter["name"])
    for version, method, template, operation in OPERATIONS
    for parameter in operation["parameters"]
    if parameter["in"] == "query" and (LONG or version == VERSIONS[-1])
]


@pytest.mark.parametrize(
    ("version", "method", "template", "name"),
    QUERY_PARAMETERS,
    ids=[f"{v} {m.upper()} {t} {n}" for v, m, t, n in QUERY_PARAMETERS],
)
def test_every_edge_value_of_every_query_parameter_is_handled(
    random_store: Store, version: str, method: str, template: str, name: str
) -> None:
    path = random_store.path(version, template)
    name = name.replace("{name}", "genre")
    for value in [*EDGE_VALUES, *TIMERANGES]:
        check(random_store.client.request(method.upper(), path, params={name: value}), (method, path, name, value))
