"""Checks of what TAMS 8.x added or changed since 7.0 (see the 8.0, 8.1 and 8.2 releases).

Each check is a function of a ``Context`` that raises ``ContractFailure`` on the first problem it
finds, blaming one operation and citing what it breaks; what the spec only recommends is recorded
with ``api.warn``. Each runs in one or a few scoped cases (``ctx.case()``): everything created
carries the case's tags, listings are filtered on them, and the janitor deletes flows and webhooks
at the end. Profiles cannot be deleted (8.2 has no DELETE for them): ``profiles`` creates exactly
one per run, with a fresh id and a label starting ``tams-conformance``.

Webhooks registered here point at a closed port on loopback, so no event ever reaches anyone.
Which version each check needs is said by the test that runs it (``test_conformance_v8``).
"""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from hypothesis import given
from hypothesis import strategies as st

from contract_tests import strategies as S
from contract_tests.api import Api, describe
from contract_tests.checks import allocate, create_flow, new_id, upload
from contract_tests.errors import ContractFailure
from contract_tests.suite import RUN_TAG, SCOPE_TAG, Context, Listing, head_matches_get, list_all
from contract_tests.timeline import ts_to_ns

WEBHOOKS = "/service/webhooks"
WEBHOOK = "/service/webhooks/{webhookId}"
PROFILES = "/service/profiles"
PROFILE = "/service/profiles/{profileId}"
FLOW = "/flows/{flowId}"
SEGMENTS = "/flows/{flowId}/segments"
STORAGE = "POST /flows/{flowId}/storage"
OBJECT = "/objects/{objectId}"
INSTANCES = "/objects/{objectId}/instances"

# A closed port on loopback (discard): registrations point here so that no event reaches anyone.
CLOSED_LOOPBACK = "http://127.0.0.1:9/conformance"
LABEL_PREFIX = "tams-conformance"

_TIMESTAMP = re.compile(r"^-?(0|[1-9][0-9]*):(0|[1-9][0-9]{0,8})$")
_DATETIME = re.compile(
    r"^(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(?:\.(\d{1,9})\d*)?(Z|z|[+-]\d\d:\d\d)$",
)


# --------------------------------------------------------------------------- helpers


def video_flow(**extra: Any) -> dict[str, Any]:
    """A minimal 8.x video flow body (8.0+: ``frame_rate`` is required unless ``vfr``)."""
    essence = {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 25}}
    return {
        "format": S.VIDEO,
        "codec": "video/h264",
        "container": "video/mp2t",
        "essence_parameters": essence,
        **extra,
    }


def get_json(api: Api, path: str, check: str, params: Any = None, why: str = "") -> Any:
    return api.json(api.expect(api.get(path, params=params), [200], check, why), check)


def op(method: str, template: str) -> str:
    return f"{method} {template}"


