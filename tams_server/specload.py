"""Turn a TAMS spec file (OpenAPI 3.1, split over relative files) into documents tools can use.

``bundle`` inlines every relative-file ``$ref`` so the result is one self-contained dict in
OpenAPI 3.1 / JSON Schema 2020-12 form. ``for_connexion`` adapts a bundled document to the
OpenAPI 3.0 form that Connexion 3.3 accepts, keeping each original 2020-12 schema beside its
downgraded copy under ``ORIGINAL_SCHEMA`` so validation keeps full 2020-12 semantics.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

ORIGINAL_SCHEMA = "x-jsonschema-2020-12"

# Keys whose values are literal data in OpenAPI 3.1; a "$ref" inside them is not a reference.
_LITERAL_KEYS = frozenset({"example", "examples", "default", "const", "enum"})


_NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})


def _is_literal(key: str, parent_key: str | None) -> bool:
    """True when ``key`` holds literal data, not schema; names in a ``properties`` map never do."""
    return key in _LITERAL_KEYS and parent_key not in _NAME_MAPS


_ANNOTATIONS = frozenset(
    {"description", "summary", "title", "default", "example", "examples", "$comment", "deprecated", "readOnly"}
)


def _merge_siblings(target: Any, siblings: dict[str, Any], schema: bool = True) -> Any:
    """Apply the keys written beside a ``$ref``: for a schema as 2020-12 does (together with the
    target); for any other object (a Response beside which 8.x adds ``headers``) merged into it."""
    if not siblings or not isinstance(target, dict):
        return target
    if not schema:
        return _deep_merge(target, siblings)
    if set(siblings) <= _ANNOTATIONS:
        return {**target, **siblings}
    return {"allOf": [target], **siblings}


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _is_schema_pointer(pointer: str) -> bool:
    """Whether an internal ref names a schema (rather than a response, parameter, ...)."""
    return not pointer.startswith("/components/") or pointer.startswith("/components/schemas")


class SpecError(Exception):
    """The spec file cannot be loaded (missing file, bad reference, reference cycle)."""


def load_document(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return yaml.safe_load(text)


def _resolve_pointer(doc: Any, pointer: str, where: str) -> Any:
    node = doc
    for raw in pointer.lstrip("/").split("/") if pointer.strip("/") else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError) as exc:
            raise SpecError(f"{where}: JSON pointer {pointer!r} does not resolve") from exc
    return node


class _Bundler:
    def __init__(self) -> None:
        self._documents: dict[Path, Any] = {}

    def document(self, path: Path) -> Any:
        path = path.resolve()
        if path not in self._documents:
            if not path.is_file():
                raise SpecError(f"referenced file not found: {path}")
            self._documents[path] = load_document(path)
        return self._documents[path]

    def inline(
        self,
        node: Any,
        base: Path,
        stack: tuple[str, ...],
        root: bool,
        parent_key: str | None = None,
    ) -> Any:
        """Copy ``node`` with external refs inlined; ``base`` is the file that contains it.

        Internal refs (``#/...``) in the root document stay as they are: tools resolve them.
        Internal refs inside an external file are inlined, since they would not resolve later.
        """
        if isinstance(node, list):
            return [self.inline(item, base, stack, root) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if root and isinstance(ref, str) and ref.startswith("#") and len(node) > 1 and not _is_schema_pointer(ref[1:]):
            # A non-schema object cannot carry keys beside "$ref" in OpenAPI 3.0: merge them in here.
            target = self.inline(_resolve_pointer(self.document(base), ref[1:], str(base)), base, stack, root)
            siblings = self.inline({k: v for k, v in node.items() if k != "$ref"}, base, stack, root)
            return _merge_siblings(target, siblings, schema=False)
        if isinstance(ref, str) and not (root and ref.startswith("#")):
            file_part, _, pointer = ref.partition("#")
            target_file = (base.parent / file_part).resolve() if file_part else base.resolve()
            key = f"{target_file}#{pointer}"
            if key in stack:
                raise SpecError(f"reference cycle: {' -> '.join((*stack, key))}")
            target = _resolve_pointer(self.document(target_file), pointer, str(target_file))
            inlined = self.inline(target, target_file, (*stack, key), root=False)
            siblings = self.inline({k: v for k, v in node.items() if k != "$ref"}, base, stack, root)
            return _merge_siblings(inlined, siblings)
        return {
            key: value if _is_literal(key, parent_key) else self.inline(value, base, stack, root, key)
            for key, value in node.items()
        }


def bundle(path: str | Path) -> dict[str, Any]:
    """Load a spec and inline all relative-file references (internal ``#/`` refs are kept)."""
    path = Path(path)
    bundler = _Bundler()
    return bundler.inline(bundler.document(path), path, (), root=True)


def resolve_internal(document: dict[str, Any]) -> dict[str, Any]:
    """Replace the remaining ``#/...`` refs of a bundled document by their targets."""

    def walk(node: Any, stack: tuple[str, ...], parent_key: str | None = None) -> Any:
        if isinstance(node, list):
            return [walk(item, stack) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            if ref in stack:
                raise SpecError(f"reference cycle: {' -> '.join((*stack, ref))}")
            target = walk(_resolve_pointer(document, ref[1:], "spec"), (*stack, ref))
            siblings = walk({k: v for k, v in node.items() if k != "$ref"}, stack)
            return _merge_siblings(target, siblings, schema=_is_schema_pointer(ref[1:]))
        return {k: v if _is_literal(k, parent_key) else walk(v, stack, k) for k, v in node.items()}

    return walk(document, ())


# --- OpenAPI 3.1 -> 3.0 adaptation for Connexion ---------------------------------------------

_DROPPED_IN_30 = (
    "unevaluatedProperties",
    "if",
    "then",
    "else",
    "examples",
    "$schema",
    "$id",
)


def downgrade_schema(schema: Any) -> Any:
    """Return a JSON Schema 2020-12 schema rewritten into the OpenAPI 3.0 schema dialect.

    Only used to satisfy Connexion's spec check; validation uses the original schema.
    """
    if isinstance(schema, list):
        return [downgrade_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED_IN_30 or key.startswith("x-"):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: downgrade_schema(sub) for name, sub in value.items()}
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "const":
            out["enum"] = [value]
        elif key == "required" and value == []:
            continue
        elif key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            out["type"] = kinds[0] if len(kinds) == 1 else value
            if "null" in value:
                out["nullable"] = True
        elif key in _LITERAL_KEYS:
            out[key] = value
        else:
            out[key] = downgrade_schema(value)
    return out


def _with_original(schema: dict[str, Any]) -> dict[str, Any]:
    return {**downgrade_schema(schema), ORIGINAL_SCHEMA: schema}


def for_connexion(bundled: dict[str, Any]) -> dict[str, Any]:
    """Adapt a bundled TAMS spec to what Connexion 3.3 accepts, without losing 2020-12 semantics."""
    doc = resolve_internal(copy.deepcopy(bundled))
    doc["openapi"] = "3.0.3"
    doc.pop("webhooks", None)
    doc.pop("jsonSchemaDialect", None)
    # Info fields that only 3.1 knows.
    doc.get("info", {}).pop("summary", None)
    doc.get("info", {}).get("license", {}).pop("identifier", None)
    # Examples are documentation; in 3.1 they may hold "$ref" look-alikes that 3.0 tools misread.
    for path_item in doc.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or method == "parameters":
                continue
            for parameter in operation.get("parameters", []):
                parameter.pop("example", None)
                parameter.pop("examples", None)
                if "schema" in parameter:
                    parameter["schema"] = _with_original(parameter["schema"])
            body = operation.get("requestBody")
            if body:
                for media in body.get("content", {}).values():
                    media.pop("example", None)
                    media.pop("examples", None)
                    if "schema" in media:
                        media["schema"] = _with_original(media["schema"])
            for response in operation.get("responses", {}).values():
                for header in response.get("headers", {}).values():
                    if "schema" in header:
                        header["schema"] = downgrade_schema(header["schema"])
                for media in response.get("content", {}).values():
                    media.pop("example", None)
                    media.pop("examples", None)
                    if "schema" in media:
                        media["schema"] = _with_original(media["schema"])
    components = doc.get("components", {})
    for name, schema in list(components.get("schemas", {}).items()):
        components["schemas"][name] = downgrade_schema(schema)
    for parameter in components.get("parameters", {}).values():
        if "schema" in parameter:
            parameter["schema"] = _with_original(parameter["schema"])
    return doc
