"""The conformance suite's own parts: its time maths against the server's, its strategies against
the official schemas, divergence files, path matching, read-only mode and the HEAD body tap."""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from backends.timerange import TimeRange
from contract_tests import cli, divergences, preflight, timeline, verdicts
from contract_tests import spec as contract_spec
from contract_tests import strategies as S
from contract_tests.api import Api
from contract_tests.errors import ContractFailure, ContractWarning, ReadOnlyViolation
from contract_tests.suite import SuiteConfig, list_all
from contract_tests.target import HeadBodyTap

OFFICIAL_DIR = Path(__file__).resolve().parents[2] / "shared/tams-spec/api"
SCHEMAS = OFFICIAL_DIR / "schemas" if OFFICIAL_DIR.is_dir() else contract_spec.default_spec_path().parent / "schemas"


def _schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text())


# --------------------------------------------------------------------------- time maths: two implementations agree


@settings(max_examples=300, deadline=None)
@given(a=S.timeranges(), b=S.timeranges())
def test_the_suites_timerange_maths_agrees_with_the_servers(a: str, b: str) -> None:
    ours_a, ours_b = timeline.Range.parse(a), timeline.Range.parse(b)
    server_a, server_b = TimeRange.parse(a), TimeRange.parse(b)
    assert ours_a.empty == server_a.is_empty
    assert str(ours_a) == str(server_a)
    assert ours_a.overlaps(ours_b) == server_a.overlaps(server_b)
    assert ours_a.covers(ours_b) == server_a.covers(server_b)
    assert str(ours_a.extend(ours_b)) == str(server_a.extend_to_encompass(server_b))
    assert str(ours_a.intersect(ours_b)) == str(server_a.intersect(server_b))


@settings(max_examples=200, deadline=None)
@given(text=S.timeranges(), ts=S.timestamps())
def test_generated_timeranges_and_timestamps_match_the_spec_patterns(text: str, ts: str) -> None:
    assert re.fullmatch(_schema("timerange.json")["pattern"], text)
    assert re.fullmatch(_schema("timestamp.json")["pattern"], ts)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("_", "_"),
        ("()", "()"),
        ("", "()"),
        ("[", "()"),
        ("[_]", "_"),
        ("5:0", "[5:0]"),
        ("[5:0)", "()"),
        ("(5:0]", "()"),
        ("0:0_10:0", "[0:0_10:0]"),
        ("(0:0_10:0", "(0:0_10:0]"),
        ("[10:0_5:0)", "()"),
        ("-1:500000000_", "[-1:500000000_"),
        ("_10:0)", "_10:0)"),
    ],
)
def test_timerange_grammar_forms(text: str, canonical: str) -> None:
    assert str(timeline.Range.parse(text)) == canonical


def test_adjacent_ranges_do_not_overlap_but_touching_ones_do() -> None:
    first = timeline.Range.parse("[0:0_10:0)")
    assert not first.overlaps(timeline.Range.parse("[10:0_20:0)"))
    assert timeline.Range.parse("[0:0_10:0]").overlaps(timeline.Range.parse("[10:0_20:0)"))
    assert timeline.overlapping(["[10:0_20:0)", "[0:0_10:0)"], "[10:0]") == ["[10:0_20:0)"]


# --------------------------------------------------------------------------- strategies produce valid data


OFFICIAL_SCHEMAS = {
    "7.0": (OFFICIAL_DIR / "schemas", "flow.json"),
    "8.2": (OFFICIAL_DIR.parents[1] / "tams-spec-8.2/api/schemas", "flow-put.json"),
}
OUR_SCHEMAS = {
    "7.0": (contract_spec.shipped_spec("7.0").parent / "schemas", "flow.json"),
    "8.2": (contract_spec.shipped_spec("8.2").parent / "schemas", "flow-put.json"),
}


@functools.cache
def _flow_validator(version: str) -> jsonschema.Draft202012Validator:
    """The official flow (PUT body) schema of ``version``, or ours when the official files are absent."""
    folder, name = OFFICIAL_SCHEMAS[version] if OFFICIAL_SCHEMAS[version][0].is_dir() else OUR_SCHEMAS[version]
    resources = [
        (path.name, Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT202012))
        for path in folder.glob("*.json")
    ]
    registry = Registry().with_resources(resources)
    return jsonschema.Draft202012Validator(json.loads((folder / name).read_text()), registry=registry)


