"""jsonschema_rs only ever saves the work of accepting: it never accepts what the reference
validator (jsonschema 2020-12 with ECMA-262 patterns) refuses (tams_server.validation.CheckedValidator)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import ValidationError
from test_validation_patterns import DIFFERING, SAMPLES, SPEC_PATTERNS, near_samples

import spec
from tams_server import specload
from tams_server.validation import CheckedValidator

FAST = settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def _agree(validator: CheckedValidator, instance: Any) -> None:
    assert validator.fast is not None
    if validator.fast.is_valid(instance):
        assert validator.reference.is_valid(instance), instance


@pytest.mark.parametrize("pattern", SPEC_PATTERNS)
@FAST
@given(text=near_samples() | st.sampled_from(SAMPLES) | st.text(alphabet=st.sampled_from(DIFFERING + "0aZ_-:/[]()")))
def test_fast_never_accepts_a_string_the_reference_refuses(pattern: str, text: str) -> None:
    _agree(CheckedValidator({"type": "string", "pattern": pattern}), text)


def _body_schemas() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for version in ("7.0", "8.2"):
        doc = specload.resolve_internal(specload.bundle(spec.spec_path(version)))
        for template, path_item in doc["paths"].items():
            for method, operation in path_item.items():
                content = operation.get("requestBody", {}).get("content", {}) if isinstance(operation, dict) else {}
                for media in content.values():
                    if "schema" in media:
                        found.append((f"{version} {method.upper()} {template}", media["schema"]))
    return found


BODY_SCHEMAS = _body_schemas()
# Valid bodies to start from; each test changes them a little (the interesting cases are near valid).
SEEDS: list[Any] = [
    {"object_id": "o1", "timerange": "[0:0_1:0)"},
    [{"object_id": "o1", "timerange": "[0:0_1:0)"}, {"object_id": "o2", "timerange": "[1:0_2:0)", "ts_offset": "0:0"}],
    {
        "id": "6e2f4a1c-4b7a-4e55-9c1d-3f0e2b9a7d11",
        "source_id": "0b2f4a1c-4b7a-4e55-9c1d-3f0e2b9a7d12",
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "container": "video/mp2t",
        "essence_parameters": {"frame_width": 1920, "frame_height": 1080},
        "tags": {"a": "b"},
    },
    {"limit": 5},
    {"object_ids": ["a", "b"]},
    {"url": "https://example.com/hook", "events": ["flows/created"], "api_key_name": "k", "api_key_value": "v"},
    {"label": "x", "description": "y"},
]
LEAVES = st.sampled_from(SAMPLES) | near_samples() | st.integers(-(2**63), 2**63) | st.none() | st.booleans()


@st.composite
def near_bodies(draw: st.DrawFn) -> Any:
    """A seed with one to three values replaced (strings by near-valid samples), keys dropped or added."""
    body = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        node = body
        while isinstance(node, (dict, list)) and node and draw(st.booleans()):
            child = draw(st.sampled_from(list(node) if isinstance(node, dict) else range(len(node))))
            if not isinstance(node[child], (dict, list)):
                break
            node = node[child]
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            action = draw(st.sampled_from(["replace", "drop", "add"]))
            if action == "replace":
                node[key] = draw(LEAVES)
            elif action == "drop":
                del node[key]
            else:
                added = draw(st.sampled_from(["tags", "label", "x", "timerange", "get_urls", "frame_rate"]))
                node[added] = draw(LEAVES)
        elif isinstance(node, list) and node:
            node[draw(st.integers(0, len(node) - 1))] = draw(LEAVES)
    return body


@pytest.mark.parametrize(("where", "schema"), BODY_SCHEMAS, ids=[w for w, _ in BODY_SCHEMAS])
@FAST
@given(body=near_bodies())
def test_fast_never_accepts_a_body_the_reference_refuses(where: str, schema: dict[str, Any], body: Any) -> None:
    _agree(CheckedValidator(schema), body)


def test_the_fast_validator_compiles_every_body_schema_and_accepts_a_valid_segment() -> None:
    assert BODY_SCHEMAS
    for _, schema in BODY_SCHEMAS:
        assert CheckedValidator(schema).fast is not None
    segment_post = dict(BODY_SCHEMAS)["8.2 POST /flows/{flowId}/segments"]
    checked = CheckedValidator(segment_post)
    assert checked.fast.is_valid(SEEDS[0]) and checked.reference.is_valid(SEEDS[0])
    refused = {"object_id": "o1", "timerange": "[0:0_1:0)x"}
    assert not checked.fast.is_valid(refused) and not checked.reference.is_valid(refused)


@pytest.mark.parametrize("pattern", SPEC_PATTERNS)
def test_fast_and_reference_agree_on_every_differing_character_at_every_place(pattern: str) -> None:
    # Exhaustive where the random tests sample: each sample with each character the engines read
    # differently put in, and put instead, at every position (e.g. CR for "." in an MXF package UID).
    checked = CheckedValidator({"type": "string", "pattern": pattern})
    for sample in SAMPLES:
        for position in range(len(sample) + 1):
            for char in DIFFERING:
                for text in (
                    sample[:position] + char + sample[position:],
                    sample[:position] + char + sample[position + 1 :],
                ):
                    assert checked.fast.is_valid(text) is checked.reference.is_valid(text), (pattern, text)


def test_an_mxf_package_uid_with_a_line_terminator_for_a_dot_is_refused() -> None:
    uid = {"type": "string", "pattern": next(p for p in SPEC_PATTERNS if p.startswith("^urn:smpte:umid:"))}
    checked = CheckedValidator(uid)
    good = "urn:smpte:umid:060a2b34.01010105.01010d20.13000000.00000000.00000000.00000000.00000000"
    checked.validate(good)
    for terminator in "\r\u2028\u2029\n":
        with pytest.raises(ValidationError):
            checked.validate(good.replace(".", terminator, 1))


def test_a_string_the_fast_engine_cannot_hold_is_judged_by_the_reference() -> None:
    checked = CheckedValidator({"type": "string", "pattern": "^a"})
    with pytest.raises(ValidationError):
        checked.validate("\ud800")  # a lone surrogate: jsonschema_rs raises rather than answer
    checked.validate("a\ud800")
