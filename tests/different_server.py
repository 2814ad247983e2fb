"""A correct but different TAMS server: our app behind an ASGI middleware that makes, wherever the
spec leaves a choice open, another choice than ours.

The conformance suite must pass against it (with at most warnings): a suite that fails it has
mistaken one implementation's choices for the contract. Each choice (``Choices``) is a field that
can be turned off one by one (``DIFFERENT_SERVER_OFF=name,name``), to tell apart the false alarms
each one causes. What the spec (7.0 and 8.2) says that allows each choice:

``paging_headers``
    ``X-Paging-Limit``/``-Count``/``-Reverse-Order``/``-Timerange``/``-NextKey`` are declared on the
    listings but none is ``required``: this server sends none of them, only ``Link`` (which paging
    needs; declared, not required either). ``GET /objects/{objectId}`` keeps its headers: there
    "the paging query parameters and headers are required for the list of Flow references".
``relative_urls``
    ``Location`` (of a 202) and ``Link`` are URI references (RFC 9110 10.2.2, RFC 8288 3.1),
    resolved against the request's URL: this server sends path-absolute ones
    (``/v8.2/flow-delete-requests/...``), as the spec's own example does
    (``/flow-delete-request/{request-id}``).
``async_deletes``
    ``DELETE /flows/{flowId}`` and ``DELETE /flows/{flowId}/segments`` "will return 202 Accepted and
    the ``Location`` header will point to a Flow Delete Request" when the deletion "takes too long":
    this server answers every delete of a writable flow with 202 and a deletion request, which
    reads ``created``, then ``started``, then ``done``. Until then what is being deleted stays
    visible to reads; a write, or a read once the deletion is due (``DELETION_DELAY_S``), runs it
    first. ``/flow-delete-requests`` lists them (sorted as asked, paged by this server).
``page_sizes``
    "Service implementations may specify their own default and maximum for the limit": listings
    default to ``DEFAULT_LIMIT`` items and give at most ``MAX_LIMIT`` (a ``limit`` below 1 gets the
    default). Object flow references (``/objects/{objectId}``) are left alone: "should return a
    complete list of Flow references within reason".
``storage_sizes``
    Storage allocation gives ``DEFAULT_OBJECTS`` objects unless asked and at most ``MAX_OBJECTS``
    (``flow-storage-post.limit``: "Service implementations may specify their own default and
    maximum").
``put_content_type``
    ``put_url.content-type`` is optional (``http-request.json``); 8.2: "Where included in the
    response, ``content-type`` MUST match [...] the request": this server never includes it.
``plain_put_urls``
    8.2 ``flow-storage-post.presigned``: "Services may choose their own default": not presigned
    (same-origin URLs the client sends its credentials to, as 8.2 says it SHOULD).
``error_wording``
    4xx bodies (the spec declares none, ``error.json`` names ``type``, ``summary`` and ``time``) get
    this server's own ``type``, ``summary`` and an RFC 3339 ``time`` with a numeric offset.
``service``
    ``/service``: another ``type`` (it "must start with 'urn:x-tams:service'"), ``name``,
    ``description`` and ``service_version``; 8.2 timeouts as this server's own choice, within the
    spec's bounds (``min_object_timeout`` >= 300:0, ``min_presigned_url_timeout`` >= 30:0 and at
    most ``min_object_timeout``), and honest (lower than what the store really keeps).
``json_charset``
    JSON is sent as ``application/json; charset=utf-8`` (the parameter has no effect on JSON, RFC
    8259 section 11), and a 204 carries no ``Content-Type``.
``media_type``
    Media bytes (get_urls, not TAMS operations) come back as ``application/octet-stream``.
``inclusive_timeranges``
    A Flow's ``timerange`` (what its segments span; the server computes it) is written with
    inclusive bounds: ``[0:0_10:0)`` as ``[0:0_9:999999999]``, the same set of nanosecond
    timestamps (``timestamp.json`` has nanosecond resolution).
``object_ids``
    Object ids are the store's to choose (``object_id``: "The object store identifier"): this
    server's look like S3 keys, ``different/<uuid>`` (8.2: "The Object ID may include special
    characters such as ``/``").
``upload_headers``
    ``put_url.headers``: "Additional headers that should be included": this server names one, and
    refuses (403) an upload without it, as a store whose signature covers a header would.
``get_urls_order``
    A segment's ``get_urls`` is a list in no order the spec gives: this server lists them last
    first.
``timestamps``
    RFC 3339 date-times (``created``, ``updated``, ``metadata_updated``, ``segments_updated``,
    ``expiry``, ``time``) with ``+00:00`` rather than ``Z``.
``webhook_status``
    8.2 webhooks: "``created`` indicates the webhook has been successfully registered but is yet to
    begin sending events or, depending on the service implementation, the worker [...] has yet to
    start": this server's worker starts at once, so it reports ``started`` where ours says
    ``created``.

Run it with ``python tests/different_server.py --port N`` (settings from ``TAMS_*`` variables, as
``tams-server``; ``DIFFERENT_SERVER_OFF=choice,...`` makes those choices as ours does).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the project's packages
    sys.path.insert(0, str(ROOT))

DEFAULT_LIMIT = 2
MAX_LIMIT = 4
DEFAULT_OBJECTS = 3
MAX_OBJECTS = 20
DELETION_DELAY_S = 0.2  # a deletion runs by itself this long after it was asked for
DELETION_TTL_S = 10.0  # a finished deletion request is listed this long (its expiry)
OUR_DEFAULT_OBJECTS = 10  # what the inner app allocates when not asked for a number (rules.DEFAULT_STORAGE_LIMIT)
SERVICE_TYPE = "urn:x-tams:service.different-example"
UPLOAD_HEADER = "X-Different-Upload"
UPLOAD_TOKEN = "different-" + uuid.uuid4().hex
DATE_TIME_FIELDS = frozenset({"created", "updated", "metadata_updated", "segments_updated", "expiry", "time"})
MEDIA_PREFIX = "/_media/"
JSON_TYPE = "application/json; charset=utf-8"

Scope = dict[str, Any]
Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]
Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Choices:
    """Which open choices this server makes differently (all of them by default)."""

    paging_headers: bool = True
    relative_urls: bool = True
    async_deletes: bool = True
    page_sizes: bool = True
    storage_sizes: bool = True
    put_content_type: bool = True
    plain_put_urls: bool = True
    error_wording: bool = True
    service: bool = True
    json_charset: bool = True
    media_type: bool = True
    inclusive_timeranges: bool = True
    object_ids: bool = True
    upload_headers: bool = True
    get_urls_order: bool = True
    timestamps: bool = True
    webhook_status: bool = True

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Choices:
        """All choices, but those named in ``DIFFERENT_SERVER_OFF`` (comma-separated)."""
        off = {n.strip() for n in (environ or os.environ).get("DIFFERENT_SERVER_OFF", "").split(",") if n.strip()}
        unknown = off - set(cls.names())
        if unknown:
            raise ValueError(f"DIFFERENT_SERVER_OFF: unknown choices {sorted(unknown)}; known: {cls.names()}")
        return cls(**{name: False for name in off})


# --------------------------------------------------------------------------- timestamps


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(when: dt.datetime) -> str:
    """RFC 3339 with a numeric offset (ours writes ``Z``)."""
    return when.isoformat(timespec="milliseconds")


_TS = r"-?(?:0|[1-9][0-9]*):(?:0|[1-9][0-9]{0,8})"
_RANGE = re.compile(rf"^([\[(])({_TS})_({_TS})([\])])$")


def _ns(text: str) -> int:
    negative = text.startswith("-")
    seconds, nanos = text.lstrip("-").split(":")
    value = int(seconds) * 1_000_000_000 + int(nanos)
    return -value if negative else value


def _ts(value: int) -> str:
    sign = "-" if value < 0 else ""
    seconds, nanos = divmod(abs(value), 1_000_000_000)
    return f"{sign}{seconds}:{nanos}"


def inclusive(timerange: str) -> str:
    """A bounded timerange with exclusive bounds written with inclusive ones (same timestamps)."""
    match = _RANGE.match(timerange)
    if not match:
        return timerange
    opening, start, end, closing = match.groups()
    first = _ns(start) + (1 if opening == "(" else 0)
    last = _ns(end) - (1 if closing == ")" else 0)
    if first > last:
        return timerange  # empty: leave it as it is
    if first == last:
        return f"[{_ts(first)}]"
    return f"[{_ts(first)}_{_ts(last)}]"


def _offset_stamps(body: Any) -> bool:
    """Write the date-times of ``body`` with ``+00:00`` for ``Z`` (not inside tags); True if any."""
    changed = False
    if isinstance(body, list):
        for item in body:
            changed = _offset_stamps(item) or changed
    elif isinstance(body, dict):
        for key, value in body.items():
            if key in DATE_TIME_FIELDS and isinstance(value, str) and value.endswith("Z") and "T" in value:
                body[key] = value[:-1] + "+00:00"
                changed = True
            elif key != "tags":
                changed = _offset_stamps(value) or changed
    return changed


# --------------------------------------------------------------------------- ASGI plumbing


@dataclass
class Captured:
    """A response of the inner app, held back to be changed."""

    status: int = 500
    headers: Headers = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str, default: str | None = None) -> Any:
        key = name.lower().encode()
        return next((v.decode("latin-1") for k, v in self.headers if k.lower() == key), default)

    def set_header(self, name: str, value: str | None) -> None:
        key = name.lower().encode()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != key]
        if value is not None:
            self.headers.append((key, value.encode("latin-1")))

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def set_json(self, body: Any, content_type: str = "application/json") -> None:
        self.body = json.dumps(body).encode()
        self.set_header("content-type", content_type)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _respond(send: Send, response: Captured, head: bool) -> None:
    response.set_header("content-length", str(len(response.body)) if response.status != 204 else None)
    await send({"type": "http.response.start", "status": response.status, "headers": response.headers})
    await send({"type": "http.response.body", "body": b"" if head or response.status == 204 else response.body})


def _query_items(query: bytes) -> list[tuple[str, str]]:
    return parse_qsl(query.decode("latin-1"), keep_blank_values=True)


def _with_limit(query: bytes, limit: int) -> bytes:
    """``query`` with its ``limit`` replaced by ``limit`` (the other parameters as sent)."""
    parts = [p for p in query.split(b"&") if p and unquote(p.split(b"=", 1)[0].decode("latin-1")) != "limit"]
    return b"&".join([*parts, f"limit={limit}".encode()])


# --------------------------------------------------------------------------- deletion requests


@dataclass
class Deletion:
    """A deletion this server runs after answering 202."""

    id: str
    flow_id: str
    version: str
    path: str  # the DELETE's full path (with the version prefix)
    query: bytes
    headers: Headers  # the DELETE's own (its credentials run it)
    delete_flow: bool
    timerange: str
    created: dt.datetime = field(default_factory=_now)
    updated: dt.datetime = field(default_factory=_now)
    expiry: dt.datetime | None = None
    status: str = "created"
    polls: int = 0
    error: dict[str, Any] | None = None
    created_by: str = "different-server"

    @property
    def due(self) -> bool:
        return (_now() - self.created).total_seconds() >= DELETION_DELAY_S

    @property
    def finished(self) -> bool:
        return self.status in ("done", "error")

    @property
    def expired(self) -> bool:
        return self.expiry is not None and _now() > self.expiry

    def view(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "flow_id": self.flow_id,
            "timerange_to_delete": self.timerange,
            "timerange_remaining": "()" if self.status == "done" else self.timerange,
            "delete_flow": self.delete_flow,
            "status": self.status,
            "created": _stamp(self.created),
            "created_by": self.created_by,
            "updated": _stamp(self.updated),
        }
        if self.expiry is not None:
            body["expiry"] = _stamp(self.expiry)
        if self.error is not None:
            body["error"] = self.error
        return body


# --------------------------------------------------------------------------- the middleware

_VERSION_PREFIX = re.compile(r"^/v(\d+\.\d+)(?=/|$)")
_FLOW = re.compile(r"^/flows/([^/]+)$")
_FLOWS = re.compile(r"^/flows(/[^/]+)?$")
_FLOW_SEGMENTS = re.compile(r"^/flows/([^/]+)/segments$")
_FLOW_STORAGE = re.compile(r"^/flows/([^/]+)/storage$")
_DELETE_REQUEST = re.compile(r"^/flow-delete-requests/([^/]+)$")
_OBJECT = re.compile(r"^/objects/.+")
# Listings whose default and maximum page size this server sets (``/objects/{objectId}`` is not one).
_PAGED = re.compile(r"^/(flows|sources|flows/[^/]+/segments|service/(webhooks|profiles|storage-backends))$")


class DifferentServer:
    """ASGI middleware around a tams-server app (see the module's docstring)."""

    def __init__(self, app: Any, choices: Choices | None = None, default_version: str | None = None) -> None:
        import spec

        self.app = app
        self.choices = choices or Choices()
        self.default_version = default_version or spec.versions()[-1]
        self.deletions: dict[str, Deletion] = {}

    @property
    def backend(self) -> Any:
        return getattr(self.app, "backend", None)

    # ---------------------------------------------------------------- entry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith(MEDIA_PREFIX):
            if scope["method"] == "PUT" and self.choices.upload_headers:
                sent = dict(scope.get("headers") or []).get(UPLOAD_HEADER.lower().encode())
                if sent != UPLOAD_TOKEN.encode():
                    refused = Captured(status=403)
                    refused.set_json(self._error(403, f"uploads need the {UPLOAD_HEADER} header of their put_url"))
                    await _read_body(receive)
                    await _respond(send, refused, False)
                    return
            await self.app(scope, receive, self._media_send(send))
            return
        match = _VERSION_PREFIX.match(path)
        prefix, version = (match.group(0), match.group(1)) if match else ("", self.default_version)
        api_path = path[len(prefix) :] or "/"
        method = scope["method"]
        head = method == "HEAD"
        body = await _read_body(receive)
        await self._run_pending(scope, writes=method not in ("GET", "HEAD"))
        response = await self._route(scope, method, prefix, version, api_path, body)
        self._finish(response, method, prefix, version, api_path)
        await _respond(send, response, head)

    async def _route(
        self, scope: Scope, method: str, prefix: str, version: str, api_path: str, body: bytes
    ) -> Captured:
        reads = method in ("GET", "HEAD")
        query = scope.get("query_string", b"")
        if reads and self.choices.async_deletes:
            found = _DELETE_REQUEST.match(api_path)
            if found and found.group(1) in self.deletions:
                return await self._deletion_request(scope, found.group(1))
            if api_path == "/flow-delete-requests":
                return await self._deletion_requests(scope, prefix, version)
        if method == "DELETE" and self.choices.async_deletes:
            for pattern, delete_flow in ((_FLOW, True), (_FLOW_SEGMENTS, False)):
                found = pattern.match(api_path)
                if found:
                    accepted = await self._accept_deletion(scope, prefix, version, found.group(1), delete_flow)
                    if accepted is not None:
                        return accepted
        if method == "POST" and _FLOW_STORAGE.match(api_path):
            body = self._storage_request(body, version)
        if reads and self.choices.page_sizes and _PAGED.match(api_path):
            query = self._page_size(query)
        # HEAD is answered from the GET, so that its headers (Content-Length) are the GET's.
        return await self._call(scope, "GET" if method == "HEAD" else method, scope["path"], query, body)

    async def _call(
        self,
        scope: Scope,
        method: str,
        path: str,
        query: bytes = b"",
        body: bytes = b"",
        headers: Headers | None = None,
    ) -> Captured:
        """Call the inner app and hold its response back."""
        headers = [(k, v) for k, v in (headers if headers is not None else scope["headers"]) if k != b"content-length"]
        if body:
            headers.append((b"content-length", str(len(body)).encode()))
        # The request's own encoding where the path is the request's (an object id's %2F).
        raw_path = scope.get("raw_path") if path == scope["path"] else None
        inner = {
            **scope,
            "method": method,
            "path": path,
            "raw_path": raw_path or quote(path).encode(),
            "query_string": query,
            "headers": headers,
        }
        captured = Captured()
        chunks: list[bytes] = []

        async def collect(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured.status = message["status"]
                captured.headers = list(message.get("headers") or [])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(inner, _replay(body), collect)
        captured.body = b"".join(chunks)
        return captured

    def _media_send(self, send: Send) -> Send:
        if not self.choices.media_type:
            return send

        async def typed(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                headers = [(k, v) for k, v in message.get("headers") or [] if k.lower() != b"content-type"]
                message = {**message, "headers": [*headers, (b"content-type", b"application/octet-stream")]}
            await send(message)

        return typed

    # ---------------------------------------------------------------- requests changed on the way in

    def _page_size(self, query: bytes) -> bytes:
        asked = [v for k, v in _query_items(query) if k == "limit"]
        if not asked:
            return _with_limit(query, DEFAULT_LIMIT)
        try:
            limit = int(asked[-1])
        except ValueError:
            return query  # the inner app refuses it
        if limit < 1:  # nothing to restrict the response to: the default page
            return _with_limit(query, DEFAULT_LIMIT)
        return _with_limit(query, MAX_LIMIT) if limit > MAX_LIMIT else query

    def _storage_request(self, body: bytes, version: str) -> bytes:
        try:
            request = json.loads(body) if body else {}
        except ValueError:
            return body
        if not isinstance(request, dict):
            return body
        if self.choices.storage_sizes and "object_ids" not in request:
            limit = request.get("limit")
            if limit is None:
                request["limit"] = DEFAULT_OBJECTS
            elif isinstance(limit, int) and not isinstance(limit, bool) and limit > MAX_OBJECTS:
                request["limit"] = MAX_OBJECTS
        if self.choices.plain_put_urls and version != "7.0":
            request.setdefault("presigned", False)
        if self.choices.object_ids and "object_ids" not in request:
            count = request.pop("limit", DEFAULT_OBJECTS if self.choices.storage_sizes else OUR_DEFAULT_OBJECTS)
            if isinstance(count, int) and not isinstance(count, bool) and 0 < count <= 1000:
                request["object_ids"] = [f"different/{uuid.uuid4()}" for _ in range(count)]
            else:
                request["limit"] = count  # the inner app refuses it
        return json.dumps(request).encode()

    # ---------------------------------------------------------------- responses changed on the way out

    def _finish(self, response: Captured, method: str, prefix: str, version: str, api_path: str) -> None:
        choices = self.choices
        body = response.json()
        if choices.paging_headers and not _OBJECT.match(api_path):
            response.headers = [(k, v) for k, v in response.headers if not k.lower().startswith(b"x-paging-")]
        link = response.header("link")
        if link and choices.relative_urls:
            response.set_header("link", re.sub(r"<[a-z]+://[^/>]+", "<", link))
        if 400 <= response.status < 500 and isinstance(body, dict) and "summary" in body and choices.error_wording:
            body = self._error(response.status, str(body.get("summary")))
            response.set_json(body)
        elif response.status == 200 and method in ("GET", "HEAD") and api_path == "/service" and choices.service:
            if isinstance(body, dict):
                response.set_json(self._service(body, version))
        elif response.status == 201 and _FLOW_STORAGE.match(api_path) and isinstance(body, dict):
            for item in body.get("media_objects") or []:
                if isinstance(item, dict) and isinstance(item.get("put_url"), dict):
                    if choices.put_content_type:
                        item["put_url"].pop("content-type", None)
                    if choices.upload_headers:
                        item["put_url"]["headers"] = {**item["put_url"].get("headers", {}), UPLOAD_HEADER: UPLOAD_TOKEN}
            response.set_json(body)
        elif response.status == 200 and _FLOW_SEGMENTS.match(api_path) and choices.get_urls_order:
            if isinstance(body, list):
                for segment in body:
                    if isinstance(segment, dict) and isinstance(segment.get("get_urls"), list):
                        segment["get_urls"].reverse()
                response.set_json(body)
        elif response.status in (200, 201) and api_path.startswith("/service/webhooks") and choices.webhook_status:
            hooks = body if isinstance(body, list) else [body]
            for hook in hooks:
                if isinstance(hook, dict) and hook.get("status") == "created":
                    hook["status"] = "started"
            response.set_json(body)
        elif response.status == 200 and api_path == "/" and choices.service and isinstance(body, list):
            response.set_json(sorted(body))
        elif response.status == 200 and choices.inclusive_timeranges and _FLOWS.match(api_path):
            flows = body if isinstance(body, list) else [body]
            timed = [f for f in flows if isinstance(f, dict) and isinstance(f.get("timerange"), str)]
            for flow in timed:
                flow["timerange"] = inclusive(flow["timerange"])
            if timed:
                response.set_json(body)
        if choices.timestamps and response.header("content-type", "").startswith("application/json"):
            stamped = response.json()
            if _offset_stamps(stamped):
                response.set_json(stamped)
        if choices.json_charset:
            kind = (response.header("content-type") or "").split(";")[0].strip()
            if response.status == 204:
                response.set_header("content-type", None)
            elif kind == "application/json":
                response.set_header("content-type", JSON_TYPE)

    @staticmethod
    def _error(status: int, summary: str) -> dict[str, Any]:
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Client Error"
        return {
            "type": f"urn:x-different:error:{status}",
            "summary": f"Request refused ({status} {phrase}). Reason given: {summary}",
            "time": _stamp(_now()),
        }

    @staticmethod
    def _service(body: dict[str, Any], version: str) -> dict[str, Any]:
        body = {**body, "type": SERVICE_TYPE, "service_version": "different-server 1.0 (wrapping tams-server)"}
        body.setdefault("name", "different")
        body.setdefault("description", "A TAMS store making the choices the spec leaves open differently")
        if version != "7.0":
            body["min_object_timeout"] = "600:0"
            body["min_presigned_url_timeout"] = "300:0"
        return body

    # ---------------------------------------------------------------- asynchronous deletion

    async def _accept_deletion(
        self, scope: Scope, prefix: str, version: str, flow_id: str, delete_flow: bool
    ) -> Captured | None:
        """A 202 and a deletion request for a delete that will succeed, else None (answered at once)."""
        check = await self._call(scope, "GET", f"{prefix}/flows/{flow_id}/read_only")
        if check.status != 200 or check.json() is not False:
            return None  # unknown, locked or not ours to read: the inner app answers (404, 403, 401)
        query = scope.get("query_string", b"")
        timerange = "_"
        if not delete_flow:
            # The filters are checked as the inner app checks a listing's (400 for a bad timerange).
            probe = await self._call(scope, "GET", f"{prefix}/flows/{flow_id}/segments", _with_limit(query, 1))
            if probe.status != 200:
                return None
            timerange = dict(_query_items(query)).get("timerange") or "_"
        deletion = Deletion(
            id=str(uuid.uuid4()),
            flow_id=flow_id,
            version=version,
            path=scope["path"],
            query=query,
            headers=list(scope["headers"]),
            delete_flow=delete_flow,
            timerange=timerange,
        )
        self.deletions[deletion.id] = deletion
        response = Captured(status=202)
        response.set_json(deletion.view())
        location = f"{prefix}/flow-delete-requests/{deletion.id}"
        if not self.choices.relative_urls:
            location = self._origin(scope) + location
        response.set_header("location", location)
        return response

    @staticmethod
    def _origin(scope: Scope) -> str:
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        return f"{scope.get('scheme', 'http')}://{host}"

    async def _run_pending(self, scope: Scope, writes: bool) -> None:
        """Run the deletions that are due (every one before a write)."""
        for deletion in list(self.deletions.values()):
            if deletion.expired:
                del self.deletions[deletion.id]
            elif not deletion.finished and (writes or deletion.due):
                await self._execute(scope, deletion)

    async def _execute(self, scope: Scope, deletion: Deletion) -> None:
        response = await self._call(scope, "DELETE", deletion.path, deletion.query, headers=deletion.headers)
        if response.status == 403:
            # Locked after the deletion was accepted: the accepted deletion still happens.
            flow_path = re.sub(r"/segments$", "", deletion.path)
            await self._call(scope, "PUT", f"{flow_path}/read_only", b"", b"false", headers=deletion.headers)
            response = await self._call(scope, "DELETE", deletion.path, deletion.query, headers=deletion.headers)
        deletion.updated = _now()
        deletion.expiry = deletion.updated + dt.timedelta(seconds=DELETION_TTL_S)
        if response.status in (204, 404):
            deletion.status = "done"
        else:
            deletion.status = "error"
            text = response.body.decode(errors="replace")[:200]
            deletion.error = {"type": "DeletionFailed", "summary": f"{response.status}: {text}", "time": _stamp(_now())}

    async def _deletion_request(self, scope: Scope, request_id: str) -> Captured:
        deletion = self.deletions[request_id]
        deletion.polls += 1
        if not deletion.finished:
            if deletion.polls >= 3 or deletion.due:
                await self._execute(scope, deletion)
            elif deletion.polls == 2:
                deletion.status, deletion.updated = "started", _now()
        response = Captured(status=200)
        response.set_json(deletion.view())
        return response

    async def _deletion_requests(self, scope: Scope, prefix: str, version: str) -> Captured:
        query = scope.get("query_string", b"")
        if version != "7.0":
            query = self._page_size(query)
        # The inner app checks the parameters (400 for a bad limit or sort_by); page keys are ours.
        unpaged = b"&".join(p for p in query.split(b"&") if p and not p.startswith(b"page="))
        check = await self._call(scope, "GET", scope["path"], unpaged)
        if check.status != 200:
            return check
        items = [d for d in self.deletions.values() if not d.expired]
        params = dict(_query_items(query))
        response = Captured(status=200)
        if version == "7.0":  # no paging, no order
            response.set_json([d.view() for d in items])
            return response
        key = (lambda d: d.expiry or d.created) if params.get("sort_by") == "expiry" else (lambda d: d.created)
        reverse = params.get("reverse_order", "false").lower() == "true"
        order = [((key(d).isoformat(), d.id), d) for d in items]
        order.sort(key=lambda pair: pair[0], reverse=not reverse)  # most recent first, unless reversed
        limit = min(int(params.get("limit") or DEFAULT_LIMIT), MAX_LIMIT)
        limit = DEFAULT_LIMIT if limit < 1 else limit
        # Keyset paging (the page key is the last item's sort key): requests that expire between
        # pages shift no other item out of the listing, as offsets would.
        after = tuple(params["page"].split("|", 1)) if "|" in params.get("page", "") else None
        if after is not None:
            order = [pair for pair in order if (pair[0] > after if reverse else pair[0] < after)]
        page = [d for _, d in order[:limit]]
        response.set_json([d.view() for d in page])
        if len(order) > limit:
            last = order[limit - 1][0]
            rest = [(k, v) for k, v in _query_items(query) if k != "page"] + [("page", f"{last[0]}|{last[1]}")]
            url = f"{scope['path']}?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in rest)
            if not self.choices.relative_urls:
                url = self._origin(scope) + url
            response.set_header("link", f'<{url}>; rel="next"')
        return response


# --------------------------------------------------------------------------- building it


def wrap(app: Any, choices: Choices | None = None) -> DifferentServer:
    return DifferentServer(app, choices, getattr(getattr(app, "settings", None), "default_version", None))


def app_factory() -> DifferentServer:
    """For uvicorn (``--factory``): our app from the ``TAMS_*`` settings, wrapped; choices from
    ``DIFFERENT_SERVER_OFF``."""
    from tams_server.app import create_app
    from tams_server.config import load

    settings = load()
    settings.async_delete_threshold = 10**9  # every 202 is this server's own
    return wrap(create_app(settings), Choices.from_env())


def main(argv: Iterable[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4011)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(list(argv) if argv is not None else None)
    started = time.monotonic()
    uvicorn.run(app_factory(), host=args.host, port=args.port, log_level=args.log_level)
    print(f"different server stopped after {time.monotonic() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
