"""FlowSegments tag: registering, listing and deleting a flow's segments."""

from __future__ import annotations

from typing import Any

from backends.base import Json, SegmentQuery
from backends.errors import BadRequest
from backends.rules import now
from backends.timerange import TimeRange
from handlers import _params
from handlers._deletion import deletion_response
from handlers.versions import dialect
from tams_server import metrics
from tams_server.context import backend


def get_flows_flow_id_segments(
    flow_id: str,
    object_id: str | None = None,
    timerange: str | None = None,
    reverse_order: bool = False,
    verbose_storage: bool = False,
    presigned: bool | None = None,
    limit: int | None = None,
    page: str | None = None,
    include_object_timerange: bool = False,
) -> Any:
    d = dialect()
    query = SegmentQuery(
        timerange=_params.timerange(timerange) or TimeRange.eternity(),
        object_id=object_id,
        reverse_order=bool(reverse_order),
        include_object_timerange=bool(include_object_timerange),
    )
    urls = _params.url_options(presigned, verbose_storage)
    order = "reverse" if query.reverse_order else ""
    result = backend().list_segments(flow_id, query, urls, _params.page_request(limit, page, order))
    headers = _params.paging_headers(result, order)
    headers["X-Paging-Timerange"] = str(result.timerange)
    headers["X-Paging-Count"] = str(len(result.items))
    headers["X-Paging-Reverse-Order"] = "true" if query.reverse_order else "false"
    return [d.segment(s) for s in result.items], 200, headers


def post_flows_flow_id_segments(flow_id: str, body: Json | list[Json]) -> Any:
    """One segment (400 if it breaks a rule) or a list (200 listing those that failed)."""
    single = isinstance(body, dict)
    bodies = [body] if single else body
    failed = backend().add_segments(flow_id, bodies)
    metrics.segments_posted(len(bodies) - len(failed), len(failed))  # here: once for every backend
    if not failed:
        return None, 201
    if single:
        raise BadRequest(failed[0].summary)
    stamp = now()
    failures = []
    for f in failed:
        entry: Json = {
            "object_id": f.object_id,
            "error": {"type": "BadRequest", "summary": f.summary, "time": stamp},
        }
        if f.timerange is not None:
            entry["timerange"] = f.timerange
        failures.append(entry)
    return {"failed_segments": failures}, 200


def delete_flows_flow_id_segments(flow_id: str, timerange: str | None = None, object_id: str | None = None) -> Any:
    selected = _params.timerange(timerange) or TimeRange.eternity()
    return deletion_response(backend().delete_segments(flow_id, selected, object_id))
