"""Objects tag: which flows reference a media object."""

from __future__ import annotations

from typing import Any

from handlers import _params
from tams_server.context import backend


def get_objects(object_id: str, limit: int | None = None, page: str | None = None) -> Any:
    body, flows = backend().get_object(object_id, _params.page_request(limit, page))
    return body, 200, _params.paging_headers(flows)
