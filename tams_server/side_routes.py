"""Routes beside the TAMS API, at the root whatever versions are served: health, metrics, the
store report. They are not in the spec (no client of the API needs them) and not versioned.

Health probes need no credentials and answer for any Host (orchestrators address pods by IP);
``/metrics`` needs the ``metrics`` scope (or ``admin``), ``/admin/report`` the ``admin`` scope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from backends.base import Backend
from tams_server import health, metrics
from tams_server.config import Settings


@dataclass(frozen=True)
class SideRoute:
    name: str  # its label in metrics and logs, as an operationId is for the API
    scopes: frozenset[str]  # any one of them admits a caller; empty: no credentials needed
    answer: Callable[[], Awaitable[Response]]


class SideRoutes:
    def __init__(self, backend: Backend, settings: Settings) -> None:
        self.backend = backend
        readiness = health.Readiness(backend)
        self.routes: dict[str, SideRoute] = {
            "/healthz": SideRoute("healthz", frozenset(), self._alive),
            "/readyz": SideRoute("readyz", frozenset(), readiness.response),
            "/admin/report": SideRoute("report", frozenset({"admin"}), self._report),
        }
        if settings.metrics:
            self.routes["/metrics"] = SideRoute("metrics", frozenset({"metrics", "admin"}), self._metrics)

    def get(self, path: str) -> SideRoute | None:
        return self.routes.get(path)

    @staticmethod
    async def _alive() -> Response:
        return health.alive()

    @staticmethod
    async def _metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type, headers=health.HEADERS)

    async def _report(self) -> Response:
        from backends import report  # DuckDB is imported only when a report is asked for

        found = await run_in_threadpool(report.build, self.backend)
        return JSONResponse(found, headers=health.HEADERS)
