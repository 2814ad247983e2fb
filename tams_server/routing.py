"""Connexion's routing, without trying every route of the spec on every request.

Connexion routes with a Starlette ``Router`` per API: a list of ~50 routes tried in order, so a
request for a route late in the spec costs ~40 regular-expression matches. Every TAMS path starts
with a literal segment (``/flows``, ``/sources``, ``/service``...), and a route whose first segment
is a literal can only match requests with that first segment. So each API's router dispatches on
the request's first segment to a router holding only the routes that could match it, in their
original order (plus any route whose first segment is not a literal): the same routes are tried in
the same order, minus those that cannot match.
"""

from __future__ import annotations

from typing import Any

from connexion.middleware.routing import RoutingMiddleware
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Mount, Router
from starlette.types import Receive, Scope, Send

_INDEXED = "_tams_indexed"


def _first_segment(path: str) -> str:
    return path.lstrip("/").split("/", 1)[0]


class _FirstSegmentIndex:
    """``router.middleware_stack``: the routes that could match the request's first segment."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.literal: dict[str, list[BaseRoute]] = {}
        self.anywhere: list[BaseRoute] = []  # routes whose first segment holds a parameter
        for route in router.routes:
            first = _first_segment(getattr(route, "path", "{"))
            if "{" in first:
                self.anywhere.append(route)
            else:
                self.literal.setdefault(first, [])
        for segment, routes in self.literal.items():
            routes += [r for r in router.routes if r in self.anywhere or _first_segment(r.path) == segment]  # type: ignore[attr-defined]
        self.routers: dict[str, Router] = {segment: self._router(routes) for segment, routes in self.literal.items()}
        self.other = self._router(self.anywhere)

    def _router(self, routes: list[BaseRoute]) -> Router:
        return Router(routes=routes, redirect_slashes=self.router.redirect_slashes, default=self.router.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.router.app(scope, receive, send)
            return
        if "router" not in scope:
            scope["router"] = self.router
        chosen = self.routers.get(_first_segment(get_route_path(scope)), self.other)
        # The candidate router's default is the original's, read now: Connexion may chain a later
        # API with the same base path as the default after this index was built.
        chosen.default = self.router.default
        await chosen.app(scope, receive, send)


def index(router: Router) -> None:
    if not getattr(router, _INDEXED, False):
        router.middleware_stack = _FirstSegmentIndex(router)
        setattr(router, _INDEXED, True)


class IndexedRoutingMiddleware(RoutingMiddleware):
    """Connexion's routing middleware whose per-API routers dispatch on the first path segment."""

    def add_api(self, *args: Any, **kwargs: Any) -> None:
        super().add_api(*args, **kwargs)
        for route in self.router.routes:
            if isinstance(route, Mount) and isinstance(route.app, Router):
                index(route.app)
