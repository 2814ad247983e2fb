"""Webhooks tag: registration of event receivers (delivery is ``tams_server.webhooks``)."""

from __future__ import annotations

from typing import Any

from backends.base import Json
from backends.events import public_view
from tams_server import context
from tams_server.context import backend


def get_webhooks() -> Any:
    return [public_view(w) for w in backend().list_webhooks()], 200


def post_webhooks(body: Json) -> Any:
    if body.get("events"):
        context.webhooks().check(body["url"])
    registered = backend().register_webhook(body)
    return (public_view(body), 201) if registered else (None, 204)
