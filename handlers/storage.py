"""MediaStorage tag: allocating media objects and the URLs to upload them to."""

from __future__ import annotations

from typing import Any

from backends.base import Json, StorageRequest
from tams_server.context import backend


def post_flows_flow_id_storage(flow_id: str, body: Json | None = None) -> Any:
    body = body or {}
    object_ids = body.get("object_ids")
    request = StorageRequest(
        limit=body.get("limit"),
        object_ids=tuple(object_ids) if object_ids is not None else None,
        storage_id=body.get("storage_id"),
    )
    return backend().allocate_storage(flow_id, request), 201
