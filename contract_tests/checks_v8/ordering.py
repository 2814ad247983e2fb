"""8.2 listing order (ADR-0052): ``sort_by`` and ``reverse_order`` of /flows and /sources, and the
paged service listings (storage backends, flow delete requests) in their defined order."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from contract_tests import strategies as S
from contract_tests.api import Api
from contract_tests.checks import create_flow
from contract_tests.checks_v8.common import (
    ids_of,
    instant,
    reverse_header,
)
from contract_tests.errors import ContractFailure
from contract_tests.suite import RUN_TAG, SCOPE_TAG, Context, Listing, head_matches_get, list_all

# --------------------------------------------------------------------------- ADR-0052 order


def order_problem(
    items: list[dict[str, Any]], key: str, newest_first: bool, reverse: bool, operation: str
) -> str | None:
    """Why ``items`` are not in the order ADR-0052 gives ``sort_by=key`` (None when they are).

    Items with ``key`` come first (last with ``reverse_order``), by the key: date-times newest
    first, strings ascending (each the other way round with ``reverse_order``); equal keys may come
    in any order. Items without the key are ordered by ``id`` (the spec does not say which way: one
    way, consistently).
    """

    def value(item: dict[str, Any]) -> Any:
        raw = item.get(key)
        if raw is None:
            return None
        return instant(raw, operation, f"{key} of {item.get('id')}") if newest_first else raw

    descending = newest_first != reverse
    values = [value(item) for item in items]
    for (a, va), (b, vb) in itertools.pairwise(zip(items, values, strict=True)):
        where = f"{a.get('id')} ({key}={a.get(key)!r}) before {b.get('id')} ({key}={b.get(key)!r})"
        if (va is None) != (vb is None):
            missing_first = va is None
            if missing_first != reverse:
                side = "before" if missing_first else "after"
                return f"an item without {key} comes {side} one with it: {where}"
            continue
        if va is None:
            continue
        if _out_of_order(va, vb, descending):
            way = "descending" if descending else "ascending"
            return f"not {way} by {key}: {where}"
    fallback = [str(item.get("id")) for item, v in zip(items, values, strict=True) if v is None]
    if fallback not in (sorted(fallback), sorted(fallback, reverse=True)):
        return f"items without {key} are not ordered by id: {fallback}"
    return None


def _out_of_order(a: Any, b: Any, descending: bool) -> bool:
    """Whether ``a`` may not come before ``b``; strings (labels, urls) are in order when they are
    by code point or ignoring case ("alphabetically" says no more)."""
    if descending:
        a, b = b, a
    if isinstance(a, str) and isinstance(b, str):
        return a > b and a.casefold() > b.casefold()
    return bool(a > b)


def check_order(
    api: Api, listing: Listing, key: str, newest_first: bool, reverse: bool, params: Any, check: str
) -> None:
    operation = api.operation_of(listing.pages[0]) or "GET ?"
    problem = order_problem(listing.items, key, newest_first, reverse, operation)
    if problem:
        query = [p for p in params if p[0] not in (f"tag.{RUN_TAG}", f"tag.{SCOPE_TAG}")]
        raise ContractFailure(f"{problem} (query {query or 'without parameters'})", operation, check)
    reverse_header(api, listing, reverse, check)


# --------------------------------------------------------------------------- 5. sort orders

FLOW_SORT_KEYS = {"created": True, "metadata_updated": True, "label": False}  # key: newest first (date-time)
SOURCE_SORT_KEYS = {"created": True, "updated": True, "label": False}
# Lower-case letters and digits only: "alphabetically" leaves case and punctuation to the server.
SORT_LABELS = st.sampled_from(["alpha", "alphabet", "beta", "beta2", "gamma", "zeta"])


def sort_plans() -> st.SearchStrategy[list[tuple[str | None, str | None, bool]]]:
    """Flows to create, each as (flow label, source label, changed after creation), in any order:
    always one with both labels (changed after creation) and one with neither, so that every
    listing mixes the two."""
    entry = st.tuples(st.one_of(st.none(), SORT_LABELS), st.one_of(st.none(), SORT_LABELS), st.booleans())
    labelled = st.tuples(SORT_LABELS, SORT_LABELS, st.just(True))
    unlabelled = st.tuples(st.none(), st.none(), st.booleans())
    return st.tuples(labelled, unlabelled, st.lists(entry, max_size=3)).flatmap(
        lambda t: st.permutations([t[0], t[1], *t[2]])
    )


def listing_order(ctx: Context) -> None:
    """8.2 order of /flows and /sources (ADR-0052): ``sort_by`` created (the default) and
    metadata_updated / updated newest first, label ascending; resources without the key are ordered
    by id after the others; ``reverse_order`` reverses all of it. Checked on the scope's flows and
    sources (some labelled, some not, some changed after creation), unpaged and paged by small
    limits (the same items, in a valid order, on every page)."""
    api, check = ctx.api, "ordering"

    @ctx.config.settings(examples=3)
    @given(plan=sort_plans(), data=st.data())
    def run(plan: list[tuple[str | None, str | None, bool]], data: st.DataObject) -> None:
        with ctx.case() as (scope, janitor):
            flow_ids, source_ids = [], []
            for flow_label, source_label, _ in plan:
                flow = create_flow(
                    api, scope, janitor, S.video_flow(**({"label": flow_label} if flow_label else {})), check
                )
                flow_ids.append(flow["id"])
                source_ids.append(flow["source_id"])
                for name, value in scope.tags.items():
                    api.expect(api.put(f"/sources/{flow['source_id']}/tags/{name}", value), [204], check)
                if source_label is not None:
                    api.expect(api.put(f"/sources/{flow['source_id']}/label", source_label), [204], check)
            for (_, _, touch), flow_id in zip(plan, flow_ids, strict=True):
                if touch:  # changes metadata_updated (and so its order) after creation
                    api.expect(api.put(f"/flows/{flow_id}/description", "touched"), [204], check)
            for path, keys, want in (("/flows", FLOW_SORT_KEYS, flow_ids), ("/sources", SOURCE_SORT_KEYS, source_ids)):
                for key in (None, *keys):
                    for reverse in (False, True):
                        params = list(scope.filters)
                        params += [("sort_by", key)] if key else []
                        params += [("reverse_order", "true")] if reverse else []
                        limit = data.draw(st.sampled_from([None, 1, 2]), label=f"{path} {key} {reverse} limit")
                        listing = list_all(api, path, params, check, limit=limit)
                        ids = ids_of(listing.items)
                        if sorted(ids) != sorted(want) or len(ids) != len(set(ids)):
                            raise ContractFailure(
                                f"{params} (limit={limit}) listed {ids}, expected {sorted(want)}", f"GET {path}", check
                            )
                        sort_key = key or "created"
                        check_order(api, listing, sort_key, keys[sort_key], reverse, params, check)

    run()


# --------------------------------------------------------------------------- 7. paged service listings


def paged_listings(ctx: Context) -> None:
    """8.2 paging of /service/storage-backends and /flow-delete-requests: small pages (``limit=1``;
    more on a busy store), followed to the end, list what the unpaged listing does, each item once;
    storage backends are ordered by label ascending (unlabelled ones by id, after), delete requests
    by ``sort_by`` created (the default) or expiry, newest first; ``reverse_order`` reverses both
    (ADR-0052); HEAD mirrors GET. GET/HEAD only.

    Delete requests come and go on a live store: the paged listing must hold those that both
    unpaged listings (before and after it) hold, and may hold others."""
    api, check = ctx.api, "paging"
    # path, whether its items come and go, and its sorts: (sort_by sent, key, newest first)
    listings = [
        ("/service/storage-backends", False, [(None, "label", False)]),
        (
            "/flow-delete-requests",
            True,
            [(None, "created", True), ("created", "created", True), ("expiry", "expiry", True)],
        ),
    ]
    for path, volatile, sorts in listings:
        for (sort_by, key, newest_first), reverse in itertools.product(sorts, (False, True)):
            params = ([("sort_by", sort_by)] if sort_by else []) + ([("reverse_order", "true")] if reverse else [])
            before = list_all(api, path, params, check)
            limit = 1 + len(before.items) // 20  # at most ~20 pages on a busy store
            paged = list_all(api, path, params, check, limit=limit)
            after = list_all(api, path, params, check) if volatile else before
            ids, was, now = ids_of(paged.items), set(ids_of(before.items)), set(ids_of(after.items))
            if len(ids) != len(set(ids)):
                raise ContractFailure(f"pages of limit={limit} repeat items: {ids}", f"GET {path}", check)
            if not (was & now <= set(ids) if volatile else set(ids) == was):
                raise ContractFailure(
                    f"with {params or 'no parameters'}, pages of limit={limit} list {ids}; unpaged: {sorted(was)}",
                    f"GET {path}",
                    check,
                )
            for listing in (before, paged):
                check_order(api, listing, key, newest_first, reverse, params, "ordering")
            head_matches_get(api, before.pages[0], check, volatile=volatile)
