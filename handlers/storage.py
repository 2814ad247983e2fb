"""MediaStorage tag: allocating media objects and the URLs to upload them to."""

from __future__ import annotations

from typing import Any

from backends.base import Json, StorageRequest
from handlers.versions import dialect
from tams_server.context import backend


def post_flows_flow_id_storage(flow_id: str, body: Json | None = None) -> Any:
    body = body or {}
    object_ids = body.get("object_ids")
    request = StorageRequest(
        limit=body.get("limit"),
        object_ids=tuple(object_ids) if object_ids is not None else None,
        storage_id=body.get("storage_id"),
        content_type=body.get("content_type"),
        presigned=body.get("presigned", True),  # the default: 7.0 uploaders expect presigned URLs
    )
    return dialect().storage(backend().allocate_storage(flow_id, request)), 201
