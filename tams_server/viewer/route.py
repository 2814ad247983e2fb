"""``/viewer/``: the web viewer's static files (our own HTML, CSS and ES modules; no build step).

Only the files named in ``FILES`` are served (an exact-name table: no request path is ever joined to
a directory, so dot segments, encoded slashes and unknown names are all 404). The page holds no
store data and needs no credentials: it asks the API (``../v8.2/``) for everything, with the
credentials its user types in, kept in the page's memory only.

The Content-Security-Policy lets the page load and connect to this server only; ``media-src blob:``
is for Media Source Extensions (the video plays a ``blob:`` URL of a MediaSource).
"""

from __future__ import annotations

import functools
from pathlib import Path

from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tams_server import errors
from tams_server.docs import HTML_TYPE, JS_TYPE, FixedBody, method_not_allowed

PREFIX = "/viewer"
STATIC = Path(__file__).parent / "static"
CSS_TYPE = "text/css; charset=utf-8"

# Path below PREFIX -> (file in static/, content type).
FILES: dict[str, tuple[str, str]] = {
    "/": ("index.html", HTML_TYPE),
    "/viewer.css": ("viewer.css", CSS_TYPE),
    "/viewer.js": ("viewer.js", JS_TYPE),
    "/api.js": ("api.js", JS_TYPE),
    "/timerange.js": ("timerange.js", JS_TYPE),
    "/timeline.js": ("timeline.js", JS_TYPE),
    "/tiles.js": ("tiles.js", JS_TYPE),
    "/player.js": ("player.js", JS_TYPE),
    "/mp4.js": ("mp4.js", JS_TYPE),
}

# Self only. connect-src 'self': the API, and the signed /media/ URLs of this server's own store;
# presigned S3 URLs live on other hosts, so an S3-backed store plays through HLS instead (README).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer"}


@functools.cache
def _file(name: str, media_type: str) -> FixedBody:
    """A static file's response, read once (the files are small and change only with the package)."""
    return FixedBody((STATIC / name).read_bytes(), media_type, HEADERS)


async def _redirect(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["method"] not in ("GET", "HEAD"):
        await method_not_allowed(scope, receive, send)
        return
    # Relative ("viewer/"): right behind any proxy prefix.
    await RedirectResponse(PREFIX.rsplit("/", 1)[-1] + "/", status_code=308)(scope, receive, send)


def _route(path: str) -> ASGIApp | None:
    if path == PREFIX:
        return _redirect
    entry = FILES.get(path[len(PREFIX) :])
    return None if entry is None else _file(*entry)


async def serve(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one request whose path is ``PREFIX`` or starts with ``PREFIX/``."""
    app = _route(scope["path"])
    if app is None:
        app = errors.plain_error(404, "no such viewer file")
    await app(scope, receive, send)
