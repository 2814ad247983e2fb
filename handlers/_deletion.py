"""Shaping the answer to a delete: 204 when done, 202 with a Location when it runs on."""

from __future__ import annotations

from typing import Any

from backends.base import Json
from tams_server import context


def deletion_response(request: Json | None) -> Any:
    if request is None:
        return None, 204
    location = f"{context.api_url()}/flow-delete-requests/{request['id']}"
    return request, 202, {"Location": location}
