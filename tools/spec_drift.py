"""Report structural drift between our TAMS spec and an official one.

Usage: ``python -m tools.spec_drift [OURS] THEIRS`` (OURS defaults to our spec of the
same ``info.version`` as THEIRS, ``spec.spec_path(version)``).

Both files are bundled and fully resolved with ``tams_server.specload``, stripped
of prose (descriptions, summaries, examples, ...) and compared key by key.
Exit status: 0 no drift, 1 drift found (one line per difference), 2 a file could
not be read (or, with THEIRS alone, we have no spec of its version).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

import spec
from tams_server.specload import SpecError, bundle, resolve_internal

# Keys that only annotate; they never change what the interface accepts or returns.
ANNOTATIONS = frozenset({"description", "summary", "example", "examples", "externalDocs", "$comment"})
# Maps whose keys are author-chosen names (a property may be called "description").
NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
# Keys whose values are literal data, compared as they are.
LITERALS = frozenset({"default", "const", "enum", "example", "examples"})
# Lists whose order carries no meaning.
SET_LISTS = frozenset({"required", "enum"})
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def load(path: Path) -> dict[str, Any]:
    """Bundle and resolve a spec file into one plain dict."""
    document = resolve_internal(bundle(path))
    if not isinstance(document, dict):
        raise SpecError(f"{path}: not an OpenAPI document")
    return document


def our_spec_for(theirs: dict[str, Any]) -> Path:
    """Our spec file of the same ``info.version`` as ``theirs``."""
    info = theirs.get("info")
    version = info.get("version") if isinstance(info, dict) else None
    if version is None:
        raise SpecError("the official file has no info.version; name our spec explicitly")
    if str(version) not in spec.versions():
        have = ", ".join(spec.versions()) or "none"
        raise SpecError(f"we have no spec of version {version} (ours: {have})")
    return spec.spec_path(str(version))


def strip_annotations(node: Any, parent_key: str | None = None) -> Any:
    """Copy ``node`` without annotations; names in NAME_MAPS and literals are kept."""
    if isinstance(node, list):
        return [strip_annotations(item) for item in node]
    if not isinstance(node, dict):
        return node
    if parent_key in NAME_MAPS:
        return {name: strip_annotations(value) for name, value in node.items()}
    return {
        key: value if key in LITERALS else strip_annotations(value, key)
        for key, value in node.items()
        if key not in ANNOTATIONS
    }


def structure(document: dict[str, Any]) -> dict[str, Any]:
    """The comparable part of a spec: no prose, contact details or tag texts."""
    doc = strip_annotations(document)
    doc["info"] = {"version": document.get("info", {}).get("version")}
    doc["tags"] = [{"name": tag.get("name")} for tag in doc.get("tags", [])]
    return doc


def operations(document: dict[str, Any]) -> dict[str, str]:
    """Map each operationId to its ``METHOD path``."""
    found: dict[str, str] = {}
    for route, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method in HTTP_METHODS and isinstance(operation, dict):
                found[operation.get("operationId", f"<none {method} {route}>")] = f"{method.upper()} {route}"
    return found


def show(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def join(location: str, key: str) -> str:
    return f"{location}.{key}" if location else key


def parameter_key(parameter: Any) -> str:
    if isinstance(parameter, dict) and "name" in parameter:
        return f"{parameter['name']} in {parameter.get('in')}"
    return show(parameter)


def diff_parameters(ours: list[Any], theirs: list[Any], location: str) -> Iterator[str]:
    """Match parameters by (name, in), not by position."""
    ours_by_key = {parameter_key(p): p for p in ours}
    theirs_by_key = {parameter_key(p): p for p in theirs}
    for key, theirs_param in theirs_by_key.items():
        where = f"{location}[{key}]"
        if key not in ours_by_key:
            yield f"{where}: missing in ours"
        else:
            yield from diff(ours_by_key[key], theirs_param, where)
    for key in ours_by_key:
        if key not in theirs_by_key:
            yield f"{location}[{key}]: missing in theirs"


def diff_sets(ours: list[Any], theirs: list[Any], location: str) -> Iterator[str]:
    """Compare lists whose order does not matter (``required``, ``enum``)."""
    ours_set = {show(item) for item in ours}
    theirs_set = {show(item) for item in theirs}
    for item in sorted(theirs_set - ours_set):
        yield f"{location}: {item} missing in ours"
    for item in sorted(ours_set - theirs_set):
        yield f"{location}: {item} missing in theirs"


def diff_lists(ours: list[Any], theirs: list[Any], location: str) -> Iterator[str]:
    """Compare ordered lists item by item."""
    if len(ours) != len(theirs):
        if any(isinstance(item, (dict, list)) for item in [*ours, *theirs]):
            yield f"{location}: ours has {len(ours)} items, theirs {len(theirs)}"
        else:
            yield f"{location}: ours {show(ours)}, theirs {show(theirs)}"
        return
    for index, (mine, other) in enumerate(zip(ours, theirs, strict=True)):
        yield from diff(mine, other, f"{location}[{index}]")


def diff_dicts(ours: dict[str, Any], theirs: dict[str, Any], location: str) -> Iterator[str]:
    for key, other in theirs.items():
        if key not in ours:
            yield f"{join(location, key)}: missing in ours"
        else:
            yield from diff(ours[key], other, join(location, key), key)
    for key in ours:
        if key not in theirs:
            yield f"{join(location, key)}: missing in theirs"


def diff(ours: Any, theirs: Any, location: str = "", key: str | None = None) -> Iterator[str]:
    """Yield one line per structural difference; ``key`` is the node's name."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        yield from diff_dicts(ours, theirs, location)
    elif isinstance(ours, list) and isinstance(theirs, list):
        if key == "parameters":
            yield from diff_parameters(ours, theirs, location)
        elif key in SET_LISTS:
            yield from diff_sets(ours, theirs, location)
        else:
            yield from diff_lists(ours, theirs, location)
    elif type(ours) is not type(theirs) or ours != theirs:
        yield f"{location}: ours {show(ours)}, theirs {show(theirs)}"


