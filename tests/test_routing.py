"""The indexed routers (tams_server.routing) choose the route Starlette's linear search chooses."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from conftest import app_settings
from starlette.routing import Match, Mount, Router

from tams_server.app import create_app
from tams_server.routing import IndexedRoutingMiddleware, _first_segment, _FirstSegmentIndex

METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS")


def _routers() -> list[Router]:
    app = create_app(app_settings(backend="memory"))
    _, apps = app.api.middleware._build_middleware_stack()  # type: ignore[attr-defined]
    routing = next(m for m in apps if isinstance(m, IndexedRoutingMiddleware))
    return [r.app for r in routing.router.routes if isinstance(r, Mount)]


def _paths(router: Router) -> list[str]:
    """Each template filled in, plus near misses: trailing slash, extra segment, unknown first segment."""
    filled = {
        r.path.replace("{objectId:path}", "a/b").replace("{name:path}", "t%2Fu")  # type: ignore[attr-defined]
        for r in router.routes
    }
    filled = {p.replace("{", "").replace("}", "") for p in filled}
    near = {p + "/" for p in filled} | {p + "/extra" for p in filled} | {"/", "/nothing", "//flows", "/flows/"}
    return sorted(filled | near)


def _linear(router: Router, scope: dict[str, Any]) -> Any:
    for route in router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


@pytest.mark.parametrize("index", range(3))
def test_the_index_finds_the_route_the_linear_search_finds(index: int) -> None:
    routers = _routers()
    if index >= len(routers):
        pytest.skip("fewer mounts")
    router = routers[index]
    indexed = router.middleware_stack
    assert isinstance(indexed, _FirstSegmentIndex)
    checked = 0
    for path, method in itertools.product(_paths(router), METHODS):
        scope = {"type": "http", "path": path, "root_path": "", "method": method}
        found = indexed.full_match(dict(scope), _first_segment(path))
        assert (found[0] if found else None) is _linear(router, dict(scope)), (method, path)
        checked += 1
    assert checked > 500
