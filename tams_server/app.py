"""Build the ASGI application: Connexion routes every TAMS operation from the spec to a handler."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

from connexion import AsyncApp
from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.options import SwaggerUIOptions
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

import backends
from backends import errors as domain_errors
from backends.base import Backend
from tams_server import context, errors, media, specload
from tams_server.config import Settings
from tams_server.resolver import TamsResolver
from tams_server.validation import VALIDATORS


def default_spec_path() -> Path:
    import spec

    return spec.SPEC_PATH


def connexion_document(spec_path: Path) -> dict[str, Any]:
    """The spec as Connexion will route it."""
    doc = specload.for_connexion(specload.bundle(spec_path))
    # Authentication arrives with its own issue; until then no operation asks for credentials.
    doc.pop("security", None)
    for path_item in doc["paths"].values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                operation.pop("security", None)
    # Object ids may contain "/": let the last path parameter of /objects/ span segments.
    for template, path_item in doc["paths"].items():
        if template.startswith("/objects/"):
            for operation in path_item.values():
                for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                    if parameter["in"] == "path":
                        parameter["schema"]["format"] = "path"
    return doc


def _allowed_methods(doc: dict[str, Any]) -> list[tuple[re.Pattern[str], str]]:
    """Path template regex -> "GET, HEAD, ..." (Connexion's own 405s name only one method)."""
    table = []
    for template, path_item in doc["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        methods = sorted(m.upper() for m in path_item if m in ("get", "head", "put", "post", "delete", "patch"))
        table.append((re.compile(f"^{pattern}$"), ", ".join(methods)))
    return table


class TamsApp:
    """The ASGI entry point: sets the request context, serves signed media URLs, and keeps HEAD bodiless."""

    def __init__(
        self,
        api: AsyncApp,
        backend: Backend,
        signer: media.HmacUrlSigner,
        settings: Settings,
    ) -> None:
        self.api = api
        self.backend = backend
        self.signer = signer
        self.settings = settings

    def _base_url(self, scope: Scope) -> str:
        if self.settings.public_url:
            return self.settings.public_url
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if not host and scope.get("server"):
            host = "{}:{}".format(*scope["server"])
        return f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        context.enter(self.backend, self._base_url(scope))
        if scope["method"] == "HEAD":
            send = _drop_body(send)
        if scope["path"].startswith(media.MEDIA_PREFIX):
            response = await media.serve(Request(scope, receive), self.signer, self.backend.object_store)
            await response(scope, receive, send)
            return
        await self.api(_json_by_default(scope), receive, send)


def _json_by_default(scope: Scope) -> Scope:
    """Every TAMS request body is JSON: read a body sent without Content-Type as JSON."""
    if scope["method"] not in ("PUT", "POST") or any(k == b"content-type" for k, _ in scope["headers"]):
        return scope
    return {**scope, "headers": [*scope["headers"], (b"content-type", b"application/json")]}


def _drop_body(send: Send) -> Send:
    async def send_without_body(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_without_body


def create_app(settings: Settings | None = None, backend: Backend | None = None) -> TamsApp:
    """Build the app from settings; ``backend`` overrides the configured one (for tests)."""
    settings = settings or Settings()
    secret = settings.media_secret.encode() if settings.media_secret else secrets.token_bytes(32)
    signer = media.HmacUrlSigner(secret, context.base_url, settings.media_url_lifetime)
    if backend is None:
        backend = backends.load_factory(settings.backend)(settings.backend_options, signer)

    spec_path = Path(settings.spec) if settings.spec else default_spec_path()
    doc = connexion_document(spec_path)
    resolver = TamsResolver()
    api = AsyncApp(
        __name__,
        resolver=resolver,
        validator_map=VALIDATORS,
        pythonic_params=True,
        strict_validation=False,
        swagger_ui_options=SwaggerUIOptions(swagger_ui=False, serve_spec=False),
    )
    api.add_api(doc, resolver=resolver, resolver_error=501)
    allowed = _allowed_methods(doc)

    def method_not_allowed(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        methods = next((m for pattern, m in allowed if pattern.match(request.url.path)), "")
        return errors.error_response(405, f"{request.method} is not allowed here", {"Allow": methods})

    api.add_error_handler(domain_errors.TamsError, errors.domain_error)
    api.add_error_handler(405, method_not_allowed)
    api.add_error_handler(ProblemException, errors.problem)
    api.add_error_handler(HTTPException, errors.problem)
    api.add_error_handler(Exception, errors.unexpected)
    return TamsApp(api, backend, signer, settings)