@pytest.mark.parametrize("version", ["7.0", "8.2"])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_generated_flows_are_valid_for_the_official_schema(version: str, data: st.DataObject) -> None:
    body = data.draw(S.flows(version=version))
    flow = {**body, "id": "7b0f5f4c-5f0a-4f5e-9d9c-2d1c2f0e1a11", "source_id": "2c1f3a66-8d5f-4b0a-a0a5-6c7e1d3b2f10"}
    errors = [e.message for e in _flow_validator(version).iter_errors(flow)]
    assert not errors, errors


@settings(max_examples=200, deadline=None)
@given(layout=S.segment_layouts())
def test_a_layout_keeps_exactly_the_segments_that_overlap_nothing_kept_before(
    layout: list[S.PlannedSegment],
) -> None:
    kept = S.accepted(layout)
    for i, a in enumerate(kept):
        assert not a.range.empty and a.range.start is not None and a.range.end is not None
        assert not any(a.range.overlaps(b.range) for b in kept[i + 1 :])
    for segment in layout:
        if segment not in kept:
            earlier = kept[: [k for k in layout if k in kept or k is segment].index(segment)]
            assert any(segment.range.overlaps(k.range) for k in earlier)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), layout=S.segment_layouts(max_size=4))
def test_relative_timeranges_are_bounded_segments(data: st.DataObject, layout: list[S.PlannedSegment]) -> None:
    text = data.draw(S.relative_timeranges([p.range for p in layout]))
    parsed = timeline.Range.parse(text)
    assert not parsed.empty and parsed.start is not None and parsed.end is not None


# --------------------------------------------------------------------------- divergences


def test_divergences_match_on_every_given_key(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text(
        '[[divergence]]\noperation = "DELETE /flows/{flowId}/label"\ncheck = "spec"\nreason = "403 on read-only"\n'
        '[[divergence]]\ntest = "test_fuzz_operation*POST /service]"\nmode = "skip"\nreason = "frozen"\n'
    )
    found = divergences.load(path)
    assert (
        divergences.find(found, "test_x[remote]", "DELETE /flows/{flowId}/label", "spec").reason == "403 on read-only"
    )
    assert divergences.find(found, "test_x[remote]", "DELETE /flows/{flowId}/label", "differential") is None
    assert divergences.find(found, "test_x[remote]", "PUT /flows/{flowId}/label", "spec") is None
    skip = found[1]
    assert skip.mode == "skip" and skip.matches("test_fuzz_operation[remote-POST /service]", None, None)


@pytest.mark.parametrize(
    "text",
    [
        '[[divergence]]\noperation = "GET /"\n',
        '[[divergence]]\nreason = "no selector"\n',
        '[[divergence]]\noperation = "GET /"\nreason = "r"\nmode = "maybe"\n',
        '[[divergence]]\noperation = "GET /"\nreason = "r"\nmode = "skip"\n',
        '[[divergence]]\noperation = "GET /"\nreason = "r"\ncolour = "red"\n',
    ],
)
def test_malformed_divergence_files_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "d.toml"
    path.write_text(text)
    with pytest.raises(ValueError):
        divergences.load(path)


# --------------------------------------------------------------------------- paths, read-only mode, HEAD bodies


def _api(handler: Any, base_url: str = "http://tams.example/tams/v7.0", **kwargs: Any) -> Api:
    http = httpx.Client(base_url=base_url, transport=httpx.MockTransport(handler))
    return Api(http, name="t", spec=contract_spec.load(None), **kwargs)


def test_operations_are_recognised_under_a_base_path_and_object_ids_may_hold_slashes() -> None:
    api = _api(lambda request: httpx.Response(200, json=[]))
    assert api.operation_of(api.http.get("/flows")) == "GET /flows"
    response = api.http.get("/objects/bucket/abc")
    assert api.operation_of(response) == "GET /objects/{objectId}"
    assert api.operation_of(api.http.get("http://elsewhere.example/flows")) is None
    assert api.operation_of(api.http.get("/service/storage-backends")) == "GET /service/storage-backends"
    # 8.2: a longer template is not swallowed by the greedy object id.
    api82 = Api(api.http, name="t", spec=contract_spec.Spec(contract_spec.shipped_spec("8.2")))
    response = api82.http.post("/objects/bucket/abc/instances")
    assert api82.operation_of(response) == "POST /objects/{objectId}/instances"
    assert api82.operation_of(api82.http.get("/objects/bucket/abc")) == "GET /objects/{objectId}"


def test_read_only_mode_refuses_to_send_anything_but_get_and_head() -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(200, json=[], headers={"X-Paging-Limit": "10"})

    api = _api(handler, read_only=True)
    api.get("/flows", check=False)
    api.head("/flows", check=False)
    for method in ("PUT", "POST", "DELETE"):
        with pytest.raises(ReadOnlyViolation):
            api.request(method, "/flows/x", check=False)
    with pytest.raises(ReadOnlyViolation):
        api.media("PUT", "http://tams.example/_media/x")
    assert sent == ["GET", "HEAD"]


def test_a_head_body_is_caught_even_where_the_client_drops_it() -> None:
    from starlette.testclient import TestClient

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'["service"]'})

    tap = HeadBodyTap(app)
    client = TestClient(tap, base_url="http://testserver")
    api = Api(client, name="t", spec=contract_spec.load(None), tap=tap)
    assert client.head("/").content == b""  # what any HTTP client shows
    with pytest.raises(ContractFailure, match="11-byte body") as caught:
        api.head("/", check=False)
    assert caught.value.operation == "HEAD /" and caught.value.check == "head-without-body"


