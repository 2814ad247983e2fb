"""Routing: every TAMS operation reaches a handler; a missing one answers 501."""

from __future__ import annotations

import pytest
from conftest import ADMIN_HEADERS, app_settings
from starlette.testclient import TestClient

import handlers.service
import spec
from tams_server import specload
from tams_server.app import create_app
from tams_server.resolver import TAG_MODULES, TamsResolver, handler_name


@pytest.mark.parametrize(
    ("operation_id", "expected"),
    [
        ("GET_flows-flowId-segments", "get_flows_flow_id_segments"),
        ("HEAD_flows-flowId-read-only", "head_flows_flow_id_read_only"),
        ("GET_flow-delete-requests-request-id", "get_flow_delete_requests_request_id"),
        ("POST_service", "post_service"),
    ],
)
def test_handler_names_are_snake_case_operation_ids(operation_id: str, expected: str) -> None:
    assert handler_name(operation_id) == expected


class _Operation:
    def __init__(self, operation_id: str, tags: list[str]) -> None:
        self.operation_id = operation_id
        self._operation = {"tags": tags}


def spec_operations() -> list[tuple[str, list[str]]]:
    doc = specload.bundle(spec.SPEC_PATH)
    return [
        (op["operationId"], op["tags"])
        for item in doc["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    ]


def test_every_operation_of_the_spec_has_a_handler() -> None:
    resolver = TamsResolver()
    operations = spec_operations()
    assert len(operations) == 74
    for operation_id, tags in operations:
        resolver.resolve(_Operation(operation_id, tags))
    assert resolver.unresolved == []
    assert {t for _, tags in operations for t in tags} <= set(TAG_MODULES)


def test_an_operation_without_handler_answers_501_with_an_error_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(handlers.service, "get_service")
    with TestClient(create_app(app_settings()), headers=ADMIN_HEADERS) as client:
        response = client.get("/service")
        assert response.status_code == 501
        assert response.json()["type"] == "NotImplemented"
        assert "GET_service" in response.json()["summary"]
        assert client.get("/").status_code == 200
