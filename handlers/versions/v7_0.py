"""TAMS 7.0: how a 7.0 client sees the store, and the operations that behave differently in 7.0."""

from __future__ import annotations

from dataclasses import dataclass

from handlers.versions.dialect import Dialect


@dataclass(frozen=True)
class Dialect70(Dialect):
    pass


DIALECT = Dialect70("7.0")
