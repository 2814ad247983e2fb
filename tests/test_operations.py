"""Where handlers run (tams_server.operations): on the event loop where the backend only computes
or reads from memory, in a worker thread where a call may wait."""

from __future__ import annotations

import functools
import threading
from typing import Any

import pytest
from conftest import Tams, TamsClient, app_settings, backend_settings

from handlers import flows
from tams_server.app import create_app
from tams_server.operations import PreparedOperation


def _operations(backend: str) -> dict[tuple[str, str], PreparedOperation]:
    app = create_app(app_settings(**backend_settings(backend)))
    _, apps = app.api.middleware._build_middleware_stack()  # type: ignore[attr-defined]
    found = {}
    for layer in apps:
        for apis in getattr(layer, "apis", {}).values():
            for api in apis:
                for operation in getattr(api, "operations", {}).values():
                    if isinstance(operation, PreparedOperation):
                        found[(api.base_path, operation.operation_id)] = operation
    app.backend.close()
    return found


@pytest.mark.parametrize(
    ("backend", "reads_on_loop", "writes_on_loop"),
    [("memory", True, True), ("local", True, False), ("vast", False, False)],
)
def test_handlers_run_on_the_loop_only_where_the_backend_cannot_wait(
    backend: str, reads_on_loop: bool, writes_on_loop: bool
) -> None:
    operations = _operations(backend)
    assert len(operations) > 100  # every operation of every mounted version
    for (_, operation_id), operation in operations.items():
        read = operation.operation.method.upper() in ("GET", "HEAD")
        assert operation.on_loop is (reads_on_loop if read else writes_on_loop), operation_id


def test_a_local_write_runs_in_a_worker_thread_and_a_read_on_the_loop(monkeypatch: Any) -> None:
    seen: dict[str, str] = {}

    def spy(name: str, real: Any) -> Any:
        @functools.wraps(real)
        def handler(*args: Any, **kwargs: Any) -> Any:
            seen[name] = threading.current_thread().name
            return real(*args, **kwargs)

        return handler

    monkeypatch.setattr(flows, "get_flows_flow_id", spy("get", flows.get_flows_flow_id))
    monkeypatch.setattr(flows, "put_flows_flow_id", spy("put", flows.put_flows_flow_id))
    app = create_app(app_settings(**backend_settings("local")))
    with TamsClient(app, "8.2") as client:
        loop_thread = client.portal.call(lambda: threading.current_thread().name)  # type: ignore[union-attr]
        flow = Tams(client).put_flow()
        assert client.get(f"/flows/{flow['id']}").status_code == 200
    assert seen["get"] == loop_thread
    assert seen["put"] != loop_thread
