"""What happens to a request after Connexion has routed it, prepared once per operation.

Connexion (3.x) runs, after routing, a validation middleware, a context middleware and a
decorator chain around the handler, and rebuilds most of their pieces on every request: the URI
parser, the parameter validator, the decorator chain (with an ``inspect.signature`` of the
handler), the Python name of every parameter (``flowId`` -> ``flow_id`` through regular
expressions), the operation's path-parameter table. None of that depends on the request.
:class:`PreparedOperation` folds those layers into one ASGI callable per operation whose pieces are
made once — the same Connexion parts (URI parser, coercion, defaults, the validators of
``tams_server.validation``), so the answers are the same, only cheaper.

Handlers are plain functions. Where the backend may wait (``Backend.may_block``: its writes, or
every call of a remote database) they are called in a worker thread; where it only computes or
reads from memory (the in-memory reference; SQLite's reads) on the event loop, which saves a
thread hop that costs more than the handler and, under load, the wait for the GIL behind other
worker threads.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections.abc import Callable
from typing import Any

from connexion.apps.asynchronous import AsyncApi
from connexion.context import _context, _operation, _receive, _scope
from connexion.datastructures import MediaTypeDict
from connexion.decorators.parameter import (
    CONTEXT_NAME,
    _get_body_argument,
    _get_query_defaults,
    _get_val_from_param,
    _query_args_helper,
    pythonic,
    unwrap_decorators,
)
from connexion.decorators.response import AsyncResponseDecorator
from connexion.exceptions import UnsupportedMediaTypeProblem
from connexion.frameworks.starlette import Starlette as StarletteFramework
from connexion.jsonifier import Jsonifier
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.operations import AbstractOperation
from connexion.utils import (
    deep_merge,
    inspect_function_arguments,
    is_json_mimetype,
    is_nullable,
    split_content_type,
)
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response as StarletteResponse
from starlette.types import Receive, Scope, Send

from tams_server.bodies import PARSED_BODY
from tams_server.observe import SCOPE_KEY as OBSERVATION

python_name = functools.lru_cache(maxsize=4096)(pythonic)


def _request_content_type(scope: Scope) -> str | None:
    # connexion.utils.extract_content_type, without its per-call typing constructs (~10 µs a request)
    for key, value in scope["headers"]:
        if key.lower() == b"content-type":
            return value.decode("latin-1")
    return None


def _names_content_type(headers: dict[str, str]) -> bool:
    return any(key.lower() == "content-type" for key in headers)


class _Responses(AsyncResponseDecorator):
    """Connexion's rules turning what a handler returns into a response."""

    def __init__(self, produces: list[str], jsonifier: Jsonifier) -> None:
        super().__init__(framework=StarletteFramework, jsonifier=jsonifier)
        # The one JSON type the operation answers with, when it has exactly one (all TAMS operations).
        self.json_type = produces[0] if len(produces) == 1 and is_json_mimetype(produces[0]) else None

    def response(self, result: Any) -> Any:
        if self.json_type is not None and type(result) is tuple and len(result) in (2, 3):
            data, status = result[0], result[1]
            headers = result[2] if len(result) == 3 else {}
            if isinstance(data, (dict, list)) and isinstance(status, int) and not _names_content_type(headers):
                # What build_framework_response makes of it, without looking the operation up again.
                body = self.jsonifier.dumps(data)
                return StarletteResponse(body, status_code=status, media_type=self.json_type, headers=headers)
        if StarletteFramework.is_framework_response(result):
            return result
        if isinstance(result, ConnexionResponse):
            return StarletteFramework.connexion_to_framework_response(result)
        return self.build_framework_response(result)


