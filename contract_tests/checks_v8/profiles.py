"""8.2 flow profiles (ADR-0047). Profiles cannot be deleted: one is created per run."""

from __future__ import annotations

from typing import Any

from contract_tests import strategies as S
from contract_tests.checks import create_flow, new_id
from contract_tests.checks_v8.common import (
    FLOW,
    LABEL_PREFIX,
    PROFILE,
    PROFILES,
    contains,
    get_json,
    ids_of,
    op,
)
from contract_tests.errors import ContractFailure
from contract_tests.suite import Context, head_matches_get, list_all

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
