"""TAMS 8.2: the version the backends store; its dialect is the base rules unchanged."""

from handlers.versions.dialect import Dialect

DIALECT = Dialect("8.2")