class PreparedOperation:
    """One operation after routing: validation, Connexion's request context, the handler, the response."""

    def __init__(
        self,
        operation: AbstractOperation,
        *,
        jsonifier: Jsonifier,
        validator_map: dict[str, Any],
        may_block: Callable[[str], bool],
    ) -> None:
        self.operation = operation
        self.operation_id = operation.operation_id
        self.function = operation.function
        self.on_loop = not may_block(operation.method.upper()) or asyncio.iscoroutinefunction(self.function)
        self.uri_parser = operation.uri_parser_class(operation.parameters, operation.body_definition())
        self.parameter_validator = validator_map["parameter"](
            operation.parameters, uri_parser=self.uri_parser, strict_validation=False
        )
        self.body_validators = validator_map["body"]
        self.consumes = MediaTypeDict([(c.lower(), None) for c in operation.consumes])
        self.arguments, self.has_kwargs = inspect_function_arguments(unwrap_decorators(self.function))
        self.path_definitions = {p["name"]: p for p in operation.parameters if p["in"] == "path"}
        self.query_definitions = {p["name"]: p for p in operation.parameters if p["in"] == "query"}
        self.query_defaults = _get_query_defaults(self.query_definitions)
        self.mutable_defaults = any(isinstance(v, (dict, list)) for v in self.query_defaults.values())
        self.responses = _Responses(sorted(set(operation.produces)), jsonifier)
        functools.update_wrapper(self, self.function)  # type: ignore[arg-type]

    # --- validation (what Connexion's RequestValidationOperation does, with validators made once) ---
    async def _validated(self, scope: Scope, receive: Receive) -> tuple[Scope, Receive, str, Any]:
        """(scope, receive, media type, the request's parsed parameters) once the request is valid."""
        parameters = self.parameter_validator.checked_request(scope)  # TamsParameterValidator
        mime_type, encoding = split_content_type(_request_content_type(scope))
        if mime_type is None:
            mime_type = self.operation.consumes[0] if self.operation.consumes else "application/octet-stream"
        if self.operation.consumes and mime_type.lower() not in self.consumes:
            raise UnsupportedMediaTypeProblem(
                detail=f"Invalid Content-type ({mime_type}), expected {self.operation.consumes}"
            )
        schema = self.operation.body_schema(mime_type)
        if schema:
            try:
                body_validator = self.body_validators[mime_type]
            except KeyError:
                return scope, receive, mime_type, parameters
            validator = body_validator(
                schema=schema,
                required=self.operation.request_body.get("required", False),
                nullable=is_nullable(self.operation.body_definition(mime_type)),
                encoding=encoding or "utf-8",
                strict_validation=False,
                uri_parser=self.uri_parser,
            )
            receive, scope = await validator.wrap_receive(receive, scope=scope)
        return scope, receive, mime_type, parameters

    # --- arguments (what Connexion's parameter decorator derives, with the tables made once) ------
    async def _arguments(self, scope: Scope, receive: Receive, parameters: Any, mime_type: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for name, value in parameters.path_params.items():
            definition = self.path_definitions.get(name)
            kwargs[python_name(name)] = value if definition is None else _get_val_from_param(value, definition)
        # Connexion's merge; a fresh copy of the defaults only when one could be changed by a handler.
        defaults = copy.deepcopy(self.query_defaults) if self.mutable_defaults else dict(self.query_defaults)
        query = deep_merge(defaults, dict(parameters.query_params))
        kwargs.update(_query_args_helper(self.query_definitions, query, self.arguments, self.has_kwargs, python_name))
        if self.operation.is_request_body_defined and (
            python_name(self.operation.body_name(mime_type)) in self.arguments or self.has_kwargs
        ):
            # The JSON that tams_server.bodies parsed (and the validator checked), else Connexion's reading.
            if PARSED_BODY in scope:
                body = scope[PARSED_BODY]
            else:
                body = await ConnexionRequest(scope, receive, uri_parser=self.uri_parser).get_body()
            kwargs.update(
                _get_body_argument(
                    body,
                    operation=self.operation,
                    arguments=self.arguments,
                    has_kwargs=self.has_kwargs,
                    sanitize=python_name,
                    content_type=mime_type,
                )
            )
        if CONTEXT_NAME in self.arguments:
            kwargs[CONTEXT_NAME] = _context.get()
        return kwargs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        observation = scope.get(OBSERVATION)
        if observation is not None:
            observation.operation = self.operation_id
        scope, receive, mime_type, parameters = await self._validated(scope, receive)
        # Connexion's request context (``connexion.request``), as its ContextMiddleware sets it.
        _context.set(scope.get("extensions", {}).get("connexion_context", {}))
        _operation.set(self.operation)
        _receive.set(receive)
        _scope.set(scope)
        kwargs = await self._arguments(scope, receive, parameters, mime_type)
        if asyncio.iscoroutinefunction(self.function):
            result = await self.function(**kwargs)
        elif self.on_loop:
            result = self.function(**kwargs)
        else:
            result = await run_in_threadpool(self.function, **kwargs)
        response = self.responses.response(result)
        await response(scope, receive, send)


def prepared_api(may_block: Callable[[str], bool], validator_map: dict[str, Any]) -> type[AsyncApi]:
    """Connexion's API class, making a :class:`PreparedOperation` of each operation; ``may_block``
    tells by HTTP method whether its handler is called in a worker thread."""

    class PreparedApi(AsyncApi):
        def make_operation(self, operation: AbstractOperation) -> Any:
            return PreparedOperation(
                operation, jsonifier=self.jsonifier, validator_map=validator_map, may_block=may_block
            )

    return PreparedApi
