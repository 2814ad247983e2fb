"""API documentation for each served version: its bundled spec and a Swagger UI (filled in by issue 14)."""

from __future__ import annotations

from starlette.types import ASGIApp

from tams_server import versions


class ApiDocs:
    """The documentation routes of every mount: ``<base>/openapi.json``, ``.yaml`` and ``<base>/ui/``."""

    def __init__(self, mounts: list[versions.Mount]) -> None:
        self.mounts = mounts

    def route(self, path: str) -> ASGIApp | None:
        """The ASGI app answering ``path`` when it is a documentation path, else None."""
        return None
