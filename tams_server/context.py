"""Per-request context for handlers: the backend serving this app and the public base URL.

Set by ``TamsApp`` for each request; sync handlers run in a thread pool that copies contextvars.
"""

from __future__ import annotations

from contextvars import ContextVar

from backends.base import Backend

_backend: ContextVar[Backend] = ContextVar("tams_backend")
_base_url: ContextVar[str] = ContextVar("tams_base_url", default="http://localhost:4010")


def backend() -> Backend:
    return _backend.get()


def base_url() -> str:
    """Scheme, host and root path under which clients reach this server (no trailing slash)."""
    return _base_url.get()


def enter(backend: Backend, base_url: str) -> None:
    _backend.set(backend)
    _base_url.set(base_url.rstrip("/"))
