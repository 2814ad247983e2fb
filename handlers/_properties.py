"""Handlers for the sub-resources that expose one property of a source or flow.

Each property has the same three operations (GET the bare value, PUT it, DELETE it), so they are
made here once; Connexion passes ``source_id``/``flow_id`` and ``body`` by parameter name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backends.base import FlowField, Json, SourceField
from backends.errors import NotFound
from handlers.versions import dialect
from tams_server.context import backend

Handler = Callable[..., Any]


def _value(entity: Json, name: str, what: str) -> Any:
    """The property's value, or 404 when it is not set."""
    if entity.get(name) is None:
        raise NotFound(f"{what} has no {name}")
    return entity[name], 200


def _tag(entity: Json, name: str, what: str) -> Any:
    tags = entity.get("tags") or {}
    if name not in tags:
        raise NotFound(f"{what} has no tag {name!r}")
    return dialect().tag(tags[name]), 200


def source_field(name: SourceField) -> tuple[Handler, Handler, Handler]:
    def get(source_id: str) -> Any:
        return _value(backend().get_source(source_id), name, f"source {source_id}")

    def put(source_id: str, body: Any) -> Any:
        backend().set_source_field(source_id, name, body)
        return None, 204

    def delete(source_id: str) -> Any:
        backend().set_source_field(source_id, name, None)
        return None, 204

    return get, put, delete


def flow_field(name: FlowField) -> tuple[Handler, Handler, Handler]:
    def get(flow_id: str) -> Any:
        return _value(backend().get_flow(flow_id), name, f"flow {flow_id}")

    def put(flow_id: str, body: Any) -> Any:
        backend().set_flow_field(flow_id, name, body)
        return None, 204

    def delete(flow_id: str) -> Any:
        backend().set_flow_field(flow_id, name, None)
        return None, 204

    return get, put, delete


def source_tags() -> tuple[Handler, Handler, Handler, Handler]:
    def get_all(source_id: str) -> Any:
        return dialect().tags(backend().get_source(source_id).get("tags") or {}), 200

    def get(source_id: str, name: str) -> Any:
        return _tag(backend().get_source(source_id), name, f"source {source_id}")

    def put(source_id: str, name: str, body: str | list[str]) -> Any:
        backend().set_source_tag(source_id, name, body)
        return None, 204

    def delete(source_id: str, name: str) -> Any:
        backend().set_source_tag(source_id, name, None)
        return None, 204

    return get_all, get, put, delete


def flow_tags() -> tuple[Handler, Handler, Handler, Handler]:
    def get_all(flow_id: str) -> Any:
        return dialect().tags(backend().get_flow(flow_id).get("tags") or {}), 200

    def get(flow_id: str, name: str) -> Any:
        return _tag(backend().get_flow(flow_id), name, f"flow {flow_id}")

    def put(flow_id: str, name: str, body: str | list[str]) -> Any:
        backend().set_flow_tag(flow_id, name, body)
        return None, 204

    def delete(flow_id: str, name: str) -> Any:
        backend().set_flow_tag(flow_id, name, None)
        return None, 204

    return get_all, get, put, delete
