"""Backends by name.

A backend is chosen by name from configuration. Names come from the built-ins below and from the
entry-point group ``tams_server.backends`` (how a third party adds one without editing our code);
a ``module:attribute`` import path also works. A factory is called as
``factory(options: Mapping[str, Any], services: BackendServices) -> Backend``. A factory may carry
``self_contained_options``: options that make it run with nothing outside the process (test runs
use them when given no options).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from backends.base import Backend, BackendServices

ENTRY_POINT_GROUP = "tams_server.backends"
BUILTIN = {"memory": "backends.memory:create", "local": "backends.local:create", "vast": "backends.vast:create"}

BackendFactory = Callable[[Mapping[str, Any], BackendServices], Backend]


def self_contained_options(name: str) -> dict[str, Any]:
    """Options that run backend ``name`` with nothing outside this process (for tests)."""
    return dict(getattr(load_factory(name), "self_contained_options", {}))


def available() -> dict[str, str]:
    """Backend name -> import path, built-ins first, then installed entry points."""
    found = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def load_factory(name: str) -> BackendFactory:
    """The factory for a backend name or a ``module:attribute`` path."""
    target = available().get(name, name)
    module_name, sep, attribute = target.partition(":")
    if not sep:
        raise LookupError(f"unknown backend {name!r}; known: {', '.join(sorted(available()))}")
    factory = getattr(importlib.import_module(module_name), attribute, None)
    if not callable(factory):
        raise TypeError(f"backend {name!r}: {target} is not a factory")
    return factory
