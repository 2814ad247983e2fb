"""The spec loader: reference bundling, 3.1 -> 3.0 adaptation, and 2020-12 validation kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import spec
from tams_server import specload
from tams_server.validation import validator_for


def write(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document) if path.suffix == ".json" else yaml.safe_dump(document))


def test_bundle_inlines_nested_relative_refs_relative_to_the_containing_file(tmp_path: Path) -> None:
    write(tmp_path / "api.yaml", {"openapi": "3.1.0", "x": {"$ref": "schemas/a.json"}, "y": {"$ref": "#/x"}})
    write(tmp_path / "schemas/a.json", {"type": "object", "properties": {"b": {"$ref": "b.json"}}})
    write(tmp_path / "schemas/b.json", {"type": "integer", "exclusiveMinimum": 0})
    bundled = specload.bundle(tmp_path / "api.yaml")
    assert bundled["x"] == {"type": "object", "properties": {"b": {"type": "integer", "exclusiveMinimum": 0}}}
    assert bundled["y"] == {"$ref": "#/x"}  # internal refs of the root document stay
    assert specload.resolve_internal(bundled)["y"] == bundled["x"]


def test_ref_siblings_apply_together_with_the_target(tmp_path: Path) -> None:
    write(
        tmp_path / "api.yaml", {"a": {"$ref": "t.json", "description": "why"}, "b": {"$ref": "t.json", "pattern": "y$"}}
    )
    write(tmp_path / "t.json", {"type": "string", "pattern": "^x"})
    bundled = specload.bundle(tmp_path / "api.yaml")
    assert bundled["a"] == {"type": "string", "pattern": "^x", "description": "why"}
    validator = validator_for(bundled["b"])
    assert validator.is_valid("xy")
    assert not validator.is_valid("ay")  # the target's pattern still applies
    assert not validator.is_valid("xa")  # and so does the sibling's


def test_keys_beside_a_ref_to_a_response_are_merged_into_it(tmp_path: Path) -> None:
    """8.x puts ``headers`` beside a ``$ref`` to a shared Response: the response gains them (an
    ``allOf`` there would not be a Response at all)."""
    response = {"description": "listing", "headers": {"X-Paging-Limit": {"schema": {"type": "integer"}}}}
    extra = {"X-Paging-Count": {"schema": {"type": "integer"}}}
    write(
        tmp_path / "api.yaml",
        {
            "paths": {"/a": {"head": {"responses": {"200": {"$ref": "#/components/responses/r", "headers": extra}}}}},
            "components": {"responses": {"r": response}, "schemas": {"s": {"type": "string"}}},
            "x": {"$ref": "#/components/schemas/s", "pattern": "^a"},
        },
    )
    bundled = specload.bundle(tmp_path / "api.yaml")
    merged = bundled["paths"]["/a"]["head"]["responses"]["200"]
    assert merged == {"description": "listing", "headers": {**response["headers"], **extra}}
    assert bundled["x"] == {"$ref": "#/components/schemas/s", "pattern": "^a"}  # schemas keep 2020-12 siblings
    assert specload.resolve_internal(bundled)["x"] == {"allOf": [{"type": "string"}], "pattern": "^a"}


def test_refs_inside_literal_values_are_left_alone(tmp_path: Path) -> None:
    example = {"$ref": "examples/missing.json"}
    write(
        tmp_path / "api.yaml", {"s": {"type": "object", "example": example, "properties": {"enum": {"type": "string"}}}}
    )
    bundled = specload.bundle(tmp_path / "api.yaml")
    assert bundled["s"]["example"] == example
    assert bundled["s"]["properties"]["enum"] == {"type": "string"}


def test_missing_file_and_cycles_are_reported(tmp_path: Path) -> None:
    write(tmp_path / "api.yaml", {"a": {"$ref": "nope.json"}})
    with pytest.raises(specload.SpecError, match="not found"):
        specload.bundle(tmp_path / "api.yaml")
    write(tmp_path / "api.yaml", {"a": {"$ref": "c1.json"}})
    write(tmp_path / "c1.json", {"items": {"$ref": "c2.json"}})
    write(tmp_path / "c2.json", {"items": {"$ref": "c1.json"}})
    with pytest.raises(specload.SpecError, match="cycle"):
        specload.bundle(tmp_path / "api.yaml")


def test_downgrade_rewrites_2020_12_keywords_into_openapi_3_0_form() -> None:
    schema = {
        "type": "object",
        "required": [],
        "unevaluatedProperties": False,
        "properties": {
            "n": {"type": "integer", "exclusiveMinimum": 0},
            "c": {"const": "fixed"},
            "maybe": {"type": ["string", "null"]},
        },
    }
    assert specload.downgrade_schema(schema) == {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 0, "exclusiveMinimum": True},
            "c": {"enum": ["fixed"]},
            "maybe": {"type": "string", "nullable": True},
        },
    }


@pytest.fixture(scope="module")
def adapted() -> dict:
    return specload.for_connexion(specload.bundle(spec.SPEC_PATH))


def operation(doc: dict, path: str, method: str) -> dict:
    return doc["paths"][path][method]


def body_schema(doc: dict, path: str, method: str) -> dict:
    return operation(doc, path, method)["requestBody"]["content"]["application/json"]["schema"]


def test_adapted_spec_is_openapi_3_0_without_webhooks(adapted: dict) -> None:
    assert adapted["openapi"] == "3.0.3"
    assert "webhooks" not in adapted
    assert "$ref" not in json.dumps({k: v for k, v in adapted.items() if k != "components"})


def test_original_2020_12_schema_rejects_what_draft_4_would_let_through(adapted: dict) -> None:
    validator = validator_for(body_schema(adapted, "/flows/{flowId}", "put"))
    flow = {
        "id": "3b0ab3e1-0e7c-4a5a-9d3c-4c1d2b7c3e11",
        "source_id": "0a1e3c8e-47b5-4c3b-8b66-6d8f5f7a4e52",
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "essence_parameters": {"frame_width": 1920, "frame_height": 1080},
    }
    assert validator.is_valid(flow)
    zero_width = {**flow, "essence_parameters": {"frame_width": 0, "frame_height": 1080}}
    assert not validator.is_valid(zero_width)  # numeric exclusiveMinimum, ignored by Draft 4
    extra = {**flow, "essence_parameters": {**flow["essence_parameters"], "colour": "red"}}
    assert not validator.is_valid(extra)
    assert not validator.is_valid({**flow, "format": "urn:x-nmos:format:smell"})


def test_unevaluated_properties_is_enforced_on_segment_get_urls(adapted: dict) -> None:
    response = operation(adapted, "/flows/{flowId}/segments", "get")["responses"]["200"]
    validator = validator_for(response["content"]["application/json"]["schema"])
    url = {"url": "http://x/y", "label": "a", "store_type": "http_object_store"}
    assert validator.is_valid([{"object_id": "o", "timerange": "[0:0_1:0)", "get_urls": [url]}])
    extra = {**url, "colour": "red"}
    assert not validator.is_valid([{"object_id": "o", "timerange": "[0:0_1:0)", "get_urls": [extra]}])
