"""Per-request context for handlers: the backend, the public URLs, the API version and the webhook
dispatcher.

Set by ``TamsApp`` for each request; sync handlers run in a thread pool that copies contextvars.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

from backends.base import Backend

if TYPE_CHECKING:
    from tams_server.webhooks import WebhookDispatcher

_backend: ContextVar[Backend] = ContextVar("tams_backend")
_webhooks: ContextVar[WebhookDispatcher] = ContextVar("tams_webhooks")
_base_url: ContextVar[str] = ContextVar("tams_base_url", default="http://localhost:4010")
_api_version: ContextVar[str] = ContextVar("tams_api_version", default="7.0")
_base_path: ContextVar[str] = ContextVar("tams_base_path", default="")
_served: ContextVar[str] = ContextVar("tams_served", default="")


def backend() -> Backend:
    return _backend.get()


def base_url() -> str:
    """Scheme, host and root path under which clients reach this server (no trailing slash)."""
    return _base_url.get()


def api_url() -> str:
    """The URL of the API version the request was made to: ``base_url()`` + its base path."""
    return _base_url.get() + _base_path.get()


def api_version() -> str:
    """The TAMS API version ("7.0", "8.2") of the current request."""
    return _api_version.get()


def served() -> str:
    """Which versions this server serves where, e.g. "TAMS 7.0 at /v7.0, TAMS 8.2 at /v8.2 and /"."""
    return _served.get()


def webhooks() -> WebhookDispatcher:
    return _webhooks.get()


def enter(backend: Backend, base_url: str, webhooks: WebhookDispatcher) -> None:
    _backend.set(backend)
    _base_url.set(base_url.rstrip("/"))
    _webhooks.set(webhooks)


def enter_api(version: str, base_path: str, served: str) -> None:
    _api_version.set(version)
    _base_path.set(base_path)
    _served.set(served)
