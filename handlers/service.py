"""Service tag: the API root, service information, storage backends, webhooks."""

from __future__ import annotations

from typing import Any

from handlers.versions import dialect
from tams_server.context import backend

ROOT_PATHS = ["service", "flows", "sources", "objects", "flow-delete-requests"]


def get_root() -> Any:
    return ROOT_PATHS, 200


WEBHOOKS = {"name": "webhooks", "docs": "Register at /service/webhooks; deliveries are POSTs with JSON bodies."}


def get_service() -> Any:
    return dialect().service({**backend().service_info(), "event_stream_mechanisms": [WEBHOOKS]}), 200


def post_service(body: dict[str, Any]) -> Any:
    backend().update_service_info(body)
    return None, 200


def get_storage_backends() -> Any:
    return backend().storage_backends(), 200
