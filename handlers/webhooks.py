"""Webhooks tag: registration of event receivers (answers 404 while the backend has none)."""

from __future__ import annotations

from typing import Any

from tams_server.context import backend


def get_webhooks() -> Any:
    return backend().list_webhooks(), 200


def post_webhooks(body: dict[str, Any]) -> Any:
    registered = backend().register_webhook(body)
    shown = {k: v for k, v in body.items() if k != "api_key_value"}
    return (shown, 201) if registered else (None, 204)
