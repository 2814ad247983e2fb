"""Request validation with JSON Schema 2020-12, plugged into Connexion's validator map.

Connexion validates with Draft 4, which silently ignores numeric ``exclusiveMinimum``,
``unevaluatedProperties`` and ``if/then``. These validators use the original 2020-12 schema that
``specload.for_connexion`` keeps beside each downgraded one, with format checking on, and match
``pattern`` with ECMA-262 semantics as JSON Schema requires (``tams_server.ecma_regex``). A body
already parsed by ``tams_server.bodies`` is not parsed again; ``describe`` tells a client what is
wrong for the kind of thing it sent.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import unquote_plus

import jsonschema_rs
from connexion.datastructures import MediaTypeDict
from connexion.decorators.parameter import pythonic
from connexion.exceptions import BadRequestProblem, ProblemException
from connexion.lifecycle import ConnexionRequest
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
        try:
            matched = re.search(pattern, instance) is not None
        except re.error:
            matched = True  # a pattern no engine here reads cannot refuse anything

    if not matched:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def _warn_once(problem: str) -> None:
    log.warning("schema pattern read with Python's rules, not ECMA-262's: %s", problem)


# The 2020-12 validator with ECMA-262 patterns: what every schema of the API is checked with.
TamsValidator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


class CheckedValidator:
    """``TamsValidator`` for a schema, with jsonschema_rs in front to accept valid instances quickly.

    The reference is ``TamsValidator``: whatever jsonschema_rs refuses is judged again by it, whose
    verdict and message stand. jsonschema_rs only ever saves the work of accepting (a 1,000-segment
    body: 0.5 ms instead of 25 ms); a test checks it never accepts what the reference refuses
    (tests/test_validation_fast.py). A schema it cannot compile is checked by the reference alone.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self.reference = TamsValidator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        try:
            # Its regex engine reads ``.``, ``\\d``, ``\\w``, ``\\s`` otherwise: give it the patterns spelled out.
            fast_schema = ecma_regex.rust_patterns(schema)
            self.fast: Any = jsonschema_rs.validator_for(fast_schema, validate_formats=True)
        except Exception as exc:  # any schema it cannot read (its errors vary by release): the reference alone
            log.debug("jsonschema_rs cannot compile a schema (%s): the reference validator checks it alone", exc)
            self.fast = None

    def validate(self, instance: Any) -> None:
        if self.fast is not None and self._fast_accepts(instance):
            return
        self.reference.validate(instance)

    def _fast_accepts(self, instance: Any) -> bool:
        try:
            return self.fast.is_valid(instance)
        except Exception:  # e.g. a string Rust cannot hold (a lone surrogate): the reference judges it
            return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.reference, name)


_cache: dict[int, tuple[Any, CheckedValidator]] = {}


def validator_for(schema: dict[str, Any]) -> CheckedValidator:
    """A cached 2020-12 validator (``CheckedValidator``) for a (downgraded) schema, using its original if kept."""
    entry = _cache.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = (schema, CheckedValidator(schema.get(ORIGINAL_SCHEMA, schema)))
        _cache[id(schema)] = entry
    return entry[1]


def describe(error: ValidationError) -> str:
    """A short message naming where in the document the error is; for a body that fits none of a
    ``oneOf``/``anyOf``, what is wrong for the branch it was meant for (the one its ``format`` names)."""
    best = _focus(error)
    where = "/".join(str(p) for p in best.absolute_path)
    message = _short(best.message)
    return f"{message} (at {where})" if where else message


def _short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


MAX_MESSAGE = 300  # jsonschema quotes the whole offending value: a long one makes no better summary


def _focus(error: ValidationError) -> ValidationError:
    """The error that says what is wrong, into the ``oneOf``/``anyOf`` branches the instance meant."""
    while error.validator in ("oneOf", "anyOf") and error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        # A branch refusing the value of the instance's discriminator (a property's const/enum, as
        # "format") is of another kind; a branch whose const/enum that value is, is the one meant.
        meant = {
            index: errors
            for index, errors in branches.items()
            if not any(_discriminates(e) or _wrong_type(e) for e in errors)
        }
        claimed = [errors for index, errors in meant.items() if _claims(error.validator_value[index], error.instance)]
        if claimed:
            error = max(min(claimed, key=len), key=_depth)
            continue
        other_kinds = [errors for errors in branches.values() if any(map(_discriminates, errors))]
        unknown_kind = _discriminator_error(other_kinds) if other_kinds else None
        if unknown_kind is not None:  # a kind (format) none of the branches has
            return unknown_kind
        if not meant:
            return max(error.context, key=_depth)
        candidates = [_missing(errors) or max(errors, key=_depth) for errors in meant.values()]
        if len({c.message for c in candidates}) == 1:
            error = candidates[0]
            continue
        return ValidationError(
            ", or ".join(dict.fromkeys(c.message for c in candidates)),
            validator=error.validator,
            instance=error.instance,
            path=error.absolute_path,
        )
    return error


