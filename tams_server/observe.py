"""Each request observed once, from arrival to its last byte: its id, what it was, how it ended.

Every response carries ``X-Request-Id``: the client's own id when it sends a usable one (so a
request can be followed through a proxy and the tools that called it), else one made here. When
the response is done, the observation is counted (``tams_server.metrics``) and, with
``log_format = "json"``, written as one JSON log line (``tams_server.access``). Secrets never
reach a line: ``access_token`` and ``signature`` values in the query are replaced.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import secrets
import sys
import threading
import time
from typing import Any, TextIO

from starlette.types import Message, Scope, Send

from tams_server import metrics

ACCESS_LOG = logging.getLogger("tams_server.access")
SCOPE_KEY = "tams.observation"
HEADER = b"x-request-id"
# A client's id is kept when it is short and printable without quoting (log and header safe).
_CLIENT_ID = re.compile(rb"[A-Za-z0-9._:@+=/-]{1,128}")
_SECRET_VALUES = re.compile(rb"(?i)((?:^|&)(?:access_token|signature)=)[^&]*")
# Fixed names (bounded metric labels) for what is not an API operation.
UNMATCHED = "unmatched"


def _request_id(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == HEADER:
            if _CLIENT_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return secrets.token_hex(12)


def redacted_query(query_string: bytes) -> str:
    """The query as it may be logged: secret values replaced."""
    return _SECRET_VALUES.sub(rb"\1REDACTED", query_string).decode("latin-1")


class Observation:
    """What is known of one request; other layers fill in what they learn (version, operation, principal)."""

    __slots__ = ("operation", "principal", "request_id", "scope", "sent", "started", "status", "version")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.request_id = _request_id(scope)
        self.version = ""  # "" outside the versioned API (health, metrics, media, docs)
        self.operation = UNMATCHED
        self.principal: str | None = None
        self.status = 0
        self.sent = 0
        self.started = time.perf_counter()

    def wrap(self, send: Send) -> Send:
        """``send`` that adds the request id to the answer and counts what goes out."""
        header = (HEADER, self.request_id.encode("ascii"))

        async def observed_send(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                self.status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            elif kind == "http.response.body":
                self.sent += len(message.get("body", b""))
            await send(message)

        return observed_send

    def finish(self, count: bool, access_lines: AccessLines | None) -> None:
        """The request is over: count it (for /metrics), and write its JSON line when wanted."""
        seconds = time.perf_counter() - self.started
        status = self.status or 500  # nothing was sent: the server failed before answering
        if count:
            metrics.observe_request(self.version, self.operation, status, seconds, self.sent)
        if access_lines is not None:
            access_lines.add(self, status, seconds)

    def fields(self, status: int, seconds: float) -> dict[str, Any]:
        scope = self.scope
        query = scope.get("query_string", b"")
        client = scope.get("client")
        return {
            "request_id": self.request_id,
            "method": scope["method"],
            "path": scope["path"] + ("?" + redacted_query(query) if query else ""),
            "version": self.version or None,
            "operation": self.operation,
            "status": status,
            "latency_ms": round(seconds * 1000, 3),
            "principal": self.principal,
            "bytes_sent": self.sent,
            "bytes_received": _content_length(scope),
            "client": client[0] if client else None,
        }


class AccessLines:
    """One JSON line per request, as the logger ``tams_server.access`` would write it, made and
    written in batches. Through the logging module a line costs ~15 us of the request and a flush
    of the stream; even made at once it costs ~20 us of a ~80 us request (cold caches between
    requests). So a request only leaves its observation here (~1 us), and a background thread
    makes the lines of a batch together and writes them with one call: every ``flush_s``, at once
    when ``batch_lines`` are waiting, and when the server stops. Lines may thus reach the log up to
    ``flush_s`` after other lines of the same moment; each carries its own time."""

    def __init__(self, stream: TextIO | None = None, flush_s: float = 0.25, batch_lines: int = 2000) -> None:
        self.stream = stream  # None: the process's stderr at the time of writing (where logging goes)
        self.flush_s = flush_s
        self.batch_lines = batch_lines
        self._waiting: list[tuple[Observation, int, float, float]] = []
        self._lock = threading.Lock()  # guards _waiting (held for an append or a swap only)
        self._writing = threading.Lock()  # one batch written at a time, in order
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def add(self, observation: Observation, status: int, seconds: float) -> None:
        with self._lock:
            self._waiting.append((observation, status, seconds, time.time()))
            waiting = len(self._waiting)
        if waiting >= self.batch_lines:
            self.flush()
        elif self._flusher is None:
            self._start_flusher()

    def _start_flusher(self) -> None:
        with self._writing:
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_often, name="tams-access-lines", daemon=True)
                self._flusher.start()

    def flush(self) -> None:
        with self._writing:
            with self._lock:
                waiting, self._waiting = self._waiting, []
            if waiting:
                stream = self.stream or sys.stderr
                stream.write("".join(_line(*entry) for entry in waiting))
                stream.flush()

    def _flush_often(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush()


def _line(observation: Observation, status: int, seconds: float, when: float) -> str:
    stamp = dt.datetime.fromtimestamp(when, dt.UTC).isoformat(timespec="milliseconds")
    head = {"time": stamp, "level": "INFO", "logger": ACCESS_LOG.name, "message": "request"}
    return json.dumps({**head, **observation.fields(status, seconds)}) + "\n"


def access_lines(log_format: str) -> AccessLines | None:
    """The access-line writer a server with this ``log_format`` uses (None: no JSON lines, or
    ``tams_server.access`` is quieter than INFO)."""
    if log_format != "json" or not ACCESS_LOG.isEnabledFor(logging.INFO):
        return None
    return AccessLines()


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def of(scope: Scope) -> Observation | None:
    """The observation of the request ``scope`` belongs to (None for one made outside TamsApp)."""
    return scope.get(SCOPE_KEY)


class JsonLines(logging.Formatter):
    """Every log record as one JSON object: time, level, logger, message, and a request's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request = getattr(record, "request", None)
        if request is not None:
            line.update(request)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


LOG_FORMATS = ("text", "json")


def configure_logging(level: str, log_format: str) -> None:
    """The process's log lines: ``text`` (uvicorn's access lines among them) or ``json``."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # As logging.basicConfig: a process whose logging is configured already (a test runner) keeps it.
    logging.basicConfig(level=level.upper(), handlers=[handler])
