"""8.0 webhooks by id (ADR-0037), with ``status`` and its transitions."""

from __future__ import annotations

import uuid
from typing import Any

from contract_tests.checks import new_id
from contract_tests.checks_v8.common import (
    WEBHOOK,
    WEBHOOKS,
    get_json,
    ids_of,
    op,
    reverse_header,
    tag_selects,
)
from contract_tests.errors import ContractFailure
from contract_tests.suite import Context, head_matches_get, list_all, loopback_url, refused_receiver

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
                "url": loopback_url(),
                "api_key_name": "X-Conformance-Key",
                "api_key_value": uuid.uuid4().hex,
                "events": ["flows/created", "flows/deleted"],
                "tags": tags,
            }
            if i == 1:
                body["status"] = "disabled"
            response = api.post(WEBHOOKS, body)
            if refused_receiver(api, response):
                return
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
            want_ids = {i for i, body in created.items() if tag_selects(body["tags"], name, raw)}
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
