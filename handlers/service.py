"""Service tag: the API root, service information, storage backends, webhooks."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from handlers.versions import dialect
from tams_server import context
from tams_server.context import backend

ROOT_PATHS = ["service", "flows", "sources", "objects", "flow-delete-requests"]


def get_root() -> Any:
    return ROOT_PATHS, 200


WEBHOOKS = {"name": "webhooks", "docs": "Register at /service/webhooks; deliveries are POSTs with JSON bodies."}


def _software_version() -> str:
    try:
        return metadata.version("tams-server")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def get_service() -> Any:
    info = {
        **backend().service_info(),
        # Informative only (clients must not decide compatibility on it): the software and where each version is.
        "service_version": f"tams-server {_software_version()}; {context.served()}",
        "event_stream_mechanisms": [WEBHOOKS],
    }
    return dialect().service(info), 200


def post_service(body: dict[str, Any]) -> Any:
    backend().update_service_info(body)
    return None, 200


def get_storage_backends() -> Any:
    return backend().storage_backends(), 200
