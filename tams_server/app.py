"""Build the ASGI application: Connexion routes every TAMS operation from the spec to a handler."""

from __future__ import annotations

import contextlib
import copy
import logging
import re
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from connexion import AsyncApp
from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.middleware.exceptions import ExceptionMiddleware
from connexion.middleware.lifespan import LifespanMiddleware
from connexion.middleware.server_error import ServerErrorMiddleware
from connexion.options import SwaggerUIOptions
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

import backends
import spec
from backends import errors as domain_errors
from backends import events as domain_events
from backends.base import Backend, BackendServices, Json, StorePolicy, acting_as
from handlers.versions import Dialect, dialect_of
from tams_server import (
    bodies,
    context,
    datadir,
    errors,
    media,
    observe,
    operations,
    origins,
    secret_strength,
    specload,
    versions,
)
from tams_server.auth import SCOPES, Authenticator, AuthError, CredentialStore, JwtSettings, JwtVerifier, Principal
from tams_server.config import Settings
from tams_server.docs import ApiDocs
from tams_server.hls import route as hls_route
from tams_server.resolver import TamsResolver
from tams_server.routing import IndexedRoutingMiddleware
from tams_server.side_routes import SideRoute, SideRoutes
from tams_server.validation import VALIDATORS
from tams_server.viewer import route as viewer_route
from tams_server.webhooks import DeliveryPolicy, WebhookDispatcher

log = logging.getLogger("tams_server")


def connexion_document(spec_path: Path) -> dict[str, Any]:
    """The spec as Connexion will route it."""
    doc = specload.for_connexion(specload.bundle(spec_path))
    # Authentication arrives with its own issue; until then no operation asks for credentials.
    doc.pop("security", None)
    for path_item in doc["paths"].values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                operation.pop("security", None)
    # Object ids and tag names may contain "/" (sent as %2F): let those last path parameters span segments.
    for template, path_item in doc["paths"].items():
        if template.startswith("/objects/") or template.endswith("/tags/{name}"):
            shared = path_item.get("parameters", [])
            operations = [op for op in path_item.values() if isinstance(op, dict)]
            for parameter in [*shared, *(p for op in operations for p in op.get("parameters", []))]:
                if parameter["in"] == "path" and parameter["name"] in ("objectId", "name"):
                    parameter["schema"]["format"] = "path"
    # Path-level parameters copied into each operation: Connexion appends them to the operation's
    # own list in place, once per layer that reads the spec (each request validated them 4 times).
    for path_item in doc["paths"].values():
        shared = path_item.pop("parameters", [])
        for operation in path_item.values():
            if isinstance(operation, dict):
                own = operation.setdefault("parameters", [])
                named = {(p["name"], p["in"]) for p in own}
                own += [p for p in shared if (p["name"], p["in"]) not in named]
    return doc


