"""Flow profiles (TAMS 8.x, ADR 0047 / AppNote 0020): one home for their rules.

A profile is immutable, reusable technical flow metadata. A flow PUT may name a profile
instead of describing its technical metadata; the store then *expands* the profile into the
flow at write time, so a stored flow always carries its full technical description (reads,
filters and older API versions need nothing special) and keeps ``profile_id`` as the link.

Decisions where the spec leaves room:

- Technical metadata is ``TECHNICAL_FLOW_FIELDS`` (the fields of flow-technical.json plus
  ``format`` and ``essence_parameters``). ``max_bit_rate`` is not technical: it is measured
  per flow (AppNote 0020) and stays editable on a profiled flow.
- A PUT with ``profile_id`` and any technical field is refused (400), even a partial one the
  schema lets through; an unknown profile is refused (400).
- ``profile_id: ""`` unlinks: the flow is stored from the body's own technical description,
  without ``profile_id`` (``""`` is never stored or shown: flow-get's ``profile_id`` is a uuid).
  The schema only accepts ``""`` next to a full technical description, so there is always one.
- A PUT without ``profile_id`` of a flow linked to a profile (e.g. a client of an API version
  without profiles that read the flow, changed its label and wrote it back) keeps the link
  when its technical metadata is the stored one; changing technical metadata that way is
  refused (400): unlink with ``profile_id: ""`` first.
- ``avg_bit_rate`` comes from the profile: setting or removing it on its own on a profiled flow
  is refused (400).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from backends.base import Json, ProfileQuery, current_actor
from backends.errors import BadRequest, Forbidden
from backends.rules import ensure_writable

# What a profile describes, and what a flow PUT naming a profile must leave out.
TECHNICAL_FLOW_FIELDS = (
    "format",
    "codec",
    "container",
    "avg_bit_rate",
    "segment_duration",
    "container_mapping",
    "essence_parameters",
)
# Fields that follow the profile: refused when set on their own on a profiled flow.
PROFILED_FLOW_FIELDS = ("avg_bit_rate",)
# Profile fields the server sets; ignored in a POST.
SERVER_MANAGED_PROFILE_FIELDS = ("created",)


def new_profile(profile_id: str, body: Json, stamp: str) -> Json:
    """The profile to store for a POST (the caller refuses an existing id)."""
    if body.get("id") != profile_id:
        raise BadRequest(f"profile id in the path ({profile_id}) does not match the body ({body.get('id')})")
    metadata = body.get("flow_metadata") or {}
    if metadata.get("format") is None:
        raise BadRequest("flow_metadata needs a format")
    profile = {k: v for k, v in body.items() if k not in SERVER_MANAGED_PROFILE_FIELDS}
    profile["flow_metadata"] = {k: v for k, v in metadata.items() if k in TECHNICAL_FLOW_FIELDS}
    profile["created"] = stamp
    if current_actor() is not None:
        profile["created_by"] = current_actor()
    return profile


def already_exists(profile_id: str) -> BadRequest:
    return BadRequest(f"profile {profile_id} already exists; profiles are immutable: create a new one")


def matches_profile(profile: Json, query: ProfileQuery) -> bool:
    metadata = profile.get("flow_metadata") or {}
    return (
        (query.format is None or metadata.get("format") == query.format)
        and (query.codec is None or metadata.get("codec") == query.codec)
        and (query.label is None or profile.get("label") == query.label)
    )


def _technical(flow: Json) -> Json:
    return {k: flow[k] for k in TECHNICAL_FLOW_FIELDS if k in flow}


def expand_flow(body: Json, existing: Json | None, profile_of: Callable[[str], Json | None]) -> Json:
    """The flow body to store for a PUT, with a named profile expanded (see the module rules)."""
    if existing is not None:
        ensure_writable(existing)  # a read-only flow refuses any PUT (403) before its content is judged
    profile_id = body.get("profile_id")
    if profile_id == "":
        return {k: v for k, v in body.items() if k != "profile_id"}
    if profile_id is None:
        linked = (existing or {}).get("profile_id")
        if not linked:
            return body
        if _technical(body) != _technical(existing or {}):
            raise BadRequest(
                f"flow is linked to profile {linked}: its technical metadata cannot change; "
                'unlink it first (PUT the flow with profile_id "")'
            )
        return {**body, "profile_id": linked}
    mixed = [k for k in TECHNICAL_FLOW_FIELDS if k in body]
    if mixed:
        raise BadRequest(f"a flow with profile_id takes its technical metadata from the profile; remove {mixed}")
    profile = profile_of(profile_id)
    if profile is None:
        raise BadRequest(f"profile {profile_id} does not exist")
    return {**body, **copy.deepcopy(profile["flow_metadata"])}


def check_field_change(flow: Json, name: str, value: Any) -> None:
    """Refuse setting (``value``) or removing (None) on its own a field a profiled flow takes from
    its profile: 400 for a PUT, which declares it; 403 for a DELETE, which declares only 403 ("you
    do not have permission to modify this Flow") besides 204 and 404."""
    if name in PROFILED_FLOW_FIELDS and flow.get("profile_id"):
        refusal = Forbidden if value is None else BadRequest
        raise refusal(
            f"{name} of flow {flow['id']} comes from profile {flow['profile_id']}; "
            'unlink it first (PUT the flow with profile_id "")'
        )
