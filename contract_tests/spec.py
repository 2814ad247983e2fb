"""The oracle spec: which operations exist, and whether a response conforms (openapi-core).

The spec file is the official ``TimeAddressableMediaStore.yaml`` when one is given (``--tams-spec``),
else the copy shipped with tams-server (``spec.SPEC_PATH``). Relative-file ``$ref``s are inlined
once at load (openapi-core would otherwise resolve them on every validation, ~10x slower).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from jsonschema.exceptions import best_match
from jsonschema_path import SchemaPath
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.response.validators import V31ResponseHeadersValidator, V31ResponseValidator

from tams_server import ecma_regex  # JSON Schema's pattern semantics (no server code)

HTTP_METHODS = ("get", "head", "put", "post", "delete")
# openapi-core matches request URLs against the spec's servers; the first one is used for all targets.
_VALIDATION_HOST = "http://localhost:4010"
_LITERAL_KEYS = frozenset({"example", "examples", "default", "const", "enum"})
_ANNOTATIONS = frozenset({"description", "summary", "title", "default", "examples", "$comment", "readOnly"})
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def shipped_versions() -> list[str]:
    """The TAMS versions whose specs ship with tams-server (oldest first)."""
    import spec  # the data package of tams-server, no server code

    return spec.versions()


def shipped_spec(version: str) -> Path:
    """Our spec file of ``version``."""
    import spec

    return spec.spec_path(version)


def default_spec_path() -> Path:
    """The newest TAMS spec shipped with tams-server."""
    return shipped_spec(shipped_versions()[-1])


def same_major(a: str, b: str) -> bool:
    return str(a).split(".")[0] == str(b).split(".")[0]


@dataclass(frozen=True)
class Operation:
    method: str  # upper case
    template: str
    operation_id: str
    statuses: frozenset[str]

    @property
    def label(self) -> str:
        return f"{self.method} {self.template}"


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_LOADER)


def _inline_file_refs(node: Any, base: Path, cache: dict[Path, Any], depth: int = 0) -> Any:
    if depth > 50:
        raise ValueError("reference cycle in the spec")
    if isinstance(node, list):
        return [_inline_file_refs(item, base, cache, depth) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        file_part, _, pointer = ref.partition("#")
        path = (base.parent / file_part).resolve()
        if path not in cache:
            cache[path] = _load(path)
        target = cache[path]
        for part in [p for p in pointer.split("/") if p]:
            target = target[part.replace("~1", "/").replace("~0", "~")]
        target = _inline_file_refs(target, path, cache, depth + 1)
        siblings = {k: _inline_file_refs(v, base, cache, depth) for k, v in node.items() if k != "$ref"}
        if not siblings:
            return target
        if set(siblings) <= _ANNOTATIONS:
            return {**target, **siblings}
        return {"allOf": [target], **siblings}
    return {k: v if k in _LITERAL_KEYS else _inline_file_refs(v, base, cache, depth) for k, v in node.items()}


def _inline_local_refs(node: Any, root: Any, depth: int = 0) -> Any:
    if depth > 50:
        raise ValueError("reference cycle in the spec")
    if isinstance(node, list):
        return [_inline_local_refs(item, root, depth) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        target = _inline_local_refs(target, root, depth + 1)
        siblings = {k: _inline_local_refs(v, root, depth) for k, v in node.items() if k != "$ref"}
        return {**target, **siblings} if set(siblings) <= _ANNOTATIONS else {"allOf": [target], **siblings}
    return {k: v if k in _LITERAL_KEYS else _inline_local_refs(v, root, depth) for k, v in node.items()}


def self_contained(document: Any, path: Path) -> Any:
    """``document`` (loaded from ``path``) with every ``$ref``, file or local, replaced by its target.

    openapi-core resolves file refs lazily on every validation (~10 ms per flow body); on a
    self-contained document it takes ~1 ms.
    """
    bundled = _inline_file_refs(document, path, {})
    return _inline_local_refs(bundled, bundled)


class Spec:
    """One spec file: its operations, path matching, and response validation."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()
        self.document = _load(self.path)
        self.version = str(self.document.get("info", {}).get("version", "?"))
        self.operations = self._operations()
        self._patterns = self._template_patterns()

    def _operations(self) -> tuple[Operation, ...]:
        found = []
        for template, item in self.document["paths"].items():
            for method in HTTP_METHODS:
                if method in item:
                    statuses = frozenset(str(s) for s in item[method].get("responses", {}))
                    found.append(Operation(method.upper(), template, item[method].get("operationId", ""), statuses))
        return tuple(found)

    def _template_patterns(self) -> list[tuple[re.Pattern[str], str]]:
        table = []
        for template in dict.fromkeys(op.template for op in self.operations):
            regex = ""
            for part in re.split(r"(\{[^}]+\})", template):
                if part == "{objectId}":
                    regex += ".+"  # object ids may contain "/"
                elif part.startswith("{"):
                    regex += "[^/]+"
                else:
                    regex += re.escape(part)
            table.append((re.compile(f"^{regex}$"), template))
        # Literal paths before templated ones of the same shape, and longer templates first: the
        # greedy ``{objectId}`` would otherwise take ``/objects/{objectId}/instances`` as an object id.
        table.sort(key=lambda entry: (entry[1].count("{"), -len(entry[1])))
        return table

    def match(self, raw_path: str) -> str | None:
        """The path template a (percent-encoded, base-path-relative) request path belongs to."""
        for pattern, template in self._patterns:
            if pattern.match(raw_path):
                return template
        return None

    def operation(self, method: str, template: str) -> Operation | None:
        for op in self.operations:
            if op.method == method.upper() and op.template == template:
                return op
        return None

    @functools.cached_property
    def _validators(self) -> tuple[V31ResponseValidator, V31ResponseHeadersValidator]:
        # Patterns as JSON Schema means them (ECMA-262), not as openapi-core's ``re`` would read them.
        document = ecma_regex.python_patterns(self_contained(self.document, self.path))
        # A SchemaPath skips openapi-core's validation of the spec document itself (slow).
        schema = SchemaPath.from_dict(document, base_uri=self.path.as_uri())
        return V31ResponseValidator(schema), V31ResponseHeadersValidator(schema)

    def problems(self, method: str, template: str, response: httpx.Response) -> list[str]:
        """Why ``response`` does not conform to the spec (status, headers and, except for HEAD, body)."""
        full, headers_only = self._validators
        request = MockRequest(_VALIDATION_HOST, method.lower(), template, path_pattern=template)
        mock = MockResponse(
            response.content,
            status_code=response.status_code,
            headers=dict(response.headers),
            content_type=response.headers.get("content-type", "application/json"),
        )
        # Every TAMS HEAD response declares a JSON body that HEAD cannot have: check status and headers.
        validator = headers_only if method.upper() == "HEAD" else full
        return [_describe(error) for error in validator.iter_errors(request, mock)]


def _describe(error: Exception) -> str:
    """One line per problem: where in the response it is (``body[3].timerange``) and what is wrong,
    never the whole body (a listing can be megabytes)."""
    cause = error.__cause__
    schema_errors = list(getattr(cause, "schema_errors", None) or getattr(error, "schema_errors", None) or [])
    if not schema_errors:
        text = f"{type(error).__name__}: {cause or error}"
        return text if len(text) <= 300 else text[:300] + "..."
    shown = [_schema_error(e) for e in schema_errors[:3]]
    more = f" (and {len(schema_errors) - 3} more)" if len(schema_errors) > 3 else ""
    return f"{type(error).__name__}: " + "; ".join(shown) + more


def _schema_error(error: Any) -> str:
    """``error`` (a jsonschema ValidationError) as ``at body[0].format: 'x' is not one of [...]``,
    descending into oneOf/anyOf to the branch that came closest."""
    context = getattr(error, "context", None)
    if context:
        error = best_match(context)
    where = "body" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    message = str(error.message)
    if len(message) > 200:
        message = message[:200] + "..."
    return f"at {where}: {message}"


@functools.cache
def load(path: str | None) -> Spec:
    return Spec(Path(path) if path else default_spec_path())
