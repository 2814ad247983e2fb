"""API documentation for each served version: its bundled spec and a Swagger UI.

Every mount gets ``<base>/openapi.json``, ``<base>/openapi.yaml`` and ``<base>/ui/``. The spec
served is the version's own bundled document (``specload.bundle``, security kept, so Swagger UI's
Authorize offers bearer and basic), with ``servers`` replaced by the mount's base path: "Try it
out" then calls this server at the right prefix, whatever host name it is reached by. The UI's
static files come from the installed ``swagger_ui_bundle`` package; only the files listed here are
served (an exact-name table: no path below ``<base>/ui/`` is ever joined to a directory).

Whether documentation needs credentials is TamsApp's decision (``docs_require_auth``); this module
only answers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import yaml
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from tams_server import errors, specload, versions

JSON_TYPE = "application/json"
# RFC 9512 registers application/yaml (2024); the older x- names were never registered.
YAML_TYPE = "application/yaml"
HTML_TYPE = "text/html; charset=utf-8"
JS_TYPE = "text/javascript; charset=utf-8"

# Swagger UI renders OpenAPI 3.1 (our specs) from version 5 on; 4.x refuses the document.
MIN_SWAGGER_UI = (5, 0)

# The bundle's own entry pages load the Petstore demo: our index.html and initializer replace them.
_NOT_SERVED = frozenset({"index.html", "index.j2", "swagger-initializer.js"})

# The UI loads scripts, styles and the spec from this server only; "Try it out" calls it only.
_UI_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}

_INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="swagger-ui.css">
<link rel="icon" type="image/png" href="favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="swagger-ui-bundle.js"></script>
<script src="tams-docs.js"></script>
</body>
</html>
"""

# Relative URLs: the page works under any host and base path. No persisted authorisation (the
# credentials live in the page only), no spec URL taken from the query string, no outside
# validator badge, BaseLayout (no top bar to load another spec from).
_INITIALIZER = """"use strict";
window.ui = SwaggerUIBundle({
  url: "../openapi.json",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  persistAuthorization: false,
  queryConfigEnabled: false,
  validatorUrl: null,
  tryItOutEnabled: true,
  displayOperationId: true,
  displayRequestDuration: true,
  deepLinking: true
});
"""


def served_server(mount: versions.Mount) -> dict[str, str]:
    """The one server a mount's document names: the mount's base path, relative to the host the
    document was fetched from."""
    return {"url": mount.base_path or "/", "description": f"This server (TAMS {mount.version})"}


def swagger_ui_dir() -> Path:
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))


def swagger_ui_version(directory: Path) -> tuple[int, ...]:
    """The Swagger UI version of the bundle (its folder is named ``swagger-ui-X.Y.Z``)."""
    match = re.fullmatch(r"swagger-ui-(\d+)\.(\d+)\.(\d+)", directory.name)
    return tuple(int(part) for part in match.groups()) if match else ()


