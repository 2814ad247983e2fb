"""FlowDeleteRequests tag: progress of deletions that run on after their request returned."""

from __future__ import annotations

from typing import Any

from backends import ordering
from handlers import _params
from tams_server.context import backend


def get_flow_delete_requests(
    limit: int | None = None,
    page: str | None = None,
    sort_by: str | None = None,
    reverse_order: bool | None = None,
) -> Any:
    """Paged, ``created`` (default) or ``expiry`` newest first (ADR-0052); requests are few and
    short-lived, so the whole list is sorted and paged here by the shared rules."""
    order = _params.listing_order(sort_by, reverse_order)
    page_request = _params.page_request(limit, page, _params.order_scope(order))
    result = ordering.ordered_page(backend().list_delete_requests(), order, page_request)
    return result.items, 200, _params.listing_headers(result, order)


def get_flow_delete_requests_request_id(request_id: str) -> Any:
    return backend().get_delete_request(request_id), 200
