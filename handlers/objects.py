"""Objects tag: a media object, the flows that reference it, and (8.x) its instances."""

from __future__ import annotations

from typing import Any

from backends.base import Json
from handlers import _params
from handlers.versions import dialect
from tams_server.context import backend


def get_objects(
    object_id: str,
    limit: int | None = None,
    page: str | None = None,
    presigned: bool | None = None,
    verbose_storage: bool | None = None,
) -> Any:
    d = dialect()
    urls = _params.url_options(presigned, verbose_storage)
    flow_tags = _params.tag_filter("flow_tag.", "flow_tag_exists.")
    body, flows = backend().get_object(object_id, _params.page_request(limit, page), urls, flow_tags)
    return d.object(body), 200, _params.paging_headers(flows)


def post_objects_instances(object_id: str, body: Json) -> Any:
    backend().add_object_instance(object_id, body)
    return None, 201


def delete_objects_instances(object_id: str, storage_id: str | None = None, label: str | None = None) -> Any:
    backend().delete_object_instance(object_id, storage_id, label)
    return None, 204
