"""Sources tag: sources are created and deleted with their flows; their metadata is editable."""

from __future__ import annotations

from typing import Any

from backends.base import SourceQuery
from handlers import _params
from handlers._properties import source_field, source_tags
from handlers.versions import dialect
from tams_server.context import backend


def get_sources(
    label: str | None = None,
    format_: str | None = None,
    limit: int | None = None,
    page: str | None = None,
    sort_by: str | None = None,
    reverse_order: bool | None = None,
) -> Any:
    order = _params.listing_order(sort_by, reverse_order)
    query = SourceQuery(
        label=label,
        format=format_,
        tags=_params.tag_filter(),
        collected_by_ids=_params.collected_by_ids(),
        order=order,
    )
    result = backend().list_sources(query, _params.page_request(limit, page, _params.order_scope(order)))
    return [dialect().source(s) for s in result.items], 200, _params.listing_headers(result, order)


def get_sources_source_id(source_id: str) -> Any:
    return dialect().source(backend().get_source(source_id)), 200


(
    get_sources_source_id_tags,
    get_sources_source_id_tags_name,
    put_sources_source_id_tags_name,
    delete_sources_source_id_tags_name,
) = source_tags()
(
    get_sources_source_id_description,
    put_sources_source_id_description,
    delete_sources_source_id_description,
) = source_field("description")
(
    get_sources_source_id_label,
    put_sources_source_id_label,
    delete_sources_source_id_label,
) = source_field("label")
