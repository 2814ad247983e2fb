"""Flows tag: flows and their metadata sub-resources."""

from __future__ import annotations

from typing import Any

from backends.base import FlowQuery, Json
from handlers import _params
from handlers._deletion import deletion_response
from handlers._properties import flow_field, flow_tags
from handlers.versions import dialect
from tams_server.context import backend


def get_flows(
    source_id: str | None = None,
    timerange: str | None = None,
    format_: str | None = None,
    codec: str | None = None,
    label: str | None = None,
    frame_width: int | None = None,
    frame_height: int | None = None,
    limit: int | None = None,
    page: str | None = None,
    sort_by: str | None = None,
    reverse_order: bool | None = None,
    status: str | None = None,
    profile_id: str | None = None,
    init_segments: bool | None = None,
) -> Any:
    order = _params.listing_order(sort_by, reverse_order)
    query = FlowQuery(
        source_id=source_id,
        format=format_,
        codec=codec,
        label=label,
        tags=_params.tag_filter(),
        frame_width=frame_width,
        frame_height=frame_height,
        timerange=_params.timerange(timerange),
        status=status,
        profile_id=profile_id,
        init_segments=init_segments,
        collected_by_ids=_params.collected_by_ids(),
        order=order,
    )
    result = backend().list_flows(query, _params.page_request(limit, page, _params.order_scope(order)))
    return [dialect().flow(f) for f in result.items], 200, _params.listing_headers(result, order)


def get_flows_flow_id(flow_id: str, include_timerange: bool = False, timerange: str | None = None) -> Any:
    flow = backend().get_flow(flow_id, bool(include_timerange), _params.timerange(timerange))
    return dialect().flow(flow), 200


def put_flows_flow_id(flow_id: str, body: Json) -> Any:
    flow, created = backend().put_flow(flow_id, dialect().flow_put(body))
    return (dialect().flow(flow), 201) if created else (None, 204)


def delete_flows_flow_id(flow_id: str) -> Any:
    return deletion_response(backend().delete_flow(flow_id))


(
    get_flows_flow_id_tags,
    get_flows_flow_id_tags_name,
    put_flows_flow_id_tags_name,
    delete_flows_flow_id_tags_name,
) = flow_tags()
(
    get_flows_flow_id_description,
    put_flows_flow_id_description,
    delete_flows_flow_id_description,
) = flow_field("description")
get_flows_flow_id_label, put_flows_flow_id_label, delete_flows_flow_id_label = flow_field("label")
_, put_flows_flow_id_read_only, _ = flow_field("read_only")


def get_flows_flow_id_read_only(flow_id: str) -> Any:
    # read_only has a value even when never set: a flow is writable until locked.
    return bool(backend().get_flow(flow_id).get("read_only", False)), 200


(
    _get_flow_collection,
    put_flows_flow_id_flow_collection,
    delete_flows_flow_id_flow_collection,
) = flow_field("flow_collection")


def get_flows_flow_id_flow_collection(flow_id: str) -> Any:
    items, status = _get_flow_collection(flow_id)
    return dialect().flow_collection(items), status


(
    get_flows_flow_id_max_bit_rate,
    put_flows_flow_id_max_bit_rate,
    delete_flows_flow_id_max_bit_rate,
) = flow_field("max_bit_rate")
(
    get_flows_flow_id_avg_bit_rate,
    put_flows_flow_id_avg_bit_rate,
    delete_flows_flow_id_avg_bit_rate,
) = flow_field("avg_bit_rate")
