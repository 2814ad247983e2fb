"""FlowDeleteRequests tag: progress of deletions that run on after their request returned."""

from __future__ import annotations

from typing import Any

from tams_server.context import backend


def get_flow_delete_requests() -> Any:
    return backend().list_delete_requests(), 200


def get_flow_delete_requests_request_id(request_id: str) -> Any:
    return backend().get_delete_request(request_id), 200
