"""Signed, expiring URLs at which the server moves media bytes of its self-served stores.

Uploads are ``PUT`` and downloads ``GET``/``HEAD`` (with HTTP Range) on
``/_media/{storage_id}/{object_id}?expires=...&signature=...``. The signature is an HMAC over the
method, store, object and expiry (and, for a PUT, the content type the URL was made for, which
the URL also carries as ``content_type``), so the URLs work without API credentials, as presigned
URLs do, and stop working once expired or altered.

Uploads stream to the store as they arrive (never whole in memory), at most
``settings.max_media_bytes``, each piece within ``settings.body_idle_timeout_s``; an object is
written once. Downloads stream only what is asked for. Every response is served so that no
browser runs it as a page of the API's origin (``nosniff``, a sandboxing CSP, and active content
types as attachments).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from urllib.parse import parse_qs, quote, urlsplit

import anyio
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from backends.errors import AlreadyExists, StorageFull
from backends.objectstore import ObjectStore, ServedObjectStore, StoredObject, Upload
from tams_server import metrics
from tams_server.config import Settings
from tams_server.errors import plain_error

log = logging.getLogger("tams_server.media")

MEDIA_PREFIX = "/_media/"
_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
_EXPIRES = re.compile(r"[0-9]{1,15}")  # plain ASCII digits, and few: int() of 5,000 digits raises
_BIG = 10**18  # stands for any longer number in a Range (beyond every object's size)
_WRITE_BATCH = 2**20  # bytes gathered before one write to the store (off the event loop)
# Every media response: no type sniffing, and no script or same-origin rights should a browser
# ever render one as a page.
SAFETY_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"}
# Types a browser may show inline: media it only plays or displays. Anything else (HTML, SVG, XML,
# scripts, PDF, types we do not know) is served as an attachment: it is downloaded, never rendered.
_INLINE_PREFIXES = ("video/", "audio/", "image/")
_INLINE_TYPES = {
    "application/octet-stream",
    "application/mp4",
    "application/mxf",
    "application/json",
    "application/vnd.apple.mpegurl",
    "application/x-mpegurl",
    "text/plain",
    "text/vtt",
    "text/csv",
}
_ACTIVE_MARKS = ("html", "xml", "svg", "script", "xsl")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class HmacUrlSigner:
    """Signs media URLs; ``base_url`` gives the public root at signing time."""

    def __init__(self, secret: bytes, base_url: Callable[[], str], lifetime_s: int = 3600) -> None:
        self._secret = secret
        self._base_url = base_url
        self.lifetime_s = lifetime_s

    def _mac(self, method: str, storage_id: str, object_id: str, expires: int, content_type: str | None = None) -> str:
        message = f"{method}\n{storage_id}\n{object_id}\n{expires}"
        if content_type is not None:
            message += f"\n{content_type}"
        # surrogatepass: ids from JSON may hold lone surrogates; they must sign, not crash.
        return hmac.new(self._secret, message.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()

    def _path(self, storage_id: str, object_id: str) -> str:
        return f"{MEDIA_PREFIX}{storage_id}/{quote(object_id, safe='')}"

    def _read_expiry(self) -> int:
        # A read URL of one object stays the same for a quarter of its lifetime: a live HLS playlist
        # reloaded meanwhile lists the same URIs (RFC 8216 6.2.1: an EVENT playlist only grows at its
        # end), and caches see one URL per object. Each is still valid for at least ``lifetime_s``.
        step = max(1, self.lifetime_s // 4)
        return (int(time.time()) + self.lifetime_s) // step * step + step

    def sign(self, method: str, storage_id: str, object_id: str) -> str:
        expires = self._read_expiry() if method in ("GET", "HEAD") else int(time.time()) + self.lifetime_s
        mac = self._mac(method, storage_id, object_id, expires)
        return f"{self._base_url()}{self._path(storage_id, object_id)}?expires={expires}&signature={mac}"

    def sign_upload(self, storage_id: str, object_id: str, content_type: str) -> str:
        """A PUT URL bound to ``content_type``: a PUT with another Content-Type is refused."""
        expires = int(time.time()) + self.lifetime_s
        bound = normal_type(content_type)
        mac = self._mac("PUT", storage_id, object_id, expires, bound)
        return (
            f"{self._base_url()}{self._path(storage_id, object_id)}"
            f"?expires={expires}&content_type={quote(bound, safe='')}&signature={mac}"
        )

    def plain_url(self, storage_id: str, object_id: str) -> str:
        """An unsigned media URL (8.x plain put URLs): it needs the API's own credentials."""
        return f"{self._base_url()}{self._path(storage_id, object_id)}"

    def verify(
        self,
        method: str,
        storage_id: str,
        object_id: str,
        expires: str,
        signature: str,
        content_type: str | None = None,
    ) -> bool:
        """Whether the URL holds and has not expired (``content_type``: the type a PUT URL binds)."""
        if not _EXPIRES.fullmatch(expires) or int(expires) < time.time():
            return False
        expected = self._mac(method, storage_id, object_id, int(expires), content_type)
        return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def normal_type(content_type: str) -> str:
    """A content type as compared: lower case, no spaces around its parameters."""
    return ";".join(part.strip() for part in content_type.lower().split(";"))


