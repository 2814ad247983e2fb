"""TAMS 7.0: how a 7.0 client sees the store, and the operations that behave differently in 7.0."""

from __future__ import annotations

from dataclasses import dataclass

from backends.base import Json
from handlers.versions.dialect import Dialect

# /service fields that 8.1 added (how long allocated objects and presigned URLs stay usable).
SERVICE_FIELDS_SINCE_81 = ("min_object_timeout", "min_presigned_url_timeout")


@dataclass(frozen=True)
class Dialect70(Dialect):
    def service(self, info: Json) -> Json:
        shown = super().service(info)
        for name in SERVICE_FIELDS_SINCE_81:
            shown.pop(name, None)
        return shown


DIALECT = Dialect70("7.0")
