"""Health for orchestrators: ``/healthz`` (this process serves) and ``/readyz`` (its store answers).

Readiness asks the backend (``Backend.readiness``: its database, each object store) in a worker
thread. Probes arrive every second from each orchestrator, so one check runs at a time and every
probe arriving meanwhile shares its answer; a check that does not return within ``timeout_s``
makes the answer "not ready" without waiting longer. Bodies name the parts checked and their
state only: the reasons (endpoints, errors) go to the log, once per change.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from backends.base import Backend

log = logging.getLogger("tams_server.health")
HEADERS = {"Cache-Control": "no-store"}


def alive() -> Response:
    return JSONResponse({"status": "ok"}, headers=HEADERS)


class Readiness:
    def __init__(self, backend: Backend, timeout_s: float = 3.0) -> None:
        self.backend = backend
        self.timeout_s = timeout_s
        self._running: asyncio.Future[dict[str, str | None]] | None = None
        self._failing: dict[str, str] = {}

    async def check(self) -> dict[str, str | None]:
        """Each part -> None when it answers, else why not."""
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(run_in_threadpool(self.backend.readiness))
        try:
            found = await asyncio.wait_for(asyncio.shield(self._running), self.timeout_s)
        except TimeoutError:
            found = {"backend": f"no answer within {self.timeout_s:g} s"}
        except Exception as exc:  # a backend's readiness must not raise; if it does, it is not ready
            found = {"backend": f"{type(exc).__name__}: {exc}"}
        self._log_changes(found)
        return found

    def _log_changes(self, found: dict[str, str | None]) -> None:
        failing = {part: why for part, why in found.items() if why is not None}
        for part, why in failing.items():
            if self._failing.get(part) != why:
                log.warning("not ready: %s: %s", part, why)
        for part in self._failing.keys() - failing.keys():
            log.info("ready again: %s answers", part)
        self._failing = failing

    async def response(self) -> Response:
        found = await self.check()
        ready = all(why is None for why in found.values())
        body = {
            "status": "ready" if ready else "unavailable",
            "checks": {part: "ok" if why is None else "unavailable" for part, why in found.items()},
        }
        return JSONResponse(body, status_code=200 if ready else 503, headers=HEADERS)
