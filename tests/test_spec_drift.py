"""spec/<version>/ must match the official TAMS interface of that version in structure, in our own words."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from spec import SPEC_DIR, SPEC_PATH, spec_path, versions
from tools.spec_drift import main

SHARED = Path(__file__).resolve().parents[2] / "shared"
SPEC_NAME = SPEC_PATH.name
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
PROSE_KEYS = {"description", "summary"}
MIN_SENTENCE = 60


class Pair(NamedTuple):
    """Our spec of one version and the official file it must match."""

    version: str
    official: Path
    paths: int
    operations: int
    schema_files: int

    @property
    def ours(self) -> Path:
        return spec_path(self.version)


PAIRS = [
    Pair("7.0", SHARED / "tams-spec/api" / SPEC_NAME, 25, 74, 31),
    Pair("8.2", SHARED / "tams-spec-8.2/api" / SPEC_NAME, 29, 85, 47),
]
# The drift-detection tests below mutate a copy of our 7.0 spec and compare it with the official 7.0 file.
OFFICIAL = PAIRS[0].official

needs_official = pytest.mark.skipif(not OFFICIAL.is_file(), reason=f"official spec not found at {OFFICIAL}")


def with_official(pair: Pair) -> Any:
    """``pair`` as a test parameter, skipped when its official file is absent."""
    missing = not pair.official.is_file()
    return pytest.param(
        pair, id=pair.version, marks=pytest.mark.skipif(missing, reason=f"official spec not found at {pair.official}")
    )


OFFICIAL_PAIRS = [with_official(pair) for pair in PAIRS]
ALL_PAIRS = [pytest.param(pair, id=pair.version) for pair in PAIRS]


def run_drift(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().out


def spec_files(yaml_path: Path) -> list[Path]:
    return [yaml_path, *sorted((yaml_path.parent / "schemas").glob("*.json"))]


def load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def operation_ids(document: dict[str, Any]) -> list[str]:
    return [
        operation["operationId"]
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def prose(node: Any, parent: str | None = None) -> Iterator[str]:
    """Every description/summary string (not properties named ``description``)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in PROSE_KEYS and isinstance(value, str) and parent != "properties":
                yield value
            else:
                yield from prose(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from prose(item, parent)


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def long_sentences(text: str) -> set[str]:
    parts = re.split(r"(?<=[.!?])\s+|\n", text)
    return {normalise(part) for part in parts if len(normalise(part)) >= MIN_SENTENCE}


def all_prose(yaml_path: Path) -> str:
    return "\n".join(text for path in spec_files(yaml_path) for text in prose(load(path)))


# ---------------------------------------------------- our specs against the official ones


def test_every_version_has_a_pair() -> None:
    assert versions() == [pair.version for pair in PAIRS]


@pytest.mark.parametrize("pair", ALL_PAIRS)
def test_info_version_matches_folder(pair: Pair) -> None:
    assert str(load(pair.ours)["info"]["version"]) == pair.version


@pytest.mark.parametrize("pair", OFFICIAL_PAIRS)
def test_no_drift_from_official(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_drift([str(pair.ours), str(pair.official)], capsys)
    assert code == 0, out
    assert f"no drift: {pair.paths} paths, {pair.operations} operations compared" in out


@pytest.mark.parametrize("pair", OFFICIAL_PAIRS)
def test_ours_defaults_to_our_spec_of_the_same_version(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_drift([str(pair.official)], capsys)
    assert code == 0, out
    assert f"no drift: {pair.paths} paths, {pair.operations} operations compared" in out


def test_version_without_a_spec_of_ours_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    theirs = tmp_path / SPEC_NAME
    theirs.write_text("openapi: 3.1.0\ninfo: {title: T, version: '99.0'}\npaths: {}\n", encoding="utf-8")
    assert main([str(theirs)]) == 2
    assert "no spec of version 99.0" in capsys.readouterr().err


@pytest.mark.parametrize("pair", OFFICIAL_PAIRS)
def test_same_paths_and_operation_ids(pair: Pair) -> None:
    ours, theirs = load(pair.ours), load(pair.official)
    assert len(ours["paths"]) == pair.paths
    assert len(operation_ids(ours)) == pair.operations
    assert sorted(operation_ids(ours)) == sorted(operation_ids(theirs))
    assert len(set(operation_ids(ours))) == pair.operations


@pytest.mark.parametrize("pair", ALL_PAIRS)
def test_same_schema_files(pair: Pair) -> None:
    names = {path.name for path in (pair.ours.parent / "schemas").glob("*.json")}
    assert len(names) == pair.schema_files
    if pair.official.is_file():
        assert names == {path.name for path in (pair.official.parent / "schemas").glob("*.json")}


@pytest.mark.parametrize("pair", ALL_PAIRS)
def test_no_examples_in_our_spec(pair: Pair) -> None:
    for path in spec_files(pair.ours):
        assert not re.search(r"^\s*\"?examples?\"?:", path.read_text(encoding="utf-8"), re.MULTILINE), path


@pytest.mark.parametrize("pair", OFFICIAL_PAIRS)
def test_descriptions_are_our_own_words(pair: Pair) -> None:
    theirs_text = normalise("\n".join(path.read_text(encoding="utf-8") for path in spec_files(pair.official)))
    ours_text = normalise(all_prose(pair.ours))
    copied = {s for s in long_sentences(all_prose(pair.ours)) if s in theirs_text}
    copied |= {s for s in long_sentences(all_prose(pair.official)) if s in ours_text}
    assert not copied


# ------------------------------------------------------- the check really detects drift


@pytest.fixture
def spec_copy(tmp_path: Path) -> Path:
    """A writable copy of our spec; returns the path of its YAML file."""
    target = tmp_path / "spec"
    shutil.copytree(SPEC_DIR, target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return target / SPEC_NAME


def edit_yaml(yaml_path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    change(document)
    yaml_path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def edit_schema(yaml_path: Path, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = yaml_path.parent / "schemas" / name
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")


def remove_status_code(spec: Path) -> None:
    edit_yaml(spec, lambda d: d["paths"]["/flows/{flowId}"]["put"]["responses"].pop("403"))


def change_pattern(spec: Path) -> None:
    edit_yaml(
        spec,
        lambda d: d["components"]["schemas"]["uuid"].update(pattern="^[0-9a-f-]{36}$"),
    )


def rename_operation_id(spec: Path) -> None:
    edit_yaml(spec, lambda d: d["paths"]["/flows"]["get"].update(operationId="GET_all_flows"))


def change_property_type(spec: Path) -> None:
    edit_schema(
        spec,
        "flow-core.json",
        lambda d: d["properties"]["generation"].update(type="number"),
    )


def remove_parameter(spec: Path) -> None:
    def change(document: dict[str, Any]) -> None:
        operation = document["paths"]["/flows"]["get"]
        operation["parameters"] = [p for p in operation["parameters"] if p.get("name") != "frame_width"]

    edit_yaml(spec, change)


def add_required_field(spec: Path) -> None:
    edit_schema(spec, "webhook-post.json", lambda d: d["required"].append("api_key_name"))


def change_exclusive_minimum(spec: Path) -> None:
    def change(document: dict[str, Any]) -> None:
        essence = document["allOf"][1]["properties"]["essence_parameters"]
        essence["properties"]["frame_width"]["exclusiveMinimum"] = 1

    edit_schema(spec, "flow-video.json", change)


def change_webhook_event(spec: Path) -> None:
    def change(document: dict[str, Any]) -> None:
        body = document["webhooks"]["flows/deleted"]["post"]["requestBody"]["content"]["application/json"]
        body["schema"]["properties"]["event_type"]["const"] = "flows/removed"

    edit_yaml(spec, change)


DRIFTS = [
    (remove_status_code, "paths./flows/{flowId}.put.responses.403: missing in ours"),
    (change_pattern, "components.schemas.uuid.pattern: ours"),
    (rename_operation_id, "operationId GET_flows: only in theirs"),
    (
        change_property_type,
        'properties.generation.type: ours "number", theirs "integer"',
    ),
    (
        remove_parameter,
        "paths./flows.get.parameters[frame_width in query]: missing in ours",
    ),
    (add_required_field, 'schema.required: "api_key_name" missing in theirs'),
    (
        change_exclusive_minimum,
        "properties.frame_width.exclusiveMinimum: ours 1, theirs 0",
    ),
    (
        change_webhook_event,
        "webhooks.flows/deleted.post.requestBody.content.application/json.schema.properties.event_type.const: "
        'ours "flows/removed"',
    ),
]


@needs_official
@pytest.mark.parametrize(("mutate", "expected"), DRIFTS, ids=[mutate.__name__ for mutate, _ in DRIFTS])
def test_structural_change_is_reported(
    spec_copy: Path,
    mutate: Callable[[Path], None],
    expected: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mutate(spec_copy)
    code, out = run_drift([str(spec_copy), str(OFFICIAL)], capsys)
    assert code == 1, out
    assert expected in out


@needs_official
def test_description_change_is_not_drift(spec_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def change(document: dict[str, Any]) -> None:
        document["paths"]["/flows"]["get"]["description"] = "Something else entirely."
        document["info"]["description"] = "Changed."
        document["tags"][0]["description"] = "Changed too."

    edit_yaml(spec_copy, change)
    edit_schema(
        spec_copy,
        "flow-core.json",
        lambda d: d["properties"]["label"].update(description="Other."),
    )
    code, out = run_drift([str(spec_copy), str(OFFICIAL)], capsys)
    assert code == 0, out


@pytest.mark.parametrize("pair", ALL_PAIRS)
def test_identical_files_have_no_drift(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_drift([str(pair.ours), str(pair.ours)], capsys)
    assert code == 0
    assert out.startswith(f"no drift: {pair.paths} paths, {pair.operations} operations compared")


def test_unreadable_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("paths: [unclosed\n", encoding="utf-8")
    assert main([str(SPEC_PATH), str(tmp_path / "missing.yaml")]) == 2
    assert main([str(broken), str(SPEC_PATH)]) == 2
    assert "cannot read spec" in capsys.readouterr().err