# --------------------------------------------------------------------------- verdicts, warnings, reports


def _record(check: str, **classes: int) -> verdicts.TargetRecord:
    record = verdicts.TargetRecord()
    record.observe(check, {"GET /flows": Counter(classes)}, [])
    return record


@pytest.mark.parametrize(
    ("check", "classes", "verdict"),
    [
        ("walkthrough", {"2xx": 1, "404": 3}, "passed"),
        (verdicts.FUZZ_CHECK, {"2xx": 2}, "schema only"),
        ("walkthrough", {"404": 4}, "not implemented"),  # a check asked for something that exists
        (verdicts.FUZZ_CHECK, {"unsupported": 1}, "not implemented"),  # 405/501
        (verdicts.FUZZ_CHECK, {"404": 5}, "not reached"),  # fuzzing asks for ids nobody has
        ("walkthrough", {"other": 2}, "not reached"),
    ],
)
def test_an_operation_passes_only_on_a_checked_2xx(check: str, classes: dict[str, int], verdict: str) -> None:
    assert _record(check, **classes).operations["GET /flows"].verdict == verdict


def test_a_failure_wins_and_every_failure_of_a_walk_blames_its_own_operation() -> None:
    record = _record("walkthrough", **{"2xx": 3})
    first = ContractFailure("x" * 1000, "GET /flows", "walkthrough")
    other = ContractFailure("second", "PUT /flows/{flowId}", "walkthrough")
    first.others = [other]
    record.failed("walkthrough", first, "", expected=False)
    assert record.operations["GET /flows"].verdict == "FAILED"
    assert record.operations["PUT /flows/{flowId}"].verdict == "FAILED"
    assert len(record.operations["GET /flows"].first_failure or "") <= 160
    lines = [line for line, _ in verdicts.table_lines(["GET /flows"], record)]
    assert any("breaks: the spec: a valid request" in line or "breaks:" in line for line in lines)
    assert lines[-1].startswith("operations: 2 FAILED")


def test_failure_text_is_bounded_per_line_and_in_lines() -> None:
    failure = ContractFailure("a" * 100_000 + "\n" + "\n".join(f"line {i}" for i in range(100)), "GET /flows", "spec")
    text = str(failure)
    assert len(text) < 4000
    assert "more chars" in text and "more lines" in text
    assert text.rstrip().endswith("breaks: " + failure.cite)


def test_schema_problems_name_the_offending_item_not_the_whole_body() -> None:
    spec = contract_spec.load(None)
    body = [{"id": "x" * 50_000, "format": "nope"}] + [{"id": str(i)} for i in range(4)]
    request = httpx.Request("GET", "http://t/flows")
    response = httpx.Response(200, json=body, request=request)
    problems = spec.problems("GET", "/flows", response)
    assert problems and all(len(p) < 1000 for p in problems)
    assert problems[0].count("at body[") == 3 and "more)" in problems[0]


def test_warnings_are_recorded_once_and_fail_only_when_strict() -> None:
    api = _api(lambda request: httpx.Response(200, json=[]))
    api.warn("no X-Paging-Limit header on a page", "GET /flows", "paging-headers")
    api.warn("no X-Paging-Limit header on a page", "GET /flows", "paging-headers")
    assert len(api.warnings) == 1 and "optional" in api.warnings[0].cite
    strict = _api(lambda request: httpx.Response(200, json=[]), strict=True)
    with pytest.raises(ContractFailure, match="strict"):
        strict.warn("no X-Paging-Limit header on a page", "GET /flows", "paging-headers")


