"""``/viewer/``: the viewer's static files (placeholder until the viewer lands)."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from tams_server import errors

PREFIX = "/viewer"


async def serve(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one request whose path starts with ``PREFIX``."""
    await errors.plain_error(404, "the viewer is not built yet")(scope, receive, send)
