"""What differs between the TAMS API versions served: one module per version.

Backends store the newest version's superset and never see a version. A request's version
(``context.api_version()``, from the base path it was made under) picks its dialect here, which
reads what that version's requests mean and renders stored documents as that version shows them.
Handler functions that differ wholly by version live in the version's module too (the resolver
looks there first).
"""

from __future__ import annotations

import functools
import importlib

from handlers.versions.dialect import Dialect
from tams_server import context
from tams_server.resolver import version_module


@functools.cache
def dialect_of(version: str) -> Dialect:
    dialect = importlib.import_module(version_module(version)).DIALECT
    assert isinstance(dialect, Dialect)
    return dialect


def dialect() -> Dialect:
    """The dialect of the current request's API version."""
    return dialect_of(context.api_version())


__all__ = ["Dialect", "dialect", "dialect_of"]