def contains(actual: Any, expected: Any) -> bool:
    """``actual`` holds everything ``expected`` says (dicts may hold more: defaults the server fills in)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in expected.items())
    return bool(actual == expected)


def instant(text: Any, operation: str | None, what: str) -> tuple[datetime, int]:
    """An RFC 3339 date-time as (UTC second, nanoseconds), comparable to others."""
    match = _DATETIME.match(text) if isinstance(text, str) else None
    if match is None:
        raise ContractFailure(f"{what} is {text!r}, not an RFC 3339 date-time", operation, "shape")
    day, clock, fraction, zone = match.groups()
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}{zone}").astimezone(UTC)
    except ValueError:
        raise ContractFailure(f"{what} is {text!r}, not an RFC 3339 date-time", operation, "shape") from None
    return moment, int((fraction or "0").ljust(9, "0"))


def timestamp_ns(text: Any, operation: str, what: str, check: str) -> int:
    if not isinstance(text, str) or not _TIMESTAMP.match(text):
        raise ContractFailure(f"{what} is {text!r}, not a TAMS timestamp", operation, check)
    return ts_to_ns(text)


def ids_of(items: list[Any]) -> list[Any]:
    return [item.get("id") if isinstance(item, dict) else item for item in items]


def reverse_header(api: Api, listing: Listing, reverse: bool, check: str) -> None:
    """``X-Paging-Reverse-Order`` (declared, optional) is right on every page that has it."""
    for page in listing.pages:
        value = page.headers.get("x-paging-reverse-order")
        if value is not None and value.lower() != str(reverse).lower():
            raise ContractFailure(
                f"X-Paging-Reverse-Order is {value!r}, reverse_order was {reverse}: {describe(page, 200)}",
                api.operation_of(page),
                "paging",
            )


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


# --------------------------------------------------------------------------- 1. webhooks by id


def webhooks_unavailable(ctx: Context) -> str | None:
    """Why webhooks cannot be checked (the service does not offer them), or None."""
    service = get_json(ctx.api, "/service", "service")
    names = [m.get("name") for m in service.get("event_stream_mechanisms") or [] if isinstance(m, dict)]
    if "webhooks" not in names:
        return "the service does not list webhooks in event_stream_mechanisms"
    return None


def webhooks_by_id(ctx: Context) -> None:
    """8.0 webhooks (ADR-0037): POST always creates (201, with a server id and a status); GET and
    HEAD by id; PUT by id answers 201 and replaces the settings; a client may disable a webhook
    (created -> disabled) and enable it again (disabled -> created); the listing is paged and
    filtered by tags (any-of, list-valued tags); 8.2: ordered by url, and reversed with
    ``reverse_order`` (ADR-0052); DELETE by id, then GET/HEAD/DELETE give 404 and the listing drops
    it; PUT to an unknown id gives 404.

    Every registration points at a closed loopback port and is deleted by id at the end.
    """
    api, check = ctx.api, "webhooks"
    with ctx.case() as (scope, janitor):
        kinds: list[Any] = [["even", "both"], "odd", None, "even"]
        created: dict[str, dict[str, Any]] = {}
        for i, kind in enumerate(kinds):
            tags: dict[str, Any] = dict(scope.tags)
            if kind is not None:
                tags["conformance_kind"] = kind
            body: dict[str, Any] = {
                "url": f"{CLOSED_LOOPBACK}/{uuid.uuid4()}",
                "api_key_name": "X-Conformance-Key",
                "api_key_value": uuid.uuid4().hex,
                "events": ["flows/created", "flows/deleted"],
                "tags": tags,
            }
            if i == 1:
                body["status"] = "disabled"
            response = api.post(WEBHOOKS, body)
            janitor.webhook(body, response)
            api.expect(response, [201], check, "POST always creates a registration (8.0)")
            got = api.json(response, check)
            hook_id = got.get("id")
            if not isinstance(hook_id, str) or hook_id in created:
                raise ContractFailure(f"POST gave no new id: {got}", op("POST", WEBHOOKS), check)
            want_status = {"disabled"} if body.get("status") == "disabled" else {"created", "started"}
            _check_webhook(got, body, want_status, op("POST", WEBHOOKS), check)
            created[hook_id] = body

        first, second = list(created)[:2]
        for hook_id, body in created.items():
            want_status = {"disabled"} if hook_id == second else {"created", "started"}
            got = get_json(api, f"{WEBHOOKS}/{hook_id}", check)
            _check_webhook(got, body, want_status, op("GET", WEBHOOK), check)
        api.expect(api.head(f"{WEBHOOKS}/{first}"), [200], check)

        # PUT by id replaces the settings and answers 201; created -> disabled -> created.
        changed = {**created[first], "id": first, "events": ["sources/deleted"], "status": "disabled"}
        response = api.expect(api.put(f"{WEBHOOKS}/{first}", changed), [201], check, "PUT by id answers 201")
        _check_webhook(api.json(response, check), changed, {"disabled"}, op("PUT", WEBHOOK), check)
        _check_webhook(get_json(api, f"{WEBHOOKS}/{first}", check), changed, {"disabled"}, op("GET", WEBHOOK), check)
        enabled = {**changed, "status": "created"}
        response = api.expect(api.put(f"{WEBHOOKS}/{first}", enabled), [201], check, "disabled -> created")
        _check_webhook(api.json(response, check), enabled, {"created", "started"}, op("PUT", WEBHOOK), check)
        created[first] = enabled

        # The listing: paged, filtered by tags (any-of), ordered by url (8.2).
        ordered = sorted(created, key=lambda i: created[i]["url"])
        ordering = ctx.config.unsupported("8.2", "webhook listing order") is None
        for limit in (None, 1):
            for reverse in (False, True) if ordering else (False,):
                params = scope.filters + ([("reverse_order", "true")] if reverse else [])
                listing = list_all(api, WEBHOOKS, params, check, limit=limit)
                ids = ids_of(listing.items)
                if sorted(ids) != sorted(created):
                    raise ContractFailure(
                        f"scoped listing (limit={limit}) gave {ids}, expected {sorted(created)}",
                        op("GET", WEBHOOKS),
                        check,
                    )
                if ordering:
                    want = ordered[::-1] if reverse else ordered
                    if ids != want:
                        raise ContractFailure(
                            f"webhooks are not ordered by url{' (reversed)' if reverse else ''} (limit={limit}):"
                            f" {[created[i]['url'] for i in ids]}",
                            op("GET", WEBHOOKS),
                            "ordering",
                        )
                    reverse_header(api, listing, reverse, check)
                if limit is None:
                    head_matches_get(api, listing.pages[0], check)
        filters = [
            ("tag.conformance_kind", "even"),
            ("tag.conformance_kind", "odd,both"),
            ("tag.conformance_kind", "both"),
            ("tag.conformance_kind", "nothing,odd"),
            ("tag_exists.conformance_kind", "false"),
            ("tag_exists.conformance_kind", "true"),
        ]
        for name, raw in filters:
            want_ids = {i for i, body in created.items() if _tag_selects(body["tags"], name, raw)}
            got_ids = ids_of(list_all(api, WEBHOOKS, [*scope.filters, (name, raw)], check).items)
            if set(got_ids) != want_ids or len(got_ids) != len(set(got_ids)):
                raise ContractFailure(
                    f"{name}={raw} listed {sorted(got_ids)}, expected {sorted(want_ids)}", op("GET", WEBHOOKS), "tags"
                )

        # DELETE by id: gone, and no longer listed.
        api.expect(api.delete(f"{WEBHOOKS}/{first}"), [204], check)
        api.expect(api.get(f"{WEBHOOKS}/{first}"), [404], check, "after DELETE")
        api.expect(api.head(f"{WEBHOOKS}/{first}"), [404], check, "after DELETE")
        left = ids_of(list_all(api, WEBHOOKS, scope.filters, check).items)
        if sorted(left) != sorted(set(created) - {first}):
            raise ContractFailure(f"after deleting {first} the listing holds {left}", op("DELETE", WEBHOOK), check)
        api.expect(api.delete(f"{WEBHOOKS}/{first}"), [404], check, "deleted already")
        api.expect(api.get(f"{WEBHOOKS}/{new_id()}"), [404], check, "an unknown webhook id")
        unknown = new_id()
        body = {**created[second], "id": unknown, "status": "disabled"}
        response = api.put(f"{WEBHOOKS}/{unknown}", body)
        janitor.webhook(body, response)  # should a server create it after all
        api.expect(response, [404], check, "PUT updates an existing webhook; this id is unknown")


def _check_webhook(got: Any, sent: dict[str, Any], statuses: set[str], operation: str, check: str) -> None:
    if not isinstance(got, dict):
        raise ContractFailure(f"webhook body is {got!r}", operation, check)
    problems = [f"{k} is {got.get(k)!r}, sent {sent[k]!r}" for k in ("url", "tags") if got.get(k) != sent[k]]
    events = got.get("events")
    if not isinstance(events, list) or sorted(map(str, events)) != sorted(sent["events"]):
        problems.append(f"events are {events!r}, sent {sent['events']!r}")  # a set: any order
    if sent.get("id") and got.get("id") != sent["id"]:
        problems.append(f"id is {got.get('id')!r}, expected {sent['id']!r}")
    if got.get("status") not in statuses:
        problems.append(f"status is {got.get('status')!r}, expected one of {sorted(statuses)}")
    if problems:
        raise ContractFailure("; ".join(problems) + f": {got}", operation, check)


def _tag_selects(tags: dict[str, Any], name: str, raw: str) -> bool:
    """Whether ``tags`` pass one 8.x tag filter (``tag.{n}`` any-of, list-valued; ``tag_exists.{n}``)."""
    if name.startswith("tag_exists."):
        return (name[len("tag_exists.") :] in tags) == (raw == "true")
    value = tags.get(name[len("tag.") :])
    wanted = set(raw.split(","))
    if value is None:
        return False
    values = value if isinstance(value, list) else [value]
    return bool(wanted & set(values))


# --------------------------------------------------------------------------- 2. profiles


def profiles(ctx: Context) -> None:
    """8.2 flow profiles (ADR-0047): POST by a new id creates (201); POST again with that id is
    refused (400) and the profile stays as it was (profiles are immutable); GET/HEAD by id (404 for
    an unknown id); the listing filters by ``format``, ``codec`` and ``label``; a flow PUT with only
    ``profile_id`` (plus common fields) takes its technical metadata from the profile and names it;
    ``profile_id`` with technical fields, or an unknown ``profile_id``, gives 400 and no flow.

    Profiles cannot be deleted: this check creates ONE per run, with a fresh id and a label that
    starts with ``tams-conformance`` (tagged with the run's tags); flows it creates are deleted.
    """
    api, check = ctx.api, "profiles"
    with ctx.case() as (scope, janitor):
        profile_id = new_id()
        label = f"{LABEL_PREFIX} profile {profile_id}"
        metadata = {
            "format": S.VIDEO,
            "codec": "video/h264",
            "container": "video/mp2t",
            "avg_bit_rate": 6000,
            "essence_parameters": {"frame_width": 1280, "frame_height": 720, "frame_rate": {"numerator": 50}},
        }
        body = {
            "id": profile_id,
            "label": label,
            "description": "created by the TAMS conformance suite; profiles cannot be deleted",
            "tags": dict(scope.tags),
            "flow_metadata": metadata,
        }
        path = f"{PROFILES}/{profile_id}"
        response = api.expect(api.post(path, body), [201], check, "a new profile")
        _check_profile(api.json(response, check), body, op("POST", PROFILE), check)
        again = {**body, "label": f"{LABEL_PREFIX} changed", "flow_metadata": {**metadata, "codec": "video/h265"}}
        api.expect(api.post(path, again), [400], check, "a profile with this id exists (profiles are immutable)")
        _check_profile(get_json(api, path, check, why="after a refused re-POST"), body, op("GET", PROFILE), check)
        api.expect(api.head(path), [200], check)
        unknown = f"{PROFILES}/{new_id()}"
        api.expect(api.get(unknown), [404], check, "an unknown profile")
        api.expect(api.head(unknown), [404], check, "an unknown profile")

        # The listing and its filters.
        queries: list[tuple[list[tuple[str, str]], bool]] = [
            ([("label", label)], True),
            ([("format", S.VIDEO), ("label", label)], True),
            ([("codec", "video/h264"), ("label", label)], True),
            ([("format", S.AUDIO), ("label", label)], False),
            ([("codec", "audio/aac"), ("label", label)], False),
            ([("format", S.VIDEO)], True),
            ([("codec", "video/h264")], True),
        ]
        for params, listed in queries:
            listing = list_all(api, PROFILES, params, check, limit=2 if len(params) == 1 else None)
            ids = ids_of(listing.items)
            if (profile_id in ids) != listed or len(ids) != len(set(ids)):
                raise ContractFailure(
                    f"GET {PROFILES} with {params} {'omits' if listed else 'lists'} profile {profile_id}: {ids}",
                    op("GET", PROFILES),
                    "filters",
                )
            for item in listing.items:
                problem = _profile_mismatch(item, params)
                if problem:
                    raise ContractFailure(f"with {params}: {problem}", op("GET", PROFILES), "filters")
            if params == [("label", label)]:
                head_matches_get(api, listing.pages[0], check)

        # A flow made from the profile takes its technical metadata.
        common = {"profile_id": profile_id, "label": f"{LABEL_PREFIX} from profile"}
        response_flow = create_flow(api, scope, janitor, common, check)
        flow_id = response_flow["id"]
        flow = get_json(api, f"/flows/{flow_id}", check)
        if flow.get("profile_id") != profile_id or not contains(flow, metadata):
            raise ContractFailure(
                f"a flow PUT with profile_id {profile_id} should carry {metadata} and the profile_id: {flow}",
                op("PUT", FLOW),
                check,
            )
        listed = ids_of(list_all(api, "/flows", [*scope.filters, ("profile_id", profile_id)], check).items)
        if listed != [flow_id]:
            raise ContractFailure(
                f"profile_id={profile_id} listed {listed}, expected [{flow_id}]", "GET /flows", "filters"
            )

        # profile_id with technical fields, or an unknown profile: 400, and no flow.
        for extra, why in (
            ({"profile_id": profile_id, "codec": "video/h264"}, "profile_id together with technical metadata"),
            ({"profile_id": profile_id, **metadata}, "profile_id together with technical metadata"),
            ({"profile_id": new_id()}, "an unknown profile_id"),
        ):
            refused_id = new_id()
            janitor.flow(refused_id)
            refused = {**extra, "id": refused_id, "source_id": new_id(), "tags": dict(scope.tags)}
            api.expect(api.put(f"/flows/{refused_id}", refused), [400], check, why)
            api.expect(api.get(f"/flows/{refused_id}"), [404], check, f"the PUT was refused ({why})")


def _check_profile(got: Any, sent: dict[str, Any], operation: str, check: str) -> None:
    if not isinstance(got, dict) or got.get("id") != sent["id"]:
        raise ContractFailure(f"profile body is {got!r}, expected id {sent['id']}", operation, check)
    problems = [
        f"{k} is {got.get(k)!r}, sent {sent[k]!r}" for k in ("label", "description", "tags") if got.get(k) != sent[k]
    ]
    if not contains(got.get("flow_metadata"), sent["flow_metadata"]):
        problems.append(f"flow_metadata is {got.get('flow_metadata')!r}, sent {sent['flow_metadata']!r}")
    if problems:
        raise ContractFailure("; ".join(problems), operation, check)


def _profile_mismatch(item: Any, params: list[tuple[str, str]]) -> str | None:
    if not isinstance(item, dict):
        return f"listed {item!r}"
    metadata = item.get("flow_metadata") or {}
    for name, value in params:
        got = item.get("label") if name == "label" else metadata.get(name)
        if got != value:
            return f"profile {item.get('id')} has {name} {got!r}"
    return None


# --------------------------------------------------------------------------- 3. object instances


def object_instances(ctx: Context) -> None:
    """8.0 object instances (ADR-0038, ADR-0042): POST /objects/{id}/instances with ``{url, label}``
    registers an uncontrolled copy, listed once with its label in the object's ``get_urls``
    (GET /objects/{id}) and in its segment's, marked ``controlled: false`` with ``verbose_storage``
    (unset means controlled) and selectable by ``accept_get_urls``; the other instances stay as they
    were; DELETE /objects/{id}/instances?label= removes exactly that one."""
    api, check = ctx.api, "instances"
    with ctx.case() as (scope, janitor):
        flow = create_flow(api, scope, janitor, video_flow(), check)
        segments = f"/flows/{flow['id']}/segments"
        (media_object,) = allocate(api, flow["id"], 1, check)
        object_id = media_object["object_id"]
        upload(api, media_object, b"conformance instance", check)
        api.expect(api.post(segments, {"object_id": object_id, "timerange": "[0:0_1:0)"}), [201], check)
        path = f"/objects/{object_id}"
        before = _urls(get_json(api, path, check), op("GET", OBJECT), check)
        if not before:
            raise ContractFailure(f"a registered object has no get_urls: {path}", op("GET", OBJECT), check)

        label = f"{LABEL_PREFIX}-{uuid.uuid4()}"
        url = f"{CLOSED_LOOPBACK}/{uuid.uuid4()}"
        api.expect(api.post(f"{path}/instances", {"url": url, "label": label}), [201], check)
        for where, operation, urls in _where_listed(api, flow["id"], object_id, check, verbose=True):
            mine = [u for u in urls if u.get("url") == url]
            if len(mine) != 1 or mine[0].get("label") != label:
                raise ContractFailure(
                    f"{where}: the instance {url} (label {label}) should be listed once with its label: {urls}",
                    operation,
                    check,
                )
            if mine[0].get("controlled") is not False:
                raise ContractFailure(
                    f"{where} (verbose_storage): an uncontrolled instance must say controlled: false"
                    f" (unset means true): {mine[0]}",
                    operation,
                    check,
                    "the spec's object-core.json: `controlled` unset means the store manages the URL",
                )
            if _labels(u for u in urls if u.get("url") != url) != _labels(before):
                raise ContractFailure(f"{where}: other get_urls changed: {urls}, before {before}", operation, check)
        only = list_all(api, segments, [("accept_get_urls", label)], check, reverse=False).items
        if [[u.get("url") for u in s.get("get_urls") or []] for s in only] != [[url]]:
            raise ContractFailure(
                f"accept_get_urls={label} should keep only the instance's URL: {only}", op("GET", SEGMENTS), check
            )

        api.expect(api.delete(f"{path}/instances", params={"label": label}), [204], check)
        for where, operation, urls in _where_listed(api, flow["id"], object_id, check):
            if any(u.get("url") == url or u.get("label") == label for u in urls):
                raise ContractFailure(f"{where}: the instance is still listed after DELETE: {urls}", operation, check)
            if _labels(urls) != _labels(before):
                raise ContractFailure(
                    f"{where}: deleting the instance {label} left {urls}, before it {before}",
                    op("DELETE", INSTANCES),
                    check,
                )


def _labels(urls: Any) -> list[str]:
    """What a list of get_urls holds, without the parts that change per request (signatures)."""
    return sorted(str(u.get("label")) for u in urls)


def _urls(body: Any, operation: str, check: str) -> list[dict[str, Any]]:
    urls = body.get("get_urls") if isinstance(body, dict) else None
    if urls is None:
        return []
    if not isinstance(urls, list) or not all(isinstance(u, dict) for u in urls):
        raise ContractFailure(f"get_urls is {urls!r}", operation, check)
    return urls


def _where_listed(
    api: Api, flow_id: str, object_id: str, check: str, verbose: bool = False
) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """The object's get_urls as GET /objects/{id} and the segment listing give them (with
    ``verbose_storage=true``: with storage details such as ``controlled``)."""
    params = [("verbose_storage", "true")] if verbose else []
    by_object = _urls(get_json(api, f"/objects/{object_id}", check, params), op("GET", OBJECT), check)
    listing = list_all(api, f"/flows/{flow_id}/segments", params, check, reverse=False).items
    mine = [s for s in listing if s.get("object_id") == object_id]
    if len(mine) != 1:
        raise ContractFailure(f"the segment of object {object_id} is missing: {listing}", op("GET", SEGMENTS), check)
    return [
        (f"GET /objects/{object_id}", op("GET", OBJECT), by_object),
        ("the segment listing", op("GET", SEGMENTS), _urls(mine[0], op("GET", SEGMENTS), check)),
    ]


# --------------------------------------------------------------------------- 4. init segments


def init_segments(ctx: Context) -> None:
    """8.2 init segments (ADR-0045): on a flow with ``init_segments: true``, a segment registered
    with ``init_object_id`` is listed with ``init_object.object_id``; the init object's and media
    object's get_urls give back their bytes; ``accept_get_urls`` and ``presigned`` filter
    ``init_object.get_urls`` too; GET /objects/{media} names the init object and
    GET /objects/{init} answers 200 with the flow in ``referenced_by_flows``; ``init_segments=true``
    selects the flow. Using the init object as media should be refused (a warning otherwise)."""
    api, check = ctx.api, "init-segments"
    with ctx.case() as (scope, janitor):
        essence = {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 25}, "init_segments": True}
        body = {**video_flow(container="video/mp4"), "essence_parameters": essence}
        flow = create_flow(api, scope, janitor, body, check)
        segments = f"/flows/{flow['id']}/segments"
        media, init = allocate(api, flow["id"], 2, check)
        payloads = {media["object_id"]: b"conformance media segment", init["object_id"]: b"conformance init segment"}
        upload(api, media, payloads[media["object_id"]], check)
        upload(api, init, payloads[init["object_id"]], check)
        segment = {"object_id": media["object_id"], "init_object_id": init["object_id"], "timerange": "[0:0_2:0)"}
        api.expect(api.post(segments, segment), [201], check, "a segment with init_object_id")

        listing = list_all(api, segments, [], check, reverse=False).items
        if len(listing) != 1 or listing[0].get("object_id") != media["object_id"]:
            raise ContractFailure(f"the segment listing is {listing}", op("GET", SEGMENTS), check)
        listed_init = listing[0].get("init_object")
        if not isinstance(listed_init, dict) or listed_init.get("object_id") != init["object_id"]:
            raise ContractFailure(
                f"the segment should carry init_object.object_id {init['object_id']}: {listing[0]}",
                op("GET", SEGMENTS),
                check,
            )
        for owner, object_id in ((listing[0], media["object_id"]), (listed_init, init["object_id"])):
            for entry in _urls(owner, op("GET", SEGMENTS), check):
                got = api.media("GET", entry["url"])
                if got.status_code != 200 or got.content != payloads[object_id]:
                    raise ContractFailure(
                        f"get_url {entry['url']} of object {object_id} gave {got.status_code}, {len(got.content)} bytes"
                        f" (uploaded {len(payloads[object_id])})",
                        op("GET", SEGMENTS),
                        "media",
                    )

        # The URL filters apply to init_object.get_urls too (8.2).
        for params in ([("accept_get_urls", "")], [("presigned", "true")], [("presigned", "false")]):
            for item in list_all(api, segments, params, check, reverse=False).items:
                for owner in (item, item.get("init_object") or {}):
                    urls = _urls(owner, op("GET", SEGMENTS), check)
                    name, value = params[0]
                    if (name == "accept_get_urls" and urls) or (
                        name == "presigned" and any(bool(u.get("presigned")) != (value == "true") for u in urls)
                    ):
                        raise ContractFailure(
                            f"{name}={value} should apply to get_urls and init_object.get_urls: {item}",
                            op("GET", SEGMENTS),
                            check,
                        )

        media_info = get_json(api, f"/objects/{media['object_id']}", check)
        named = media_info.get("init_object")
        if not isinstance(named, dict) or named.get("id") != init["object_id"]:
            raise ContractFailure(
                f"GET /objects/{media['object_id']} should name init object {init['object_id']}: {media_info}",
                op("GET", OBJECT),
                check,
            )
        init_info = get_json(api, f"/objects/{init['object_id']}", check, why="an init object in use")
        if flow["id"] not in (init_info.get("referenced_by_flows") or []):
            raise ContractFailure(
                f"init object {init['object_id']} should be referenced by flow {flow['id']}: {init_info}",
                op("GET", OBJECT),
                check,
            )
        for flag, want in (("true", [flow["id"]]), ("false", [])):
            listed = ids_of(list_all(api, "/flows", [*scope.filters, ("init_segments", flag)], check).items)
            if listed != want:
                raise ContractFailure(f"init_segments={flag} listed {listed}, expected {want}", "GET /flows", "filters")

        misuse = {"object_id": init["object_id"], "timerange": "[10:0_12:0)"}
        response = api.expect(api.post(segments, misuse), [201, 400], check)
        if response.status_code == 201:
            api.warn(
                "an init object was accepted as a media object (should be refused)",
                op("POST", SEGMENTS),
                check,
                "the spec: an object is either media or init, never both (SHOULD refuse the other use)",
            )


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
                    api, scope, janitor, video_flow(**({"label": flow_label} if flow_label else {})), check
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


# --------------------------------------------------------------------------- 6. tags: any-of, list values

TAG = "conformance_pick"
TAG_VALUES = ["a", "b", "ab", "c"]
list_tag_values = st.lists(st.sampled_from(TAG_VALUES), min_size=1, max_size=3, unique=True)
tag_values = st.one_of(
    st.none(), st.sampled_from(TAG_VALUES), st.lists(st.sampled_from(TAG_VALUES), max_size=3, unique=True)
)


def tag_filters(ctx: Context) -> None:
    """8.0 tags (ADR-0040): tag values are strings or arrays of strings; ``tag.{name}=a,b`` selects
    flows and sources whose tag (or any element of a list-valued tag) equals ``a`` or ``b``, with no
    partial matches; 8.2: GET/PUT /flows|sources/{id}/tags/{name} round-trip array values."""
    api, check = ctx.api, "tags"
    # 8.0 and 8.1 declared the single-tag GET/PUT bodies as strings only.
    lists_in_single_tags = ctx.config.unsupported("8.2", "list-valued single-tag endpoints") is None

    @ctx.config.settings(examples=5)
    @given(
        # At least one flow with a list-valued tag, then any.
        values=st.tuples(list_tag_values, st.lists(tag_values, max_size=3)).map(lambda t: [t[0], *t[1]]),
        queries=st.lists(
            st.lists(st.sampled_from([*TAG_VALUES, "zz"]), min_size=1, max_size=3), min_size=1, max_size=3
        ),
    )
    def run(values: list[Any], queries: list[list[str]]) -> None:
        with ctx.case() as (scope, janitor):
            flows: dict[str, Any] = {}
            sources: dict[str, Any] = {}
            for value in values:
                extra = {"tags": {TAG: value}} if value is not None else {}
                flow = create_flow(api, scope, janitor, video_flow(**extra), check)
                flows[flow["id"]] = value
                for name, scope_value in scope.tags.items():
                    api.expect(api.put(f"/sources/{flow['source_id']}/tags/{name}", scope_value), [204], check)
                if isinstance(value, list) and not lists_in_single_tags:
                    value = None  # 8.0 and 8.1 declared the single-tag PUT body as a string
                if value is not None:
                    api.expect(api.put(f"/sources/{flow['source_id']}/tags/{TAG}", value), [204], check)
                sources[flow["source_id"]] = value
            for flow_id, value in flows.items():
                got = get_json(api, f"/flows/{flow_id}", check).get("tags") or {}
                if got.get(TAG) != value:
                    raise ContractFailure(
                        f"flow {flow_id} tag {TAG} is {got.get(TAG)!r}, sent {value!r}", "PUT /flows/{flowId}", check
                    )
            # Always one query whose first value matches nothing: any-of, not just the first value.
            for query in [*queries, ["zz", *TAG_VALUES[::-1]]]:
                raw = ",".join(query)
                for path, made in (("/flows", flows), ("/sources", sources)):
                    want = {i for i, v in made.items() if v is not None and _tag_selects({TAG: v}, f"tag.{TAG}", raw)}
                    got_ids = ids_of(list_all(api, path, [*scope.filters, (f"tag.{TAG}", raw)], check).items)
                    if set(got_ids) != want or len(got_ids) != len(set(got_ids)):
                        tagged = {i: made[i] for i in made}
                        raise ContractFailure(
                            f"tag.{TAG}={raw} listed {sorted(got_ids)}, expected {sorted(want)} (tags: {tagged})",
                            f"GET {path}",
                            check,
                        )
            if not lists_in_single_tags:
                return
            first = next(iter(flows))
            source = next(iter(sources))
            for value in (["x", "y,z", "a"], "plain", []):
                _tag_round_trip(api, f"/flows/{first}", value, check, "PUT /flows/{flowId}/tags/{name}")
                _tag_round_trip(api, f"/sources/{source}", value, check, "PUT /sources/{sourceId}/tags/{name}")

    run()


def _tag_round_trip(api: Api, base: str, value: Any, check: str, operation: str) -> None:
    """PUT a tag value (string or array) and read it back through the tag, the tags and the resource."""
    name = f"{TAG}_rt"
    api.expect(api.put(f"{base}/tags/{name}", value), [204], check)
    single = get_json(api, f"{base}/tags/{name}", check)
    every = get_json(api, f"{base}/tags", check)
    whole = get_json(api, base, check).get("tags") or {}
    for where, got in (("the tag", single), ("the tags", every.get(name)), ("the resource", whole.get(name))):
        if got != value:
            raise ContractFailure(f"{where} reads {got!r} after PUT {value!r} at {base}/tags/{name}", operation, check)


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
            head_matches_get(api, before.pages[0], check)


# --------------------------------------------------------------------------- 8. presigned or plain put_urls


def presigned_uploads(ctx: Context) -> None:
    """8.2 selectable put_urls (ADR-0054): POST /flows/{id}/storage with ``presigned: true`` gives
    presigned put_urls (``media_objects[].presigned: true``), with ``false`` plain ones (unset or
    false); an upload through each works and the bytes come back through the segment's get_urls
    (the default ones and those of ``presigned=false``). A plain URL of another origin that wants
    credentials of its own (not the API's) gets a warning: the spec only recommends against it.
    A store that hands out presigned URLs must say ``min_presigned_url_timeout`` in /service."""
    api, check = ctx.api, "storage"
    service = get_json(api, "/service", "service")
    signs = "min_presigned_url_timeout" in service
    with ctx.case() as (scope, janitor):
        flow = create_flow(api, scope, janitor, video_flow(), check)
        segments = f"/flows/{flow['id']}/segments"
        payloads: dict[str, bytes] = {}
        for i, presigned in enumerate((True, False)):
            response = api.expect(
                api.post(f"/flows/{flow['id']}/storage", {"limit": 1, "presigned": presigned}), [201], check
            )
            objects = api.json(response, check).get("media_objects")
            if not isinstance(objects, list) or len(objects) != 1:
                raise ContractFailure(f"asked for 1 media object: {describe(response)}", STORAGE, check)
            (media_object,) = objects
            said = media_object.get("presigned") is True  # unset means not presigned
            if said != presigned:
                message = f"asked for presigned={presigned}, the put_url says presigned={said}: {media_object}"
                cite = "the spec's flow-storage-post.json: `presigned` true gives presigned put_urls, false plain ones"
                if presigned and not signs:
                    api.warn(message + " (the service gives no min_presigned_url_timeout)", STORAGE, check, cite)
                else:
                    raise ContractFailure(message, STORAGE, check, cite)
            if said and not signs:
                raise ContractFailure(
                    "a presigned put_url, but /service has no min_presigned_url_timeout",
                    "GET /service",
                    "service",
                    "the spec's service.json: min_presigned_url_timeout MUST be set by stores that presign URLs",
                )
            payload = f"conformance presigned={presigned} {uuid.uuid4()}".encode()
            put_url = media_object["put_url"]
            headers = dict(put_url.get("headers") or {})
            if put_url.get("content-type"):
                headers["Content-Type"] = put_url["content-type"]
            sent = api.media("PUT", put_url["url"], content=payload, headers=headers)
            if _needs_other_credentials(api, put_url["url"], said, sent, "put_url"):
                continue  # nothing uploaded: nothing to read back
            if not 200 <= sent.status_code < 300:
                raise ContractFailure(f"upload to the put_url failed: {describe(sent)}", "PUT put_url", check)
            payloads[media_object["object_id"]] = payload
            body = {"object_id": media_object["object_id"], "timerange": f"[{i}:0_{i + 1}:0)"}
            api.expect(api.post(segments, body), [201], check)
        # Every get_url gives the bytes back: the default ones, and the plain ones asked for by
        # presigned=false (which may be none: a store need not have plain URLs).
        for params in ([], [("presigned", "false")]):
            listing = list_all(api, segments, params, check, reverse=False).items
            if sorted(s.get("object_id") for s in listing) != sorted(payloads):
                raise ContractFailure(
                    f"segments are {listing}, registered {sorted(payloads)}", op("GET", SEGMENTS), check
                )
            for segment in listing:
                _downloads(api, segment, payloads[segment["object_id"]], signs, required=not params)


def _downloads(api: Api, segment: dict[str, Any], want: bytes, signs: bool, required: bool) -> None:
    """Each of the segment's get_urls gives ``want``; presigned ones need min_presigned_url_timeout."""
    urls = _urls(segment, op("GET", SEGMENTS), "media")
    if required and not urls:
        raise ContractFailure(f"segment without get_urls: {segment}", op("GET", SEGMENTS), "media")
    for entry in urls:
        got = api.media("GET", entry["url"])
        if _needs_other_credentials(api, entry["url"], bool(entry.get("presigned")), got, "get_url"):
            continue
        if got.status_code != 200 or got.content != want:
            raise ContractFailure(
                f"get_url {entry['url']} gave {got.status_code}, {len(got.content)} bytes; uploaded {want!r}",
                op("GET", SEGMENTS),
                "media",
            )
        if entry.get("presigned") and not signs:
            raise ContractFailure(
                f"a presigned get_url ({entry['url']}), but /service has no min_presigned_url_timeout",
                "GET /service",
                "service",
                "the spec's service.json: min_presigned_url_timeout MUST be set by stores that presign URLs",
            )


def _needs_other_credentials(api: Api, url: str, presigned: bool, response: Any, what: str) -> bool:
    """Whether ``response`` refused a plain URL of another origin for want of credentials (the
    suite sends API credentials only to the API's origin): allowed, but not recommended."""
    parts = urlsplit(url)
    same_origin = not parts.scheme or (parts.scheme, parts.netloc) == (api.base.scheme, api.base.netloc)
    if presigned or same_origin or response.status_code not in (401, 403):
        return False
    api.warn(
        f"a plain {what} of another origin ({parts.scheme}://{parts.netloc}) answers {response.status_code}"
        " without out-of-band credentials",
        op("GET", SEGMENTS) if what == "get_url" else STORAGE,
        "storage",
        "the spec: services SHOULD NOT solely require out-of-band credentials for plain URLs of other origins",
    )
    return True


# --------------------------------------------------------------------------- 9. /service timeouts


def service_timeouts(ctx: Context) -> None:
    """8.1 /service (ADR-0044): ``min_object_timeout`` is present and at least ``300:0``;
    ``min_presigned_url_timeout``, when present, is at least ``30:0`` and at most
    ``min_object_timeout``. GET only."""
    api, check = ctx.api, "service"
    operation = "GET /service"
    service = get_json(api, "/service", check)
    if "min_object_timeout" not in service:
        raise ContractFailure(f"no min_object_timeout (required since 8.1): {service}", operation, check)
    objects = timestamp_ns(service["min_object_timeout"], operation, "min_object_timeout", check)
    if objects < ts_to_ns("300:0"):
        raise ContractFailure(
            f"min_object_timeout is {service['min_object_timeout']}, less than 300:0",
            operation,
            check,
            "the spec's service.json: min_object_timeout MUST be 300:0 or greater",
        )
    if "min_presigned_url_timeout" in service:
        urls = timestamp_ns(service["min_presigned_url_timeout"], operation, "min_presigned_url_timeout", check)
        cite = "the spec's service.json: min_presigned_url_timeout MUST be 30:0 or more and at most min_object_timeout"
        if urls < ts_to_ns("30:0"):
            raise ContractFailure(
                f"min_presigned_url_timeout is {service['min_presigned_url_timeout']}, less than 30:0",
                operation,
                check,
                cite,
            )
        if urls > objects:
            raise ContractFailure(
                f"min_presigned_url_timeout {service['min_presigned_url_timeout']} exceeds min_object_timeout"
                f" {service['min_object_timeout']}",
                operation,
                check,
                cite,
            )


# --------------------------------------------------------------------------- 10. unregistered objects


def unregistered_objects(ctx: Context) -> None:
    """8.1: an object id allocated by /flows/{id}/storage but not yet on a segment is answered 404
    by GET/HEAD /objects/{id} and by POST/DELETE /objects/{id}/instances (a MUST); once a segment
    uses it, GET answers 200 with the flow in ``referenced_by_flows``."""
    api, check = ctx.api, "objects"
    with ctx.case() as (scope, janitor):
        flow = create_flow(api, scope, janitor, video_flow(), check)
        (media_object,) = allocate(api, flow["id"], 1, check)
        object_id = media_object["object_id"]
        path = f"/objects/{object_id}"
        why = "allocated by /storage, not yet on a segment (8.1: MUST be 404)"
        api.expect(api.get(path), [404], check, why)
        api.expect(api.head(path), [404], check, why)
        instance = {"url": f"{CLOSED_LOOPBACK}/{uuid.uuid4()}", "label": f"{LABEL_PREFIX}-{uuid.uuid4()}"}
        api.expect(api.post(f"{path}/instances", instance), [404], check, why)
        api.expect(api.delete(f"{path}/instances", params={"label": instance["label"]}), [404], check, why)
        api.expect(api.get(f"/objects/{new_id()}"), [404], check, "an id nobody allocated")
        upload(api, media_object, b"conformance registered", check)
        segment = {"object_id": object_id, "timerange": "[0:0_1:0)"}
        api.expect(api.post(f"/flows/{flow['id']}/segments", segment), [201], check)
        body = get_json(api, path, check, why="the object is on a segment now")
        if body.get("id") != object_id or flow["id"] not in (body.get("referenced_by_flows") or []):
            raise ContractFailure(
                f"object {object_id} should be referenced by flow {flow['id']}: {body}", op("GET", OBJECT), check
            )
        api.expect(api.head(path), [200], check, "the object is on a segment now")


__all__ = [
    "init_segments",
    "listing_order",
    "object_instances",
    "paged_listings",
    "presigned_uploads",
    "profiles",
    "service_timeouts",
    "tag_filters",
    "unregistered_objects",
    "webhooks_by_id",
    "webhooks_unavailable",
]
