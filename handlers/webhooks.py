"""Webhooks tag (8.0+, ADR-0037): registrations by id, paged and filtered by tags (delivery is
``tams_server.webhooks``; 7.0's registration by identity is in ``handlers/versions/v7_0.py``)."""

from __future__ import annotations

from typing import Any

from backends.base import Json, WebhookQuery
from handlers import _params
from handlers.versions import dialect
from tams_server import context
from tams_server.context import backend


def get_webhooks(reverse_order: bool | None = None, limit: int | None = None, page: str | None = None) -> Any:
    order = _params.listing_order("url", reverse_order)
    query = WebhookQuery(tags=_params.tag_filter(), reverse_order=order.reverse)
    result = backend().list_webhooks(query, _params.page_request(limit, page, _params.order_scope(order)))
    return [dialect().webhook(w) for w in result.items], 200, _params.listing_headers(result, order)


def post_webhooks(body: Json) -> Any:
    request = dialect().webhook_request(body)
    context.webhooks().check(request["url"])
    return dialect().webhook(backend().create_webhook(request)), 201


def get_webhooks_webhook_id(webhook_id: str) -> Any:
    return dialect().webhook(backend().get_webhook(webhook_id)), 200


def put_webhooks(webhook_id: str, body: Json) -> Any:
    request = dialect().webhook_request(body)
    backend().get_webhook(webhook_id)  # 404 before 400 for a bad receiver
    context.webhooks().check(request["url"])
    return dialect().webhook(backend().replace_webhook(webhook_id, request)), 201


def delete_webhooks_webhook_id(webhook_id: str) -> Any:
    backend().delete_webhook(webhook_id)
    return None, 204
