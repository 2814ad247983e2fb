"""Run the app under uvicorn with bounds on what a slow or greedy client can hold.

uvicorn closes idle kept-alive connections, but waits for ever for the headers of a request: a
client that opens connections and sends nothing (or a byte now and then) holds them, and with them
file descriptors, until nobody else can connect. Here every request's line and headers must arrive
within ``header_timeout_s`` of its first byte (of the connection, for the first request), and
bytes that are not HTTP get the TAMS error body rather than uvicorn's text; bodies
are bounded where they are read (``tams_server.bodies``, ``tams_server.media``). At most
``max_connections`` requests are served at once (uvicorn answers 503 beyond), and the process may
open enough files for them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from typing import Any

import uvicorn

from tams_server import errors
from tams_server.config import Settings

log = logging.getLogger("tams_server")
SPARE_FILES = 256  # beyond the connections: database, media files, logs


class HeaderDeadline:
    """Mixed into uvicorn's HTTP protocol: a connection whose next request's headers do not arrive
    within ``header_timeout_s`` is closed."""

    header_timeout_s: float = 10.0
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[misc]
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        self._cycle_when_armed = self.cycle
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._deadline_passed)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def data_received(self, data: bytes) -> None:
        between_requests = self.cycle is None or self.cycle.response_complete
        if self._header_deadline is None and between_requests:
            self._arm()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not self._cycle_when_armed:
            self._disarm()  # its headers are complete: the request is being served

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes that are not HTTP, as the TAMS error body (uvicorn's is text)."""
        body = json.dumps(errors.error_body(400, "the request is not valid HTTP/1.1")).encode()
        head = (
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        )
        self.transport.write(head + body)
        self.transport.close()

    def _deadline_passed(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def protocol_class(header_timeout_s: float) -> type:
    """uvicorn's own HTTP protocol (httptools when installed, else h11) with the header deadline."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:  # pragma: no cover - uvicorn without its "standard" extras
        from uvicorn.protocols.http.h11_impl import H11Protocol as base  # type: ignore[assignment]
    return type("TamsHttpProtocol", (HeaderDeadline, base), {"header_timeout_s": header_timeout_s})


def allow_open_files(wanted: int) -> int:
    """Raise the soft limit on open files towards ``wanted`` (never above the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft < wanted:
        log.warning(
            "the process may open %d files, fewer than max_connections + %d = %d: raise its hard limit (ulimit -Hn)",
            soft,
            SPARE_FILES,
            wanted,
        )
    return soft


def run(app: Any, settings: Settings, log_level: str) -> None:
    allow_open_files(settings.max_connections + SPARE_FILES)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        # Access lines are logged at INFO: above that level uvicorn need not build them at all. With
        # JSON lines the server writes its own (tams_server.observe) and uvicorn's loggers keep the
        # process's configuration (log_config None) instead of their own text handlers.
        access_log=settings.log_format == "text" and logging.getLevelName(log_level.upper()) <= logging.INFO,
        **({"log_config": None} if settings.log_format == "json" else {}),
        http=protocol_class(settings.header_timeout_s),
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=5,
    )
