"""Profiles tag (TAMS 8.x): immutable technical flow metadata that flows can be created from."""

from __future__ import annotations

from typing import Any

from backends.base import Json, ProfileQuery
from handlers import _params
from tams_server.context import backend

# Profiles are listed by id; the page key names this order.
ORDER = "id"


def get_profiles(
    format_: str | None = None,
    codec: str | None = None,
    label: str | None = None,
    limit: int | None = None,
    page: str | None = None,
) -> Any:
    query = ProfileQuery(format=format_, codec=codec, label=label)
    result = backend().list_profiles(query, _params.page_request(limit, page, ORDER))
    return result.items, 200, _params.paging_headers(result, ORDER)


def get_profiles_profile_id(profile_id: str) -> Any:
    return backend().get_profile(profile_id), 200


def post_profiles_profile_id(profile_id: str, body: Json) -> Any:
    return backend().create_profile(profile_id, body), 201
