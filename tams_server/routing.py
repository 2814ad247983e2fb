"""Connexion's routing, without trying every route of the spec on every request.

Connexion routes with a Starlette ``Router`` per API: a list of ~130 routes (one per path and
method) tried in order, so a request for a route late in the spec costs ~40 regular-expression
matches. Every TAMS path starts with a literal segment (``/flows``, ``/sources``, ``/service``...),
and a route whose first segment is a literal can only match requests with that first segment; a
route that does not accept the request's method can only match partially. So each API's router
first tries, in their original order, the routes that could match the request's first segment and
accept its method; the first full match among them is the one Starlette would have found. Without
one, Starlette's own search runs over the routes of that first segment (partial matches give 405,
then redirects and the default, as before).
"""

from __future__ import annotations

from typing import Any

from connexion.middleware.routing import RoutingMiddleware
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Mount, Router
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
        self.by_method: dict[tuple[str, str], list[BaseRoute]] = {}

    def _router(self, routes: list[BaseRoute]) -> Router:
        return Router(routes=routes, redirect_slashes=self.router.redirect_slashes, default=self.router.default)

    def full_match(self, scope: Scope, segment: str) -> tuple[BaseRoute, Scope] | None:
        """The first route that fully matches, among those accepting the method: the one Starlette
        finds first in the whole list (a route refusing the method never fully matches)."""
        for route in self._accepting(segment, scope["method"]):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                return route, child_scope
        return None

    def _accepting(self, segment: str, method: str) -> list[BaseRoute]:
        """The candidates for ``segment`` that accept ``method`` (Connexion makes a route per method)."""
        key = (segment, method)
        if key not in self.by_method:
            candidates = self.routers[segment].routes if segment in self.routers else self.other.routes
            self.by_method[key] = [r for r in candidates if getattr(r, "methods", None) is None or method in r.methods]  # type: ignore[attr-defined]
        return self.by_method[key]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.router.app(scope, receive, send)
            return
        if "router" not in scope:
            scope["router"] = self.router
        segment = _first_segment(get_route_path(scope))
        found = self.full_match(scope, segment)
        if found is not None:
            route, child_scope = found
            scope["route"] = route
            scope.update(child_scope)
            await route.handle(scope, receive, send)
            return
        # None: Starlette's own search of the candidates (405 for a known path, redirects, default).
        chosen = self.routers.get(segment, self.other)
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