def with_file_name(url: str, file_name: str) -> str:
    """``url`` named as a file (``&name=segment.ts``) when it is one of this server's signed media
    URLs, for players that judge media by the URL's extension; the media route ignores the
    parameter and the signature does not cover it. Any other URL as it is (a presigned S3 URL
    signs every parameter)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if MEDIA_PREFIX not in parts.path or "signature" not in query or "expires" not in query:
        return url
    return f"{url}&name={quote(file_name, safe='.')}"


def redacted(query_string: bytes) -> bytes:
    """The query of a media URL with its signature hidden, for anything that logs it."""
    return re.sub(rb"signature=[^&]*", b"signature=REDACTED", query_string)


def inline_safe(content_type: str | None) -> bool:
    """Whether a browser may render this type from the API's origin (media, plain text)."""
    if not content_type:
        return False
    main = content_type.split(";")[0].strip().lower()
    if not _TOKEN.fullmatch(main) or any(mark in main for mark in _ACTIVE_MARKS):
        return False
    return main in _INLINE_TYPES or main.startswith(_INLINE_PREFIXES)


def _number(digits: str) -> int:
    return int(digits) if len(digits) <= 18 else _BIG


def _byte_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(first, last) for a single satisfiable range; None for the whole object; "bad" if unsatisfiable."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match:
        return None  # multiple or unknown ranges: RFC 9110 lets us send the whole object
    first, last = match.groups()
    if first == "":
        if last == "" or _number(last) == 0:
            return "bad"
        length = _number(last)
        return (max(0, size - length), size - 1) if size else "bad"
    start = _number(first)
    end = size - 1 if last == "" else min(_number(last), size - 1)
    if start >= size or (last != "" and _number(last) < start):
        return "bad"
    return start, end


def _error(status: int, summary: str, headers: dict[str, str] | None = None) -> Response:
    return plain_error(status, summary, {**SAFETY_HEADERS, **(headers or {})})


async def serve(
    request: Request,
    signer: HmacUrlSigner,
    store_for: Callable[[str], ObjectStore | None],
    authorised: bool = False,
    settings: Settings | None = None,
    record_upload: Callable[[str, int], None] | None = None,
) -> Response:
    """Handle one request under ``MEDIA_PREFIX``; ``authorised``: the caller gave API credentials
    (a plain URL), so no signature is needed. Never raises: whatever fails is an error response,
    logged without the URL's signature."""
    try:
        return await _serve(request, signer, store_for, authorised, settings or Settings(), record_upload)
    except StorageFull as exc:
        return _error(507, exc.summary)
    except ClientDisconnect:
        return _error(400, "the client went away before the upload ended")
    except Exception:
        where = request.url.path + "?" + redacted(request.scope.get("query_string", b"")).decode("latin-1")
        log.exception("media request %s %s failed", request.method, where)
        return _error(500, "internal server error; the server log has the details")


async def _serve(
    request: Request,
    signer: HmacUrlSigner,
    store_for: Callable[[str], ObjectStore | None],
    authorised: bool,
    settings: Settings,
    record_upload: Callable[[str, int], None] | None = None,
) -> Response:
    rest = request.url.path[len(MEDIA_PREFIX) :]
    storage_id, _, object_id = rest.partition("/")
    method = "GET" if request.method == "HEAD" else request.method
    if method not in ("GET", "PUT"):
        return _error(405, "media URLs take GET, HEAD and PUT", {"Allow": "GET, HEAD, PUT"})
    params = request.query_params
    sent_type = request.headers.get("content-type")
    bound = params.get("content_type") if method == "PUT" else None
    if not authorised and not signer.verify(
        method, storage_id, object_id, params.get("expires", ""), params.get("signature", ""), bound
    ):
        metrics.auth_failed("bad_media_signature")
        return _error(403, "the media URL signature is invalid or has expired")
    if not authorised and method == "PUT" and bound is None:
        return _error(403, "the upload URL names no content type (it was made before content types were signed)")
    if bound is not None and sent_type is not None and normal_type(sent_type) != bound:
        return _error(403, f"this upload URL was signed for Content-Type {bound}: send that type")
    store = store_for(storage_id)
    if not isinstance(store, ServedObjectStore):
        return _error(404, f"no storage backend {storage_id} is served here")
    if method == "PUT":
        content_type = sent_type if bound is None else bound
        return await _upload(request, store, object_id, content_type, settings, record_upload)
    return await _download(request, store, object_id)


