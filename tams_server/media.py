"""Signed, expiring URLs at which the server moves media bytes of its self-served stores.

Uploads are ``PUT`` and downloads ``GET``/``HEAD`` (with HTTP Range) on
``/_media/{storage_id}/{object_id}?expires=...&signature=...``. The signature is an HMAC over the
method, store, object and expiry, so the URLs work without API credentials, as presigned URLs do,
and stop working once expired or altered.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from backends.objectstore import ObjectStore, ServedObjectStore
from tams_server.config import Settings
from tams_server.errors import plain_error

MEDIA_PREFIX = "/_media/"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class HmacUrlSigner:
    """Signs media URLs; ``base_url`` gives the public root at signing time."""

    def __init__(self, secret: bytes, base_url: Callable[[], str], lifetime_s: int = 3600) -> None:
        self._secret = secret
        self._base_url = base_url
        self.lifetime_s = lifetime_s

    def _mac(self, method: str, storage_id: str, object_id: str, expires: int) -> str:
        message = f"{method}\n{storage_id}\n{object_id}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def sign(self, method: str, storage_id: str, object_id: str) -> str:
        expires = int(time.time()) + self.lifetime_s
        mac = self._mac(method, storage_id, object_id, expires)
        path = f"{MEDIA_PREFIX}{storage_id}/{quote(object_id, safe='')}"
        return f"{self._base_url()}{path}?expires={expires}&signature={mac}"

    def plain_url(self, storage_id: str, object_id: str) -> str:
        """An unsigned media URL (8.x plain put URLs): it needs the API's own credentials."""
        return f"{self._base_url()}{MEDIA_PREFIX}{storage_id}/{quote(object_id, safe='')}"

    def verify(self, method: str, storage_id: str, object_id: str, expires: str, signature: str) -> bool:
        if not expires.isdigit() or int(expires) < time.time():
            return False
        expected = self._mac(method, storage_id, object_id, int(expires))
        return hmac.compare_digest(expected, signature)


def redacted(query_string: bytes) -> bytes:
    """The query of a media URL with its signature hidden, for anything that logs it."""
    return re.sub(rb"signature=[0-9a-f]+", b"signature=REDACTED", query_string)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(first, last) for a single satisfiable range; None for the whole object; "bad" if unsatisfiable."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match:
        return None  # multiple or unknown ranges: RFC 9110 lets us send the whole object
    first, last = match.groups()
    if first == "":
        if last == "" or int(last) == 0:
            return "bad"
        length = int(last)
        return (max(0, size - length), size - 1) if size else "bad"
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or (last != "" and int(last) < start):
        return "bad"
    return start, end


async def serve(
    request: Request,
    signer: HmacUrlSigner,
    store_for: Callable[[str], ObjectStore | None],
    authorised: bool = False,
    settings: Settings | None = None,
) -> Response:
    """Handle one request under ``MEDIA_PREFIX``; ``authorised``: the caller gave API credentials
    (a plain URL), so no signature is needed."""
    rest = request.url.path[len(MEDIA_PREFIX) :]
    storage_id, _, object_id = rest.partition("/")
    method = "GET" if request.method == "HEAD" else request.method
    if method not in ("GET", "PUT"):
        return plain_error(405, "media URLs take GET, HEAD and PUT", {"Allow": "GET, HEAD, PUT"})
    params = request.query_params
    if not authorised and not signer.verify(
        method,
        storage_id,
        object_id,
        params.get("expires", ""),
        params.get("signature", ""),
    ):
        return plain_error(403, "the media URL signature is invalid or has expired")
    store = store_for(storage_id)
    if not isinstance(store, ServedObjectStore):
        return plain_error(404, f"no storage backend {storage_id} is served here")
    if method == "PUT":
        data = await request.body()
        store.write(object_id, data, request.headers.get("content-type"))
        return Response(status_code=200, headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})
    found = store.read(object_id)
    if found is None:
        return plain_error(404, f"object {object_id} has no uploaded content")
    data, content_type = found
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{hashlib.md5(data).hexdigest()}"'}
    wanted = _byte_range(request.headers.get("range"), len(data))
    if wanted == "bad":
        return plain_error(
            416,
            "requested range not satisfiable",
            {"Content-Range": f"bytes */{len(data)}"},
        )
    status = 200
    if isinstance(wanted, tuple):
        first, last = wanted
        headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        data, status = data[first : last + 1], 206
    body = b"" if request.method == "HEAD" else data
    headers["Content-Length"] = str(len(data))
    return Response(
        body,
        status_code=status,
        headers=headers,
        media_type=content_type or "application/octet-stream",
    )
