"""Reading what the spec cannot express from the raw query, and writing paging headers."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from connexion import request
from connexion.context import scope as request_scope
from starlette.datastructures import QueryParams

from backends import ordering
from backends.base import ListingOrder, Page, PageRequest, TagFilter, UrlOptions
from backends.errors import BadRequest
from backends.rules import decode_cursor, encode_cursor
from backends.timerange import TimeRange
from handlers.versions import dialect
from tams_server import context

Headers = dict[str, str]
_QUERY = "tams.query_params"  # scope key: the raw query, parsed once per request


def _query() -> QueryParams:
    """The raw query string of the request being served, parsed once (``connexion.request`` makes a
    new request, and parses it again, on every access)."""
    parsed = request_scope.get(_QUERY)
    if parsed is None:
        parsed = request_scope[_QUERY] = QueryParams(request_scope["query_string"])
    return parsed


def tag_filter(prefix: str = "tag.", exists_prefix: str = "tag_exists.") -> TagFilter:
    """``tag.{name}=...`` and ``tag_exists.{name}=true|false`` from the query string (or other prefixes).

    What a ``tag.{name}`` value accepts depends on the API version (its dialect's ``tag_values``).
    """
    parse = dialect().tag_values
    equals: dict[str, frozenset[str]] = {}
    exists: dict[str, bool] = {}
    for key, value in _query().multi_items():
        if key.startswith(prefix):
            equals[key[len(prefix) :]] = parse(value)
        elif key.startswith(exists_prefix):
            if value not in ("true", "false"):
                raise BadRequest(f"{key} must be true or false")
            exists[key[len(exists_prefix) :]] = value == "true"
    return TagFilter(equals, exists)


def listing_order(sort_by: str | None, reverse_order: bool | None, default: str = "created") -> ListingOrder:
    """The order a listing asked for (``sort_by``, else ``default``; ``reverse_order``)."""
    return ordering.listing_order(sort_by or default, bool(reverse_order))


def order_scope(order: ListingOrder) -> str:
    """What a page key of a listing in ``order`` is bound to (see ``page_request``)."""
    return f"{order.key}|{order.reverse}"


def listing_headers(result: Page[Any], order: ListingOrder) -> Headers:
    """Paging headers of a sorted listing, with ``X-Paging-Count`` and ``X-Paging-Reverse-Order``."""
    headers = paging_headers(result, order_scope(order))
    headers["X-Paging-Count"] = str(len(result.items))
    headers["X-Paging-Reverse-Order"] = "true" if order.reverse else "false"
    return headers


def collected_by_ids() -> tuple[str, ...] | None:
    """``collected_by_ids``: None when absent, () when empty (the uncollected), else the ids."""
    return _csv("collected_by_ids")


def timerange(value: str | None) -> TimeRange | None:
    if value is None:
        return None
    try:
        return TimeRange.parse(value)
    except ValueError as exc:
        raise BadRequest(f"invalid timerange {value!r}: {exc}") from exc


def _csv(name: str) -> tuple[str, ...] | None:
    """A comma-separated query parameter: None when absent, () when present but empty."""
    raw = _query().get(name)
    if raw is None:
        return None
    return tuple(item for item in raw.split(",") if item)


def url_options(presigned: bool | None, verbose_storage: bool | None) -> UrlOptions:
    return UrlOptions(
        accept_get_urls=_csv("accept_get_urls"),
        accept_storage_ids=_csv("accept_storage_ids") or None,
        presigned=presigned,
        verbose_storage=bool(verbose_storage),
        storage_backend_tags=tag_filter("storage_backend_tag.", "storage_backend_tag_exists."),
        show_minted_labels=dialect().shows_minted_labels,
    )


def _key_scope(order: str) -> str:
    """What a page key is valid for: the API version and the order of the listing it came from."""
    return f"{context.api_version()}|{order}|"


def page_request(limit: int | None, page: str | None, order: str = "") -> PageRequest:
    """The page asked for; a key made under another API version or order is refused (400)."""
    if page is None:
        return PageRequest(limit=limit)
    scope = _key_scope(order)
    position = decode_cursor(page)
    if not position.startswith(scope):
        raise BadRequest(f"page key {page!r} belongs to another listing, order or API version")
    return PageRequest(limit=limit, page=position[len(scope) :])


def paging_headers(result: Page[Any], order: str = "") -> Headers:
    """``X-Paging-Limit`` always; ``Link``/``X-Paging-NextKey`` only when there is a next page."""
    headers = {"X-Paging-Limit": str(result.limit)}
    if result.next_key is not None:
        next_key = encode_cursor(_key_scope(order) + result.next_key)
        query = [(k, v) for k, v in _query().multi_items() if k != "page"]
        query.append(("page", next_key))
        url = f"{context.base_url()}{quote(request.url.path)}?{urlencode(query)}"
        headers["Link"] = f'<{url}>; rel="next"'
        headers["X-Paging-NextKey"] = next_key
    return headers
