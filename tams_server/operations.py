"""How Connexion calls a handler, with its per-request set-up done once per operation.

Connexion (3.x) rebuilds, on every request, the decorator chain around the handler (with an
``inspect.signature`` of it), the operation's URI parser, and the Python name of every parameter
(``flowId`` -> ``flow_id`` through regular expressions). None of that depends on the request: here
it is built on an operation's first request and kept. What runs per request is unchanged —
Connexion's URI parser, type coercion, defaults and its validators (``tams_server.validation``) —
so behaviour is the same, only cheaper.

Handlers are plain functions. Connexion runs them in a worker thread; a backend that never blocks
(``Backend.blocking`` False: the in-memory reference) has them called on the event loop instead,
which saves the thread hop that costs more than its handlers.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from connexion.apps.asynchronous import AsyncApi, AsyncOperation
from connexion.context import receive, scope
from connexion.decorators import StarletteDecorator
from connexion.decorators.parameter import AsyncParameterDecorator, pythonic
from connexion.lifecycle import ConnexionRequest
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

python_name = functools.lru_cache(maxsize=4096)(pythonic)


class _ParameterDecorator(AsyncParameterDecorator):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.sanitize_fn is pythonic:
            self.sanitize_fn = python_name


class PreparedDecorator(StarletteDecorator):
    """Connexion's Starlette decorator, its chain and URI parser built once (at the first request,
    where the operation context they read is set; each operation has its own decorator)."""

    def __init__(self, *, on_loop: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_loop = on_loop

    @property
    def _parameter_decorator_cls(self) -> type[AsyncParameterDecorator]:
        return _ParameterDecorator

    @property
    def _sync_async_decorator(self) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        on_loop = self.on_loop

        def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
            if asyncio.iscoroutinefunction(function):
                return function

            @functools.wraps(function)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                if on_loop:
                    return function(*args, **kwargs)
                return await run_in_threadpool(function, *args, **kwargs)

            return wrapper

        return decorator

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        prepared: list[Any] = []

        async def wrapper() -> Any:
            if not prepared:
                prepared.extend((self.uri_parser, self.decorate(function)))
            uri_parser, decorated = prepared
            return await decorated(ConnexionRequest(scope, receive, uri_parser=uri_parser))

        return wrapper


class PreparedOperation(AsyncOperation):
    def __init__(self, *args: Any, on_loop: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        decorator = PreparedDecorator(on_loop=on_loop, pythonic_params=self.pythonic_params, jsonifier=self.jsonifier)
        self._prepared = decorator(self._fn)

    @property
    def fn(self) -> Callable[..., Any]:
        return self._prepared

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._prepared()
        await response(scope, receive, send)


def prepared_api(on_loop: bool) -> type[AsyncApi]:
    """Connexion's API class making :class:`PreparedOperation` s (handlers on the loop or not)."""

    class PreparedApi(AsyncApi):
        def make_operation(self, operation: Any) -> AsyncOperation:
            return PreparedOperation(
                operation.function,
                jsonifier=self.jsonifier,
                operation_id=operation.operation_id,
                pythonic_params=self.pythonic_params,
                on_loop=on_loop,
            )

    return PreparedApi
