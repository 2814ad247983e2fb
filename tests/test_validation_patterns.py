"""Schema patterns are matched as JSON Schema says, with ECMA-262 semantics (tams_server.ecma_regex),
not with Python's ``re``: checked against ECMA-262's own definitions, against Node.js's RegExp (an
ECMA-262 engine) where it is installed, and through the API."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from conftest import ADMIN_HEADERS, OFFICIAL_SPECS, app_settings, flow_body
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import spec
from tams_server import ecma_regex, specload
from tams_server.app import create_app

# Characters on which ECMA-262 and Python's re disagree (or nearly): the information separators
# Python counts as space, NEL, BOM, Mongolian vowel separator, zero-width space, NBSP, line and
# paragraph separators, CR/LF, non-ASCII digits and letters, and the Kelvin sign.
DIFFERING = "\x1c\x1d\x1e\x1f\x85\ufeff\u180e\u200b\xa0\u2028\u2029\r\n\t\x0b\u3000\u0663\uff10\u00e9\u00df\u212a\u0130"

# ECMA-262 (22.2.2.9, 12.2, 12.3): \s is WhiteSpace or LineTerminator; \d is 0-9; \w is
# [A-Za-z0-9_] (u flag without i); "." is anything but a LineTerminator.
ECMA_LINE_TERMINATORS = set("\n\r\u2028\u2029")
ECMA_SPACE = set("\t\x0b\x0c \xa0\ufeff\u1680\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200B)}
ECMA_SPACE |= ECMA_LINE_TERMINATORS


def spec_files() -> list[Path]:
    files = [spec.spec_path(version) for version in ("7.0", "8.2")]
    return files + [path for path in OFFICIAL_SPECS.values() if path.is_file()]


def patterns_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from patterns_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from patterns_in(item)


SPEC_PATTERNS = sorted(
    {pattern for path in spec_files() for pattern in patterns_in(specload.resolve_internal(specload.bundle(path)))}
)


def test_the_specs_have_patterns_to_check() -> None:
    assert len(SPEC_PATTERNS) >= 8, SPEC_PATTERNS


@pytest.mark.parametrize("pattern", SPEC_PATTERNS)
def test_every_pattern_of_our_and_the_official_specs_translates(pattern: str) -> None:
    ecma_regex.compile_pattern(pattern)


@pytest.mark.parametrize("char", DIFFERING + " a_Z9/-")
def test_class_escapes_mean_what_ecma_262_defines(char: str) -> None:
    space, digit, word = char in ECMA_SPACE, char in "0123456789", char.isascii() and (char.isalnum() or char == "_")
    cases = {
        r"^\s$": space,
        r"^\S$": not space,
        r"^[\s]$": space,
        r"^[^\s]$": not space,
        r"^[^\S]$": space,
        r"^[a\S]$": not space or char == "a",
        r"^\d$": digit,
        r"^\D$": not digit,
        r"^[\d]$": digit,
        r"^\w$": word,
        r"^[^\w]$": not word,
        r"^\W$": not word,
        r"^.$": char not in ECMA_LINE_TERMINATORS,
        r"^x\b": not word,
        r"^x\B": word,
        "^x$": False,  # "x" followed by any character: $ is only the end
    }
    for pattern, expected in cases.items():
        text = char if not pattern.startswith("^x") else "x" + char
        assert ecma_regex.search(pattern, text) is expected, (pattern, char)
        # The same pattern spelled for jsonschema_rs (the server's fast validator) means the same.
        rust = jsonschema_rs.validator_for(
            {"type": "string", "pattern": ecma_regex.translate(pattern, ecma_regex.RUST)}
        )
        assert rust.is_valid(text) is expected, (pattern, char)


def test_dollar_is_the_end_of_the_string_only() -> None:
    uuid_pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
    uuid = "6e2f4a1c-4b7a-4e55-9c1d-3f0e2b9a7d11"
    assert ecma_regex.search(uuid_pattern, uuid)
    assert not ecma_regex.search(uuid_pattern, uuid + "\n")


@pytest.mark.parametrize(
    "pattern",
    [r"\p{L}", r"(?i)a", r"(?P<x>a)", r"\a", r"[a", "\\", r"a(?<=b+)"],
)
def test_what_cannot_be_matched_as_ecma_means_is_refused(pattern: str) -> None:
    with pytest.raises(ecma_regex.EcmaPatternError):
        ecma_regex.compile_pattern(pattern)


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        (r"(?<year>\d{4})-\k<year>", "2024-2024", True),
        (r"^[]$", "", False),
        (r"^[^]$", "\n", True),
        (r"^\u00e9\x41\u{1F600}$", "\u00e9A\U0001f600", True),
        (r"^\cJ$", "\n", True),
        (r"^a{,2}$", "a{,2}", True),
        (r"^[a-c&]+$", "a&c", True),
        (r"^\/$", "/", True),
    ],
)
def test_other_ecma_syntax(pattern: str, text: str, expected: bool) -> None:
    assert ecma_regex.search(pattern, text) is expected


# --------------------------------------------------------------------------- against an ECMA-262 engine

NODE = shutil.which("node")
NODE_ORACLE = r"""
const lines = require("readline").createInterface({input: process.stdin});
lines.on("line", (line) => {
  const [pattern, text] = JSON.parse(line);
  process.stdout.write(JSON.stringify(new RegExp(pattern, "u").test(text)) + "\n");
});
"""

# Strings near what the spec's patterns accept: ids, MIME types, timeranges, timestamps, versions, lists.
SAMPLES = [
    "6e2f4a1c-4b7a-4e55-9c1d-3f0e2b9a7d11",
    "6e2f4a1c-4b7a-4e55-9c1d-3f0e2b9a7d11,0b2f4a1c-4b7a-4e55-9c1d-3f0e2b9a7d12",
    "video/h264",
    "x-abc/def+xml",
    "[0:0_10:500)",
    "(1:0_",
    "_",
    "-5:999999999",
    "100_200",
    "1.20",
    "a,b,c",
    "urn:uuid:6E2F4A1C-4B7A-4E55-9C1D-3F0E2B9A7D11",
    "urn:smpte:umid:060a2b34.01010105.01010d20.13000000.00000000.00000000.00000000.00000000",
]


@pytest.fixture(scope="module")
def ecma_engine() -> Iterator[subprocess.Popen[str]]:
    if NODE is None:
        pytest.skip("node (an ECMA-262 engine, the oracle) is not installed")
    process = subprocess.Popen(
        [NODE, "-e", NODE_ORACLE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8"
    )
    yield process
    process.stdin.close()  # type: ignore[union-attr]
    process.wait(timeout=10)


def ecma_says(engine: subprocess.Popen[str], pattern: str, text: str) -> bool:
    engine.stdin.write(json.dumps([pattern, text]) + "\n")  # type: ignore[union-attr]
    engine.stdin.flush()  # type: ignore[union-attr]
    return json.loads(engine.stdout.readline())  # type: ignore[union-attr]


@st.composite
def near_samples(draw: st.DrawFn) -> str:
    """A sample with a few characters replaced, inserted or appended, mostly ones ECMA and Python disagree on."""
    text = list(draw(st.sampled_from(SAMPLES)))
    characters = st.sampled_from(DIFFERING) | st.characters(codec="utf-8", exclude_categories=("Cs",))
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(text)))
        char = draw(characters)
        if draw(st.booleans()) and position < len(text):
            text[position] = char
        else:
            text.insert(position, char)
    return "".join(text)


@pytest.mark.parametrize("pattern", SPEC_PATTERNS)
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(text=near_samples() | st.sampled_from(SAMPLES) | st.sampled_from(SAMPLES).map(lambda s: s + "\n"))
def test_spec_patterns_match_as_an_ecma_engine_does(
    ecma_engine: subprocess.Popen[str], pattern: str, text: str
) -> None:
    assert ecma_regex.search(pattern, text) is ecma_says(ecma_engine, pattern, text), (pattern, text)


@pytest.mark.parametrize("pattern", [r"^\s$", r"^[^\s/]+$", r"^\d+$", r"^\w+$", r"^.$", r"^a$", r"\bx\B"])
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(st.sampled_from(DIFFERING + "ax/_9 "), max_size=3))
def test_class_escapes_match_as_an_ecma_engine_does(
    ecma_engine: subprocess.Popen[str], pattern: str, text: str
) -> None:
    assert ecma_regex.search(pattern, text) is ecma_says(ecma_engine, pattern, text), (pattern, text)


# --------------------------------------------------------------------------- through the API


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(app_settings()), raise_server_exceptions=False, headers=ADMIN_HEADERS)


@pytest.mark.parametrize("version", ["7.0", "8.2"])
def test_a_codec_is_checked_with_ecma_whitespace(client: TestClient, version: str) -> None:
    # The pair: U+001C is not ECMA whitespace (Python says it is); U+FEFF is (Python says not).
    accepted = flow_body(codec="video/h\u001c264")
    assert client.put(f"/v{version}/flows/{accepted['id']}", json=accepted).status_code == 201
    refused = flow_body(codec="video/h\ufeff264")
    response = client.put(f"/v{version}/flows/{refused['id']}", json=refused)
    assert response.status_code == 400, response.text
    assert "codec" in response.json()["summary"]


@pytest.mark.parametrize("version", ["7.0", "8.2"])
def test_an_id_with_a_final_newline_is_refused(client: TestClient, version: str) -> None:
    flow = flow_body()
    assert client.put(f"/v{version}/flows/{flow['id']}", json=flow).status_code == 201
    response = client.get(f"/v{version}/flows", params={"source_id": flow["source_id"] + "\n"})
    assert response.status_code == 400, response.text
