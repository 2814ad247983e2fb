"""The order of listings (ADR-0052), and keyset page keys that resume a listing in that order.

A listing is sorted by one field (``ListingOrder.key``): dates newest first, strings ascending.
Items without the field come after the others; ties and items without the field are ordered by
``id`` ascending. ``reverse`` reverses the whole order, so items without the field then come
first. A page key names the last item's (value, id): the next page starts after that position,
so items added or removed meanwhile neither repeat nor shift the pages.
"""

from __future__ import annotations

import bisect
import functools
import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from backends.base import Json, ListingOrder, Page, PageRequest
from backends.errors import BadRequest
from backends.rules import decode_cursor, encode_cursor, page_limit

T = TypeVar("T")

# Keys sorted ascending (names, URLs); every other key is a date, sorted newest first (ADR-0052).
ASCENDING_KEYS = frozenset({"label", "url"})


def listing_order(key: str = "created", reverse: bool = False) -> ListingOrder:
    """The order of a listing sorted by ``key``, in the direction ADR-0052 gives that key."""
    return ListingOrder(key, newest_first=key not in ASCENDING_KEYS, reverse=reverse)


# Where an item sits in an order: its value of the sort key (None when unset) and its id.
Position = tuple[str | None, str]


def position(item: Json, order: ListingOrder) -> Position:
    value = item.get(order.key)
    return (None if value is None else str(value)), str(item["id"])


def compare(a: Position, b: Position, order: ListingOrder) -> int:
    """Negative when ``a`` comes before ``b`` in ``order``, positive after, 0 for the same position."""
    (value_a, id_a), (value_b, id_b) = a, b
    if (value_a is None) != (value_b is None):
        result = 1 if value_a is None else -1
    elif value_a is not None and value_b is not None and value_a != value_b:
        result = -1 if value_a < value_b else 1
        if order.newest_first:
            result = -result
    else:
        result = (id_a > id_b) - (id_a < id_b)
    return -result if order.reverse else result


def _sort_key(order: ListingOrder) -> Callable[[Position], Any]:
    return functools.cmp_to_key(lambda a, b: compare(a, b, order))  # type: ignore[no-any-return]


def sort(items: Iterable[Json], order: ListingOrder) -> list[Json]:
    key = _sort_key(order)
    return sorted(items, key=lambda item: key(position(item, order)))


def encode_position(pos: Position) -> str:
    return encode_cursor(json.dumps(list(pos)))


def decode_position(page: str) -> Position:
    try:
        value, item_id = json.loads(decode_cursor(page))
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"invalid page key {page!r}") from exc
    if not (value is None or isinstance(value, str)) or not isinstance(item_id, str):
        raise BadRequest(f"invalid page key {page!r}")
    return value, item_id


def ordered_page(items: Iterable[Json], order: ListingOrder, page: PageRequest) -> Page[Json]:
    """One page of ``items`` in ``order``, starting after the position the page key names."""
    limit = page_limit(page.limit)
    ordered = sort(items, order)
    start = 0
    if page.page is not None:
        key = _sort_key(order)
        keys = [key(position(item, order)) for item in ordered]
        start = bisect.bisect_right(keys, key(decode_position(page.page)))
    chunk = ordered[start : start + limit]
    more = start + limit < len(ordered)
    next_key = encode_position(position(chunk[-1], order)) if more else None
    return Page(chunk, limit, next_key)


def ordered_scan(
    items: Iterable[T],
    order: ListingOrder,
    page: PageRequest,
    doc_of: Callable[[T], Json],
    select: Callable[[list[T]], list[Json]],
    chunk: int = 256,
) -> Page[Json]:
    """``ordered_page`` for stored items whose listed form costs reads: items are sorted by their
    stored document (``doc_of``: it has the sort key and id), then ``select`` filters and renders
    them (keeping their order) a chunk at a time until the page is full."""
    limit = page_limit(page.limit)
    key = _sort_key(order)
    ranked = sorted(((key(position(doc_of(item), order)), item) for item in items), key=lambda pair: pair[0])
    start = 0
    if page.page is not None:
        start = bisect.bisect_right([k for k, _ in ranked], key(decode_position(page.page)))
    chosen: list[Json] = []
    while start < len(ranked) and len(chosen) <= limit:
        chosen += select([item for _, item in ranked[start : start + chunk]])
        start += chunk
    more = len(chosen) > limit
    chosen = chosen[:limit]
    return Page(chosen, limit, encode_position(position(chosen[-1], order)) if more else None)