class FixedBody:
    """A fixed body: GET and HEAD, an ETag and 304 on a match; anything else 405."""

    def __init__(self, body: bytes, media_type: str, headers: dict[str, str] | None = None) -> None:
        self.body = body
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        self.headers = [
            (b"content-type", media_type.encode()),
            (b"etag", self.etag.encode()),
            # Revalidate each time: the document changes when the server is upgraded.
            (b"cache-control", b"no-cache"),
            (b"x-content-type-options", b"nosniff"),
            *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await method_not_allowed(scope, receive, send)
            return
        if self.etag in Headers(scope=scope).get("if-none-match", ""):
            await send({"type": "http.response.start", "status": 304, "headers": self.headers})
            await send({"type": "http.response.body", "body": b""})
            return
        length = [(b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": self.headers + length})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else self.body})


class _Spec:
    """A mount's spec as JSON and YAML, made on first request (bundling takes ~0.4 s: in a worker
    thread, not on the event loop; not at start-up, which every app and test would pay)."""

    def __init__(self, mount: versions.Mount, bundled: Callable[[Path], dict[str, Any]]) -> None:
        self.mount = mount
        self.bundled = bundled
        self.encoded: tuple[FixedBody, FixedBody] | None = None
        self.lock = anyio.Lock()

    def build(self) -> tuple[FixedBody, FixedBody]:
        document = {**self.bundled(self.mount.spec_path), "servers": [served_server(self.mount)]}
        as_json = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        as_yaml = yaml.dump(document, Dumper=dumper, sort_keys=False, allow_unicode=True).encode()
        return FixedBody(as_json, JSON_TYPE), FixedBody(as_yaml, YAML_TYPE)

    async def get(self) -> tuple[FixedBody, FixedBody]:
        if self.encoded is None:
            async with self.lock:
                if self.encoded is None:
                    self.encoded = await anyio.to_thread.run_sync(self.build)
        return self.encoded

    def app(self, kind: int) -> ASGIApp:
        async def serve(scope: Scope, receive: Receive, send: Send) -> None:
            await (await self.get())[kind](scope, receive, send)

        return serve


class _StaticFile:
    """One file of the Swagger UI bundle (Starlette's StaticFiles: HEAD, ETag, 304, 405)."""

    def __init__(self, files: StaticFiles, name: str) -> None:
        self.files = files
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await method_not_allowed(scope, receive, send)
            return
        try:
            response = await self.files.get_response(self.name, {**scope, "root_path": ""})
        except HTTPException as exc:  # raised for the exception middleware we are in front of
            response = errors.plain_error(exc.status_code, str(exc.detail), dict(exc.headers or {}))
        response.headers["X-Content-Type-Options"] = "nosniff"
        await response(scope, receive, send)


async def method_not_allowed(scope: Scope, receive: Receive, send: Send) -> None:
    summary = f"{scope['method']} is not allowed here"
    await errors.plain_error(405, summary, {"Allow": "GET, HEAD"})(scope, receive, send)


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await errors.plain_error(404, "no such documentation file")(scope, receive, send)


class ApiDocs:
    """The documentation routes of every mount: ``<base>/openapi.json``, ``.yaml`` and ``<base>/ui/``.

    The routing table is made here (cheap: names only); each spec document on its first request.
    A request then costs one dict look-up.
    """

    def __init__(self, mounts: list[versions.Mount], ui_dir: Path | None = None) -> None:
        self.mounts = mounts
        ui_dir = ui_dir or swagger_ui_dir()
        files = StaticFiles(directory=ui_dir)
        static = sorted(p.name for p in ui_dir.iterdir() if p.is_file() and p.name not in _NOT_SERVED)
        initializer = FixedBody(_INITIALIZER.encode(), JS_TYPE)
        bundled = functools.cache(specload.bundle)  # the root mount shares its version's bundle
        self.routes: dict[str, ASGIApp] = {}
        for mount in mounts:
            base = mount.base_path
            spec = _Spec(mount, bundled)
            self.routes[f"{base}/openapi.json"] = spec.app(0)
            self.routes[f"{base}/openapi.yaml"] = spec.app(1)
            # Relative: right behind any proxy prefix.
            self.routes[f"{base}/ui"] = RedirectResponse("ui/", status_code=308)
            title = f"TAMS {mount.version} API at {base or '/'}"
            self.routes[f"{base}/ui/"] = FixedBody(_INDEX.format(title=title).encode(), HTML_TYPE, _UI_HEADERS)
            self.routes[f"{base}/ui/tams-docs.js"] = initializer
            for name in static:
                self.routes[f"{base}/ui/{name}"] = _StaticFile(files, name)
        # Every path below these is the documentation's: an unknown file is its 404, not an API path.
        self._ui_prefixes = tuple(f"{mount.base_path}/ui/" for mount in mounts)

    def route(self, path: str) -> ASGIApp | None:
        """The ASGI app answering ``path`` when it is a documentation path, else None."""
        app = self.routes.get(path)
        if app is None and path.startswith(self._ui_prefixes):
            return _not_found
        return app