def _allowed_methods(doc: dict[str, Any], base_path: str) -> list[tuple[re.Pattern[str], str]]:
    """Path template regex -> "GET, HEAD, ..." (Connexion's own 405s name only one method)."""
    table = []
    for template, path_item in doc["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(base_path + template))
        methods = sorted(m.upper() for m in path_item if m in ("get", "head", "put", "post", "delete", "patch"))
        table.append((re.compile(f"^{pattern}$"), ", ".join(methods)))
    return table


class TamsApp:
    """The ASGI entry point: authenticates, sets the request context, serves signed media URLs,
    and keeps HEAD responses bodiless."""

    def __init__(
        self,
        api: AsyncApp,
        backend: Backend,
        services: BackendServices,
        settings: Settings,
        auth: Authenticator | None,
        mounts: list[versions.Mount],
    ) -> None:
        self.api = api
        self.mounts = mounts
        self.served = versions.describe_mounts(mounts)
        self.backend = backend
        self.services = services
        self.settings = settings
        self.auth = auth
        self.guarded_api = bodies.guard(api, settings)  # body limits and JSON sanity before Connexion
        self.hosts = origins.HostPolicy(settings.trusted_hosts, settings.public_url)
        self.side_routes = SideRoutes(backend, settings)
        self.docs = ApiDocs(mounts)
        self.access_lines = observe.access_lines(settings.log_format)

    @property
    def signer(self) -> media.HmacUrlSigner:
        return self.services.signer  # type: ignore[return-value]

    @property
    def webhooks(self) -> WebhookDispatcher:
        return self.services.events  # type: ignore[return-value]

    def _base_url(self, scope: Scope) -> str:
        if self.settings.public_url:
            return self.settings.public_url
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if not host and scope.get("server"):
            host = "{}:{}".format(*scope["server"])
        return f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}"

    async def _authorise(
        self, scope: Scope, path: str, scopes: frozenset[str] | None = None
    ) -> tuple[Response | None, Principal | None]:
        """(the 401/403/429 answer, None) when the request may not go on; else (None, its principal).
        ``scopes``: any one of them admits the caller (None: the API's rule for ``path``)."""
        if self.auth is None:
            return None, None
        try:
            principal = await self.auth.authenticate(scope)
            if scopes is None:
                self.auth.authorise(principal, scope["method"], path)
            else:
                self.auth.authorise_any(principal, scopes)
        except AuthError as exc:
            headers = {"WWW-Authenticate": CHALLENGE} if exc.status == 401 else {}
            return errors.plain_error(exc.status, exc.summary, {**headers, **exc.headers}), None
        observation = observe.of(scope)
        if observation is not None:
            observation.principal = principal.name
        return None, principal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        observation = observe.Observation(scope)
        scope[observe.SCOPE_KEY] = observation
        try:
            await self._serve(scope, receive, observation.wrap(send), observation)
        finally:
            observation.finish(self.settings.metrics, self.access_lines)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, observation: observe.Observation) -> None:
        side = self.side_routes.get(scope["path"])
        if side is not None:  # before the Host check: probes and scrapers address pods by IP
            observation.operation = side.name
            await self._side_route(side, scope, receive, send)
            return
        host = origins.header(scope, b"host")
        if not self.hosts.host_allowed(host):
            await errors.plain_error(400, f"this server does not answer for host {host!r}")(scope, receive, send)
            return
        if not self.hosts.write_allowed(scope):
            summary = "writes from another site's web page are refused (Origin is not this server)"
            await errors.plain_error(403, summary)(scope, receive, send)
            return
        context.enter(self.backend, self._base_url(scope), self.webhooks)
        if scope["method"] == "HEAD":
            send = _drop_body(send)
        docs = self.docs.route(scope["path"])
        if docs is not None:
            observation.operation = "docs"
            if self.settings.docs_require_auth:
                refused, _ = await self._authorise(scope, scope["path"], frozenset({"read"}))
                if refused is not None:
                    await refused(scope, receive, send)
                    return
            await docs(scope, receive, send)
            return
        if scope["path"] == viewer_route.PREFIX or scope["path"].startswith(viewer_route.PREFIX + "/"):
            # Static files only: the page asks the API for everything with the credentials it is given.
            observation.operation = "viewer"
            await viewer_route.serve(scope, receive, send)
            return
        if scope["path"].startswith(hls_route.PREFIX):  # beside the API, authenticated as the API is
            observation.operation = "hls"
            refused, _ = await self._authorise(scope, scope["path"], frozenset({"read"}))
            if refused is not None:
                await refused(scope, receive, send)
                return
            await (await hls_route.serve(Request(scope, receive), self.backend))(scope, receive, send)
            return
        if scope["path"].startswith(media.MEDIA_PREFIX):
            observation.operation = "media"
            # Signed media URLs carry their own authority, as presigned URLs do; plain ones (8.x,
            # without a signature) need the API's credentials, as any API request.
            authorised = False
            if b"signature=" not in scope.get("query_string", b""):
                refused, _ = await self._authorise(scope, scope["path"])
                if refused is not None:
                    await refused(scope, receive, send)
                    return
                authorised = True
            request = Request(scope, receive)
            response = await media.serve(
                request,
                self.signer,
                self.backend.object_store,
                authorised,
                settings=self.settings,
                record_upload=self.backend.record_upload,
            )
            scope["query_string"] = media.redacted(scope.get("query_string", b""))  # access logs show no signature
            await response(scope, receive, send)
            return
        mount, api_path = versions.match(self.mounts, scope["path"])
        if scope["path"] == mount.base_path:  # "/v8.2" is the root of that version, as "/v8.2/" is
            scope = {**scope, "path": mount.base_path + "/", "raw_path": (mount.base_path + "/").encode()}
        observation.version = mount.version
        context.enter_api(mount.version, mount.base_path, self.served)
        refused, principal = await self._authorise(scope, api_path)
        if refused is not None:
            await refused(scope, receive, send)
            return
        typed = _json_by_default(scope)
        if typed is None:
            await errors.plain_error(400, errors.JSON_ONLY)(scope, receive, send)
            return
        with acting_as(principal.name if principal else None):
            await self.guarded_api(typed, receive, send)

    async def _side_route(self, route: SideRoute, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await errors.plain_error(405, f"{scope['method']} is not allowed here", {"Allow": "GET, HEAD"})(
                scope, receive, send
            )
            return
        if scope["method"] == "HEAD":
            send = _drop_body(send)
        if route.scopes:
            refused, _ = await self._authorise(scope, scope["path"], route.scopes)
            if refused is not None:
                await refused(scope, receive, send)
                return
        response = await route.answer()
        await response(scope, receive, send)


# Connexion's default stack without the Swagger UI (not served) and security (TamsApp
# authenticates: the spec's security is removed) middlewares; request validation and the request
# context are done by each operation itself (tams_server.operations), with validators made once.
MIDDLEWARES = [ServerErrorMiddleware, ExceptionMiddleware, IndexedRoutingMiddleware, LifespanMiddleware]

CHALLENGE = 'Bearer realm="tams", Basic realm="tams"'


def _json_by_default(scope: Scope) -> Scope | None:
    """Every TAMS request body is JSON: read a body sent without Content-Type as JSON, unless a
    browser sent it (None: refuse it; a page can post without Content-Type and without a CORS preflight)."""
    if scope["method"] not in ("PUT", "POST") or any(k == b"content-type" for k, _ in scope["headers"]):
        return scope
    if any(k == b"origin" for k, _ in scope["headers"]):
        return None
    return {**scope, "headers": [*scope["headers"], (b"content-type", b"application/json")]}


def _drop_body(send: Send) -> Send:
    async def send_without_body(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_without_body


def _webhook_dialect(webhook: Json) -> Dialect:
    """The dialect of the API version a registration was made under (7.0 for one stored before
    versions were recorded; the newest served when its version is no longer served)."""
    version = domain_events.api_version(webhook)
    try:
        return dialect_of(version)
    except ModuleNotFoundError:
        return dialect_of(max(spec.versions(), key=versions.version_key))


def _render_event(webhook: Json, event: domain_events.Event) -> Json:
    """An event's body as the registration's API version shows it."""
    return _webhook_dialect(webhook).webhook_event(webhook, event)


def build_services(settings: Settings, backend: Callable[[], Backend]) -> BackendServices:
    """What a backend factory gets: URL signer, event sink (webhooks), policy and data directory."""
    secret = settings.media_secret.encode() if settings.media_secret else secrets.token_bytes(32)
    dispatcher = WebhookDispatcher(
        DeliveryPolicy(
            allow_private=settings.webhooks_allow_private,
            response_limit_bytes=settings.webhook_response_limit_bytes,
            attempt_timeout_s=settings.webhook_attempt_timeout_s,
        ),
        lambda: backend().all_webhooks(),
        render=_render_event,
        set_status=lambda webhook_id, status, error: backend().set_webhook_status(webhook_id, status, error),
        error_status=lambda webhook: _webhook_dialect(webhook).webhook_error_status,
    )
    policy = StorePolicy(
        async_delete_threshold=settings.async_delete_threshold,
        delete_chunk=settings.delete_chunk,
        unreferenced_grace_s=settings.object_grace_s,
        unregistered_ttl_s=settings.unregistered_object_ttl_s,
    )
    return BackendServices(
        signer=media.HmacUrlSigner(secret, context.base_url, settings.media_url_lifetime),
        events=dispatcher,
        policy=policy,
        data_dir=Path(settings.data_dir) if settings.data_dir else None,
        url_lifetime=settings.media_url_lifetime,
    )


def build_authenticator(settings: Settings) -> Authenticator | None:
    if settings.insecure_no_auth:
        log.warning("AUTHENTICATION IS OFF (insecure_no_auth): anyone who reaches this server can do anything")
        return None
    store = CredentialStore(Path(settings.data_dir) / "credentials.json" if settings.data_dir else None)
    ensure_admin(store, settings)
    jwt_settings = JwtSettings(
        public_key=settings.jwt_public_key,
        jwks=settings.jwt_jwks,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    verifier = JwtVerifier(jwt_settings) if settings.jwt_public_key or settings.jwt_jwks else None
    return Authenticator(
        store,
        verifier,
        failure_limit=settings.auth_failure_limit,
        failure_window_s=settings.auth_failure_window_s,
        password_concurrency=settings.password_check_concurrency,
    )


def ensure_admin(store: CredentialStore, settings: Settings) -> None:
    """Create the admin credentials the settings give; with none, an empty store gets one, shown once."""
    admin_user, admin_password = settings.admin_user, settings.admin_password
    if admin_user and admin_password and store.check_password(admin_user, admin_password) is None:
        store.remove(admin_user)
        store.add_password(admin_user, admin_password, SCOPES)
    if settings.admin_token and store.check_token(settings.admin_token) is None:
        store.remove("admin-token")
        store.add_token("admin-token", SCOPES, settings.admin_token)
    if len(store) == 0:
        token = store.add_token("admin", SCOPES)
        where = f"its hash is in {store.path}" if store.path else "it lives in memory only"
        print(
            f"\n  tams-server created an admin API token ({where}); it is shown this once:\n\n"
            f"      {token}\n\n  Send it as 'Authorization: Bearer <token>'.\n",
            file=sys.stderr,
            flush=True,
        )


def create_app(settings: Settings | None = None) -> TamsApp:
    """Build the app from settings."""
    settings = settings or Settings()
    secret_strength.check_settings(settings)  # refuses weak secrets before anything is made
    if settings.data_dir:
        datadir.make_private(Path(settings.data_dir))
    holder: list[Backend] = []
    services = build_services(settings, lambda: holder[0])
    backend = backends.load_factory(settings.backend)(settings.backend_options, services)
    holder.append(backend)
    auth = build_authenticator(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        backend.start()
        yield
        backend.close()
        services.events.close()  # type: ignore[attr-defined]
        if tams_app.access_lines is not None:
            tams_app.access_lines.close()  # the last lines reach the log

    mounts = versions.plan_mounts(settings.versions, settings.default_version, settings.spec, settings.specs)
    api = AsyncApp(
        __name__,
        lifespan=lifespan,
        middlewares=MIDDLEWARES,
        validator_map=VALIDATORS,
        pythonic_params=True,
        strict_validation=False,
        swagger_ui_options=SwaggerUIOptions(swagger_ui=False, serve_spec=False),
    )
    api._middleware_app.api_cls = operations.prepared_api(backend.may_block, VALIDATORS)
    allowed: list[tuple[re.Pattern[str], str]] = []
    documents: dict[Path, dict[str, Any]] = {}
    for mount in mounts:  # the versioned prefixes first: the root mount would catch their paths
        if mount.spec_path not in documents:
            documents[mount.spec_path] = connexion_document(mount.spec_path)
        doc = copy.deepcopy(documents[mount.spec_path])
        api.add_api(doc, base_path=mount.base_path, resolver=TamsResolver(mount.version), resolver_error=501)
        allowed += _allowed_methods(doc, mount.base_path)

    def method_not_allowed(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        methods = next((m for pattern, m in allowed if pattern.match(request.url.path)), "")
        return errors.error_response(405, f"{request.method} is not allowed here", {"Allow": methods})

    api.add_error_handler(domain_errors.TamsError, errors.domain_error)
    api.add_error_handler(405, method_not_allowed)
    api.add_error_handler(ProblemException, errors.problem)
    api.add_error_handler(HTTPException, errors.problem)
    api.add_error_handler(Exception, errors.unexpected)
    tams_app = TamsApp(api, backend, services, settings, auth, mounts)
    return tams_app