async def _upload(
    request: Request,
    store: ServedObjectStore,
    object_id: str,
    content_type: str | None,
    settings: Settings,
    record_upload: Callable[[str, int], None] | None,
) -> Response:
    limit = settings.max_media_bytes
    too_large = f"a media object may hold at most {limit} bytes (max_media_bytes)"
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isascii() or not declared.isdigit()):
        return _error(400, "Content-Length must be a number", {"Connection": "close"})
    if declared is not None and (len(declared) > 18 or int(declared) > limit):
        return _error(413, too_large, {"Connection": "close"})  # refused before reading a byte
    upload = await anyio.to_thread.run_sync(store.begin_upload, object_id, content_type)
    try:
        pending: list[bytes] = []
        gathered = 0
        async with aclosing(_pieces(request, settings.body_idle_timeout_s)) as pieces:
            async for chunk in pieces:
                if upload.size + gathered + len(chunk) > limit:
                    await anyio.to_thread.run_sync(upload.abort)
                    return _error(413, too_large, {"Connection": "close"})
                pending.append(chunk)
                gathered += len(chunk)
                if gathered >= _WRITE_BATCH:  # written off the event loop, a batch at a time
                    await anyio.to_thread.run_sync(upload.write, b"".join(pending))
                    pending, gathered = [], 0
        if pending:
            await anyio.to_thread.run_sync(upload.write, b"".join(pending))
        await anyio.to_thread.run_sync(upload.commit)
        metrics.MEDIA_UPLOADS.labels(store.info.id).inc()
        metrics.MEDIA_UPLOADED_BYTES.labels(store.info.id).inc(upload.size)
    except TimeoutError:
        await anyio.to_thread.run_sync(upload.abort)
        idle = settings.body_idle_timeout_s
        return _error(408, f"the upload stalled: no data for {idle:g} s", {"Connection": "close"})
    except AlreadyExists as exc:
        return _error(409, exc.summary)
    except BaseException:
        await _abort(upload)
        raise
    if record_upload is not None:
        # The object's size, for store reports. The bytes are committed: a failure here loses none.
        try:
            await anyio.to_thread.run_sync(record_upload, object_id, upload.size)
        except Exception:
            log.exception("could not record the size of object %s (its bytes are stored)", object_id)
    return Response(status_code=200, headers={**SAFETY_HEADERS, "ETag": f'"{upload.etag}"'})


async def _abort(upload: Upload) -> None:
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(upload.abort)


async def _pieces(request: Request, idle_timeout_s: float) -> AsyncIterator[bytes]:
    """The request body as it arrives; TimeoutError when a piece takes longer than ``idle_timeout_s``."""
    stream = request.stream()
    try:
        while True:
            with anyio.fail_after(idle_timeout_s):
                try:
                    chunk = await stream.__anext__()
                except StopAsyncIteration:
                    return
            if chunk:
                yield chunk
    finally:
        await stream.aclose()


async def _download(request: Request, store: ServedObjectStore, object_id: str) -> Response:
    found: StoredObject | None = await anyio.to_thread.run_sync(store.open_object, object_id)
    if found is None:
        return _error(404, f"object {object_id} has no uploaded content")
    headers = {**SAFETY_HEADERS, "Accept-Ranges": "bytes", "ETag": f'"{found.etag}"'}
    content_type = found.content_type or ""
    printable = _TOKEN.match(content_type) and _PRINTABLE.fullmatch(content_type)
    headers["Content-Type"] = content_type if printable else "application/octet-stream"
    if not inline_safe(found.content_type):
        headers["Content-Disposition"] = "attachment"
    wanted = _byte_range(request.headers.get("range"), found.size)
    if wanted == "bad":
        found.close()
        return _error(416, "requested range not satisfiable", {"Content-Range": f"bytes */{found.size}"})
    status, first, last = 200, 0, found.size - 1
    if isinstance(wanted, tuple):
        first, last = wanted
        headers["Content-Range"] = f"bytes {first}-{last}/{found.size}"
        status = 206
    headers["Content-Length"] = str(max(0, last - first + 1))
    if request.method == "HEAD" or last < first:
        found.close()
        return Response(b"", status_code=status, headers=headers)
    chunks = _counted(found.chunks(first, last), metrics.MEDIA_SERVED_BYTES.labels(store.info.id).inc)
    return StreamingResponse(chunks, status_code=status, headers=headers, background=BackgroundTask(found.close))


def _counted(chunks: Iterator[bytes], count: Callable[[int], None]) -> Iterator[bytes]:
    """``chunks``, each counted as it goes out (a client that leaves early is counted what it got)."""
    for chunk in chunks:
        count(len(chunk))
        yield chunk
