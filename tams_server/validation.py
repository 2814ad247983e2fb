"""Request validation with JSON Schema 2020-12, plugged into Connexion's validator map.

Connexion validates with Draft 4, which silently ignores numeric ``exclusiveMinimum``,
``unevaluatedProperties`` and ``if/then``. These validators use the original 2020-12 schema that
``specload.for_connexion`` keeps beside each downgraded one, with format checking on.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem, ProblemException
from connexion.validators import (
    VALIDATOR_MAP,
    JSONRequestBodyValidator,
    ParameterValidator,
)
from jsonschema import Draft202012Validator, ValidationError, validators
from starlette.types import Scope

from tams_server import ecma_regex
from tams_server.bodies import PARSED_BODY
from tams_server.specload import ORIGINAL_SCHEMA

# Query parameters whose empty value means something the schema pattern cannot say:
# an empty accept_get_urls asks for no URLs; an empty accept_storage_ids asks for no filtering.
EMPTY_ALLOWED = frozenset({"accept_get_urls", "accept_storage_ids"})

log = logging.getLogger("tams_server")


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    """``pattern`` as JSON Schema means it: ECMA-262, not Python's ``re`` (see ``tams_server.ecma_regex``)."""
    if not validator.is_type(instance, "string"):
        return
    try:
        matched = ecma_regex.search(pattern, instance)
    except ecma_regex.EcmaPatternError as exc:  # not in our specs (a test checks): Python's reading, logged once
        _warn_once(str(exc))
        matched = re.search(pattern, instance) is not None
    if not matched:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def _warn_once(problem: str) -> None:
    log.warning("schema pattern read with Python's rules, not ECMA-262's: %s", problem)


# The 2020-12 validator with ECMA-262 patterns: what every schema of the API is checked with.
TamsValidator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})

_cache: dict[int, tuple[Any, Any]] = {}


def validator_for(schema: dict[str, Any]) -> Any:
    """A cached 2020-12 validator (``TamsValidator``) for a (downgraded) schema, using its original if kept."""
    entry = _cache.get(id(schema))
    if entry is None or entry[0] is not schema:
        original = schema.get(ORIGINAL_SCHEMA, schema)
        entry = (schema, TamsValidator(original, format_checker=Draft202012Validator.FORMAT_CHECKER))
        _cache[id(schema)] = entry
    return entry[1]


def describe(error: ValidationError) -> str:
    """A short message naming where in the document the error is."""
    best = max(error.context or [error], key=lambda e: len(e.absolute_path))
    where = "/".join(str(p) for p in best.absolute_path)
    return f"{best.message} (at {where})" if where else best.message


class TamsParameterValidator(ParameterValidator):
    @staticmethod
    def validate_parameter(parameter_type: str, value: Any, param: dict, param_name: str | None = None) -> str | None:
        if value is None:
            if param.get("required"):
                return f"missing {parameter_type} parameter {param['name']!r}"
            return None
        if value == "" and param["name"] in EMPTY_ALLOWED:
            return None
        try:
            validator_for(param.get("schema", {})).validate(value)
        except ValidationError as error:
            return f"{parameter_type} parameter {param['name']!r}: {error.message}"
        return None

    def validate_path_parameter(self, param: dict, request: Any) -> str | None:
        # A path that does not fit its pattern names no resource: 404, as TAMS lists for bad ids.
        error = super().validate_path_parameter(param, request)
        if error:
            raise ProblemException(status=404, title="Not Found", detail=error)
        return None


class TamsBodyValidator(JSONRequestBodyValidator):
    @property
    def _validator(self) -> Any:
        return validator_for(self._schema)

    async def _parse(self, stream: AsyncIterator[bytes], scope: Scope) -> Any:
        if PARSED_BODY not in scope:  # not through bodies.guard: parse it here
            return await super()._parse(stream, scope)
        async for _ in stream:  # the messages must still pass, to be replayed to the handler
            pass
        return scope[PARSED_BODY]

    def _validate(self, body: Any) -> dict | None:
        if body is None:
            if self._required:
                raise BadRequestProblem(detail="the request body must not be empty")
            return None  # an optional body may be left out (POST /flows/{id}/storage)
        try:
            self._validator.validate(body)
        except ValidationError as error:
            raise BadRequestProblem(detail=f"invalid request body: {describe(error)}") from None
        return None


VALIDATORS = {
    **VALIDATOR_MAP,
    "parameter": TamsParameterValidator,
    "body": MediaTypeDict({"*/*json": TamsBodyValidator}),
}
