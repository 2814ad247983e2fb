"""Map each TAMS operationId to a handler function in ``handlers/``.

The module is chosen by the operation's first tag (one module per spec tag) and the function name
is the snake-case form of the operationId: ``GET_flows-flowId-segments`` ->
``handlers.segments.get_flows_flow_id_segments``. A function of that name in the API version's own
module (``handlers/versions/v7_0.py`` for 7.0) comes first: the few operations whose behaviour differs
between versions are there. A HEAD operation without a handler of its own runs its GET handler. An
operation with no handler answers 501.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from typing import Any

from connexion.exceptions import ProblemException
from connexion.resolver import Resolution, Resolver

log = logging.getLogger("tams_server")

TAG_MODULES = {
    "Service": "handlers.service",
    "Sources": "handlers.sources",
    "Flows": "handlers.flows",
    "FlowSegments": "handlers.segments",
    "Objects": "handlers.objects",
    "MediaStorage": "handlers.storage",
    "FlowDeleteRequests": "handlers.delete_requests",
    "Webhooks": "handlers.webhooks",
    "Profiles": "handlers.profiles",
}


def handler_name(operation_id: str) -> str:
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", operation_id)
    return re.sub(r"[^0-9A-Za-z]+", "_", snake).lower()


def _not_implemented(operation_id: str) -> Callable[..., Any]:
    def handler(*_args: Any, **_kwargs: Any) -> Any:
        raise ProblemException(
            status=501,
            title="Not Implemented",
            detail=f"{operation_id} is not implemented",
        )

    return handler


def version_module(version: str) -> str:
    return "handlers.versions.v" + version.replace(".", "_")


class TamsResolver(Resolver):
    def __init__(self, version: str = "7.0") -> None:
        super().__init__()
        self.version = version
        self.unresolved: list[str] = []

    def _lookup(self, tags: list[str], name: str) -> Callable[..., Any] | None:
        modules = [version_module(self.version), *(TAG_MODULES[t] for t in tags if t in TAG_MODULES)]
        for module_name in modules:
            function = getattr(importlib.import_module(module_name), name, None)
            if callable(function):
                return function
        return None

    def resolve(self, operation: Any) -> Resolution:
        operation_id = operation.operation_id
        tags = operation._operation.get("tags", [])
        name = handler_name(operation_id)
        function = self._lookup(tags, name)
        if function is None and name.startswith("head_"):
            # Same status and headers as GET; TamsApp drops the body of every HEAD response.
            function = self._lookup(tags, "get_" + name[len("head_") :])
        if function is None:
            log.warning("no handler for %s (%s): it answers 501", operation_id, name)
            self.unresolved.append(operation_id)
            function = _not_implemented(operation_id)
        return Resolution(function, operation_id)
