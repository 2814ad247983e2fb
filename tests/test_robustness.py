"""Malformed input never gives a 5xx, and every error is JSON ``{type, summary, time}``.

Hypothesis sends every operation of the spec random path values, query values and JSON bodies
(mixing valid ids and timeranges with junk) against one app holding a little data.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import pytest
from conftest import ADMIN_HEADERS, app_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import spec
from tams_server import specload
from tams_server.app import create_app

FLOW_ID = str(uuid.uuid4())
SOURCE_ID = str(uuid.uuid4())

RAW_JUNK = object()  # stands for a body that is not JSON at all

OPERATIONS = [
    (method, template, operation)
    for template, item in specload.resolve_internal(specload.bundle(spec.SPEC_PATH))["paths"].items()
    for method, operation in item.items()
    if method in ("get", "head", "put", "post", "delete")
]

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
junk = st.sampled_from([*EDGE_VALUES, *TIMERANGES, FLOW_ID, SOURCE_ID, "x" * 500]) | st.text(max_size=20)
path_values = st.sampled_from([FLOW_ID, SOURCE_ID, str(uuid.uuid4()), "a/b", "%2F", "x" * 300]) | st.text(
    st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=20
).map(lambda text: quote(text, safe=""))


@pytest.fixture(scope="module")
def client() -> TestClient:
    client = TestClient(create_app(app_settings()), raise_server_exceptions=False, headers=ADMIN_HEADERS)
    flow = {
        "id": FLOW_ID,
        "source_id": SOURCE_ID,
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "container": "video/mp2t",
        "essence_parameters": {"frame_width": 640, "frame_height": 360},
    }
    assert client.put(f"/flows/{FLOW_ID}", json=flow).status_code == 201
    segments = [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(5)]
    assert client.post(f"/flows/{FLOW_ID}/segments", json=segments).status_code == 201
    return client


def request_for(data: st.DataObject, template: str, operation: dict[str, Any]) -> tuple[str, dict[str, str], Any]:
    path = template
    query: dict[str, str] = {}
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", data.draw(path_values))
        elif parameter["in"] == "query" and data.draw(st.booleans()):
            name = parameter["name"].replace("{name}", data.draw(st.sampled_from(["genre", "x y", ""])))
            query[name] = data.draw(junk)
    body = data.draw(json_values | st.just(RAW_JUNK)) if "requestBody" in operation else None
    return path, query, body


@pytest.mark.parametrize(
    ("method", "template", "operation"), OPERATIONS, ids=[f"{m.upper()} {t}" for m, t, _ in OPERATIONS]
)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data())
def test_no_input_gives_a_server_error(
    client: TestClient, method: str, template: str, operation: dict[str, Any], data: st.DataObject
) -> None:
    path, query, body = request_for(data, template, operation)
    if body is RAW_JUNK:
        headers = {"Content-Type": "application/json"}
        response = client.request(method.upper(), path, params=query, content=b'{"id": ', headers=headers)
    else:
        response = client.request(method.upper(), path, params=query, json=body)
    check(response, (method, path, query, body))


def check(response: Any, context: object) -> None:
    assert response.status_code < 500, (context, response.text)
    if response.status_code >= 400 and response.request.method != "HEAD":
        assert set(response.json()) >= {"type", "summary", "time"}, (context, response.text)


QUERY_PARAMETERS = [
    (method, template, parameter["name"])
    for method, template, operation in OPERATIONS
    for parameter in operation.get("parameters", [])
    if parameter["in"] == "query"
]


@pytest.mark.parametrize(
    ("method", "template", "name"), QUERY_PARAMETERS, ids=[f"{m.upper()} {t} {n}" for m, t, n in QUERY_PARAMETERS]
)
def test_every_edge_value_of_every_query_parameter_is_handled(
    client: TestClient, method: str, template: str, name: str
) -> None:
    path = template.replace("{flowId}", FLOW_ID).replace("{sourceId}", SOURCE_ID).replace("{objectId}", "o1")
    name = name.replace("{name}", "genre")
    for value in [*EDGE_VALUES, *TIMERANGES]:
        check(client.request(method.upper(), path, params={name: value}), (method, path, name, value))
