"""Service tag: the API root, service information, storage backends, webhooks."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from backends import ordering, rules
from handlers import _params
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


def get_storage_backends(limit: int | None = None, page: str | None = None, reverse_order: bool | None = None) -> Any:
    """Paged, by ``label`` (ADR-0052); the few backends are filtered and paged here by the shared rules."""
    order = ordering.listing_order("label", bool(reverse_order))
    tags = _params.tag_filter()
    listed = [b for b in backend().storage_backends() if rules.matches_tags(b, tags)]
    result = ordering.ordered_page(listed, order, _params.page_request(limit, page, _params.order_scope(order)))
    return result.items, 200, _params.listing_headers(result, order)