def diff_operation_ids(ours: dict[str, Any], theirs: dict[str, Any]) -> Iterator[str]:
    ours_ops, theirs_ops = operations(ours), operations(theirs)
    for op_id in sorted(theirs_ops.keys() - ours_ops.keys()):
        yield f"operationId {op_id}: only in theirs ({theirs_ops[op_id]})"
    for op_id in sorted(ours_ops.keys() - theirs_ops.keys()):
        yield f"operationId {op_id}: only in ours ({ours_ops[op_id]})"


def drift(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """All differences between two resolved specs, operationId changes first."""
    return [
        *diff_operation_ids(ours, theirs),
        *diff(structure(ours), structure(theirs)),
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tams-spec-drift",
        description="Compare the structure of our TAMS spec with an official one.",
    )
    parser.add_argument(
        "ours", nargs="?", type=Path, help="our spec (default: ours of the same info.version as THEIRS)"
    )
    parser.add_argument("theirs", type=Path, help="the official TimeAddressableMediaStore.yaml")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        theirs = load(args.theirs)
        ours_path: Path = args.ours or our_spec_for(theirs)
        ours = load(ours_path)
    except (OSError, SpecError, yaml.YAMLError, ValueError) as exc:
        print(f"spec_drift: cannot read spec: {exc}", file=sys.stderr)
        return 2
    differences = drift(ours, theirs)
    if differences:
        print("\n".join(differences))
        print(f"{len(differences)} difference(s) between {ours_path} and {args.theirs}")
        return 1
    paths, ops = len(ours.get("paths", {})), len(operations(ours))
    print(f"no drift: {paths} paths, {ops} operations compared")
    return 0


if __name__ == "__main__":
    sys.exit(main())
