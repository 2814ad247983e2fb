"""Request bodies of the API, checked before Connexion reads them (size, time, JSON sanity).

Every body of a POST, PUT or PATCH is read here first, within ``body_idle_timeout_s`` per chunk and
``body_timeout_s`` in all (else 408), and up to ``max_body_bytes`` (else 413: at once when
Content-Length says so). A JSON body is then parsed once and refused (400) when it could not be
stored or answered faithfully: not UTF-8, not JSON, a number Python will not read (4,300+ digits)
or that is not finite, a lone surrogate in a string or key, nesting deeper than ``MAX_DEPTH``; a
string above ``max_string_bytes`` is 413. What passes is replayed to the inner app byte for byte,
and the parsed value travels in the scope (``PARSED_BODY``) so the body validator does not parse
it again.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tams_server import errors
from tams_server.config import Settings

# Scope key of the parsed JSON body (see tams_server.validation.TamsBodyValidator).
PARSED_BODY = "tams.json_body"
MAX_DEPTH = 64  # no TAMS body nests beyond ~6; 64 leaves room for any client's tags/metadata
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# A lone surrogate can only enter through a \uD800-\uDFFF escape (raw ones are not UTF-8).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class Refused(Exception):
    """A body the server will not take: ``status`` and a summary; ``path`` names where in the body."""

    def __init__(self, status: int, summary: str) -> None:
        super().__init__(summary)
        self.status = status
        self.summary = summary
        self.path: list[str] = []

    def message(self) -> str:
        return f"{self.summary} (at {'/'.join(self.path)})" if self.path else self.summary


def _name(key: object) -> str:
    """A key or index as it can be shown in an error (escaped, and short)."""
    text = str(key).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= 64 else text[:61] + "..."


def _refuse_constant(name: str) -> Any:
    raise Refused(400, f"the request body has a non-finite number ({name}): JSON has none")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise Refused(400, f"the request body has a number too large for a double ({_name(text)})")
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def parse(body: bytes, max_string_bytes: int) -> Any:
    """The JSON value of ``body``, or ``Refused`` saying why the server will not take it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused(400, f"the request body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise Refused(400, f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise Refused(400, f"the request body is nested more than {MAX_DEPTH} deep") from None
    except ValueError:  # the only other ValueError of the decoder: int() refusing 4,300+ digits
        raise Refused(400, "the request body has a number of more than 4300 digits") from None
    # Each check below is needed only when the text makes it possible: most bodies skip them all.
    long_strings = len(body) > max_string_bytes  # a string's UTF-8 is never longer than its JSON
    surrogates = "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None
    deep = text.count("[") + text.count("{") > MAX_DEPTH
    if (long_strings or surrogates or deep) and not _fine(value, max_string_bytes, surrogates):
        _Walk(max_string_bytes, surrogates).value(value, 0)  # finds the culprit and says where
    return value


def _fine(value: Any, max_string_bytes: int, surrogates: bool) -> bool:
    """Whether ``value`` nests at most ``MAX_DEPTH`` deep and has no string too long or (when
    ``surrogates``) with a lone surrogate: one pass, level by level (~10 ms for 10,000 segments)."""
    quarter = max_string_bytes // 4  # a shorter string cannot exceed the limit in UTF-8
    level = [value] if isinstance(value, (dict, list)) else []
    strings = [value] if isinstance(value, str) else []
    for _ in range(MAX_DEPTH + 1):
        if strings:
            if max(map(len, strings)) > quarter and any(
                len(s.encode("utf-8", "surrogatepass")) > max_string_bytes for s in strings if len(s) > quarter
            ):
                return False
            if surrogates and any(_SURROGATE.search(s) for s in strings):
                return False
        if not level:
            return True
        below: list[Any] = []
        strings = []
        for container in level:
            if type(container) is dict:
                strings.extend(container)
                container = container.values()
            for item in container:
                kind = type(item)
                if kind is str:
                    strings.append(item)
                elif kind is dict or kind is list:
                    below.append(item)
        level = below
    return False  # containers below MAX_DEPTH


class _Walk:
    """One pass over a parsed value: depth, and (when asked) string sizes and lone surrogates."""

    def __init__(self, max_string_bytes: int | None, surrogates: bool) -> None:
        self.limit = max_string_bytes
        self.surrogates = surrogates

    def string(self, text: str) -> None:
        limit = self.limit
        if limit is not None and len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit:
            raise Refused(413, f"a string in the request body is longer than {limit} bytes")
        if self.surrogates and _SURROGATE.search(text):
            raise Refused(400, "a string in the request body has a lone UTF-16 surrogate (not Unicode text)")

    def value(self, value: Any, depth: int) -> None:
        if isinstance(value, str):
            self.string(value)
            return
        if isinstance(value, dict):
            items: Any = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            return
        if depth >= MAX_DEPTH:
            raise Refused(400, f"the request body is nested more than {MAX_DEPTH} deep")
        for key, item in items:
            try:
                if isinstance(key, str):
                    self.string(key)
                if isinstance(item, (str, dict, list)):
                    self.value(item, depth + 1)
            except Refused as refused:
                if len(refused.path) < 8:  # enough to find it; deep paths only make noise
                    refused.path.insert(0, _name(key))
                raise


def _is_json(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"content-type":
            mime = value.split(b";", 1)[0].strip().lower()
            return mime.endswith(b"json")
    return False


class BodyGuard:
    """ASGI middleware: reads and checks a request body before ``app`` sees it (see module doc)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.max_string = settings.max_string_bytes
        self.idle_timeout = settings.body_idle_timeout_s
        self.total_timeout = settings.body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        length = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                length = value
                break
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _answer(scope, receive, send, 400, "Content-Length is not a number", close=True)
                return
            if declared == 0:
                await self.app(scope, receive, send)
                return
            if declared > self.max_body:
                await self._too_large(scope, receive, send)
                return
        try:
            body = await self._read(receive)
        except Refused as refused:
            await _answer(scope, receive, send, refused.status, refused.message(), close=True)
            return
        if body is None:
            return  # the client went away: nobody to answer
        if length is None:  # chunked: Connexion looks for a Content-Length to find a body
            headers = [(k, v) for k, v in scope["headers"] if k != b"transfer-encoding"]
            scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        if body and _is_json(scope):
            try:
                parsed = parse(body, self.max_string)
            except Refused as refused:
                await _answer(scope, receive, send, refused.status, refused.message())
                return
            scope = {**scope, PARSED_BODY: parsed}
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body (None when the client disconnects), or ``Refused`` (408, 413)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(None) as timer:
                while True:
                    timer.reschedule(min(loop.time() + self.idle_timeout, deadline))
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body:
                        raise Refused(413, self._too_large_summary())
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            slow = "in time" if loop.time() >= deadline else f"within {self.idle_timeout:g} s of its last part"
            summary = f"the request body did not arrive {slow} (a whole body has {self.total_timeout:g} s)"
            raise Refused(408, summary) from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large_summary(self) -> str:
        return f"the request body is larger than {self.max_body} bytes, this server's limit"

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _answer(scope, receive, send, 413, self._too_large_summary(), close=True)


async def _answer(scope: Scope, receive: Receive, send: Send, status: int, summary: str, close: bool = False) -> None:
    """The TAMS error; ``close`` when the body was not read to its end (the connection cannot be reused)."""
    response = errors.plain_error(status, summary, {"Connection": "close"} if close else None)
    await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive channel that gives ``body`` in one message, then whatever the client sends next."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def guard(app: ASGIApp, settings: Settings) -> ASGIApp:
    """``app`` behind the body checks ``settings`` ask for."""
    return BodyGuard(app, settings)