def test_missing_optional_paging_headers_warn_but_wrong_ones_fail() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {} if "limit" not in request.url.params else {"X-Paging-Limit": "0"}
        return httpx.Response(200, json=[], headers=headers)

    api = _api(handler)
    listing = list_all(api, "/flows", [], "paging")
    assert listing.items == [] and [w.check for w in api.warnings] == ["paging-headers"]
    with pytest.raises(ContractFailure, match="not a positive integer"):
        list_all(api, "/flows", [], "paging", limit=5)


def test_a_report_is_written_as_json(tmp_path: Path) -> None:
    record = _record("walkthrough", **{"2xx": 1})
    record.warnings.update([ContractWarning("w", "GET /flows", "paging-headers", "optional")])
    path = tmp_path / "report.json"
    verdicts.write_json(path, {"remote": record}, {"remote": {"tested_as": "8.2"}}, 0)
    report = json.loads(path.read_text())
    target = report["targets"]["remote"]
    assert target["operations"]["GET /flows"]["verdict"] == "passed"
    assert target["tested_as"] == "8.2" and target["warnings"][0]["check"] == "paging-headers"


@pytest.mark.parametrize(
    ("server", "known", "chosen"),
    [
        ("8.1", ["7.0", "8.2"], "8.2"),
        ("8.0", ["7.0", "8.2"], "8.2"),
        ("7.0", ["7.0", "8.2"], "7.0"),
        ("9.0", ["7.0", "8.2"], "8.2"),
        (None, ["7.0", "8.2"], "8.2"),
    ],
)
def test_a_server_is_tested_as_the_nearest_known_version(server: str | None, known: list[str], chosen: str) -> None:
    assert preflight.nearest(server, known) == chosen


def test_features_newer_than_the_server_are_skipped_not_failed() -> None:
    config = SuiteConfig(version="8.2", server_version="8.1")
    assert config.unsupported("8.2", "profiles") is not None
    assert config.unsupported("8.1", "min_object_timeout") is None
    assert SuiteConfig(version="7.0").unsupported("8.0", "webhooks by id") is not None


@pytest.mark.parametrize(("pytest_code", "tool_code"), [(0, 0), (1, 1), (2, 2), (3, 2), (4, 2), (5, 2)])
def test_exit_codes_separate_failed_from_could_not_test(pytest_code: int, tool_code: int) -> None:
    assert cli.exit_code(pytest_code) == tool_code


def _auth_server(accepts: Any) -> httpx.Client:
    """A store whose credential check is ``accepts(request)``; 401 with a challenge otherwise."""

    def handler(request: httpx.Request) -> httpx.Response:
        if accepts(request):
            return httpx.Response(200, json=[])
        return httpx.Response(401, json={"type": "Unauthorized"}, headers={"WWW-Authenticate": "Bearer"})

    return httpx.Client(base_url="http://tams.example", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("flaw", "accepts"),
    [
        ("any bearer token", lambda r: r.headers.get("authorization", "").startswith("Bearer ")),
        ("any password", lambda r: r.headers.get("authorization", "").startswith("Basic ")),
        ("any access_token", lambda r: "access_token" in r.url.params),
    ],
)
def test_a_store_that_accepts_wrong_credentials_fails(flaw: str, accepts: Any) -> None:
    from contract_tests import checks
    from contract_tests.suite import Context

    http = _auth_server(accepts)
    ctx = Context(_api(lambda request: httpx.Response(200, json=[])), SuiteConfig())
    with pytest.raises(ContractFailure, match="not 401"):
        checks.credentials_required(ctx, http, "someone")


def test_a_store_that_checks_credentials_passes_and_a_missing_challenge_only_warns() -> None:
    from contract_tests import checks
    from contract_tests.suite import Context

    ctx = Context(_api(lambda request: httpx.Response(200, json=[])), SuiteConfig())
    checks.credentials_required(ctx, _auth_server(lambda r: False), "someone")
    assert ctx.api.warnings == []

    def no_challenge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"type": "Unauthorized"})

    bare = httpx.Client(base_url="http://tams.example", transport=httpx.MockTransport(no_challenge))
    checks.credentials_required(ctx, bare, None)
    assert {w.check for w in ctx.api.warnings} == {"auth-header"}