def _missing(errors: list[ValidationError]) -> ValidationError | None:
    """A property missing from the instance itself: what tells the branches apart when no kind is named."""
    return next((e for e in errors if e.validator == "required" and not e.relative_path), None)


def _depth(error: ValidationError) -> int:
    return len(error.absolute_path)


def _discriminates(error: ValidationError) -> bool:
    """A const/enum refusing a property of the instance itself (or the instance): a wrong kind."""
    return error.validator in ("const", "enum") and len(error.relative_path) <= 1


def _wrong_type(error: ValidationError) -> bool:
    """The instance itself is of a type the branch does not take (an object for an array...)."""
    return error.validator == "type" and not error.relative_path


def _claims(schema: Any, instance: Any) -> bool:
    """Whether ``schema`` (through ``allOf``) names the instance's kind: a property's const/enum it has."""
    if not isinstance(schema, dict) or not isinstance(instance, dict):
        return False
    for name, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, dict) or name not in instance:
            continue
        if ("const" in sub and sub["const"] == instance[name]) or instance[name] in sub.get("enum", ()):
            return True
    return any(_claims(part, instance) for part in schema.get("allOf", ()))


def _discriminator_error(branches: list[list[ValidationError]]) -> ValidationError | None:
    """When these branches all refuse the same property's value: one error listing every value allowed."""
    refusals = [next(e for e in errors if _discriminates(e)) for errors in branches]
    if len({tuple(e.relative_path) for e in refusals}) != 1:
        return None
    allowed: list[Any] = []
    for refusal in refusals:
        for value in [refusal.validator_value] if refusal.validator == "const" else refusal.validator_value:
            if value not in allowed:
                allowed.append(value)
    first = refusals[0]
    return ValidationError(
        f"{first.instance!r} is not one of {allowed!r}",
        validator="enum",
        validator_value=allowed,
        instance=first.instance,
        path=first.absolute_path,
    )


class _ParsedOnce:
    """A request whose path and query parameters are parsed once (Connexion's validator reads
    ``query_params`` again for every parameter, and the URI parser parses anew each time)."""

    def __init__(self, request: ConnexionRequest) -> None:
        self._request = request

    @functools.cached_property
    def query_params(self) -> Any:
        return self._request.query_params

    @functools.cached_property
    def path_params(self) -> Any:
        return self._request.path_params

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


class TamsParameterValidator(ParameterValidator):
    def validate(self, scope: Scope) -> None:
        self.checked_request(scope)

    def checked_request(self, scope: Scope) -> Any:
        """The request with its parameters validated and parsed (once: the handler's arguments reuse them)."""
        _drop_shadowing_query(scope, self.parameters)
        request = _ParsedOnce(ConnexionRequest(scope, uri_parser=self.uri_parser))
        self.validate_request(request)
        return request

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
            return f"{parameter_type} parameter {param['name']!r}: {_short(error.message)}"
        return None

    def validate_path_parameter(self, param: dict, request: Any) -> str | None:
        # A path that does not fit its pattern names no resource: 404, as TAMS lists for bad ids.
        error = super().validate_path_parameter(param, request)
        if error:
            raise ProblemException(status=404, title="Not Found", detail=error)
        return None


def _drop_shadowing_query(scope: Scope, parameters: dict[str, list[dict[str, Any]]]) -> None:
    """Drop from the query string the parameters the operation does not have but whose Python name
    is one of its handler's arguments (``?flowId=x`` beside the path's ``{flowId}``, ``?body=``):
    Connexion would log each at ERROR (any client could fill the error log) and use none of them."""
    query = scope.get("query_string", b"")
    if not query:
        return
    known, arguments = _argument_names(
        tuple(p["name"] for p in parameters.get("query", ())),
        tuple(p["name"] for p in parameters.get("path", ())),
    )
    kept = [
        pair
        for pair in query.split(b"&")
        if (key := unquote_plus(pair.partition(b"=")[0].decode("latin-1"))) in known or _pythonic(key) not in arguments
    ]
    if len(kept) != query.count(b"&") + 1:
        scope["query_string"] = b"&".join(kept)


@functools.lru_cache(maxsize=256)
def _argument_names(query: tuple[str, ...], others: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """(the operation's query parameter names, the handler argument names Connexion derives)."""
    return frozenset(query), frozenset(_pythonic(name) for name in (*query, *others)) | {"body"}


@functools.lru_cache(maxsize=1024)
def _pythonic(name: str) -> str:
    return pythonic(name)


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
