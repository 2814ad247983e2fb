"""Reading what the spec cannot express from the raw query, and writing paging headers."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from connexion import request

from backends.base import Page, PageRequest, TagFilter, UrlOptions
from backends.errors import BadRequest
from backends.rules import decode_cursor, encode_cursor
from backends.timerange import TimeRange
from tams_server import context

Headers = dict[str, str]


def tag_filter() -> TagFilter:
    """``tag.{name}=value`` and ``tag_exists.{name}=true|false`` from the query string."""
    equals: dict[str, str] = {}
    exists: dict[str, bool] = {}
    for key, value in request.query_params.multi_items():
        if key.startswith("tag."):
            equals[key[len("tag.") :]] = value
        elif key.startswith("tag_exists."):
            if value not in ("true", "false"):
                raise BadRequest(f"{key} must be true or false")
            exists[key[len("tag_exists.") :]] = value == "true"
    return TagFilter(equals, exists)


def timerange(value: str | None) -> TimeRange | None:
    if value is None:
        return None
    try:
        return TimeRange.parse(value)
    except ValueError as exc:
        raise BadRequest(f"invalid timerange {value!r}: {exc}") from exc


def _csv(name: str) -> tuple[str, ...] | None:
    """A comma-separated query parameter: None when absent, () when present but empty."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    return tuple(item for item in raw.split(",") if item)


def url_options(presigned: bool | None, verbose_storage: bool | None) -> UrlOptions:
    return UrlOptions(
        accept_get_urls=_csv("accept_get_urls"),
        accept_storage_ids=_csv("accept_storage_ids") or None,
        presigned=presigned,
        verbose_storage=bool(verbose_storage),
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
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
        query.append(("page", next_key))
        url = f"{context.base_url()}{quote(request.url.path)}?{urlencode(query)}"
        headers["Link"] = f'<{url}>; rel="next"'
        headers["X-Paging-NextKey"] = next_key
    return headers


def prefixed_tag_filter(prefix: str) -> TagFilter:
    """``{prefix}tag.{name}=value`` and ``{prefix}tag_exists.{name}=true|false`` (e.g. ``flow_`` on /objects)."""
    equals: dict[str, str] = {}
    exists: dict[str, bool] = {}
    for key, value in request.query_params.multi_items():
        if key.startswith(f"{prefix}tag."):
            equals[key[len(f"{prefix}tag.") :]] = value
        elif key.startswith(f"{prefix}tag_exists."):
            if value not in ("true", "false"):
                raise BadRequest(f"{key} must be true or false")
            exists[key[len(f"{prefix}tag_exists.") :]] = value == "true"
    return TagFilter(equals, exists)
