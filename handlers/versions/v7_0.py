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

    # 7.0 segment get_urls may lack a label: show them as they were posted.
    shows_minted_labels = False

    def object(self, doc: Json) -> Json:
        # 7.0 objects are only which flows reference them.
        return {k: v for k, v in doc.items() if k in _OBJECT_FIELDS}

    def segment(self, doc: Json) -> Json:
        return {k: v for k, v in doc.items() if k not in _SEGMENT_8X_FIELDS}

    def storage(self, doc: Json) -> Json:
        objects = [{k: v for k, v in o.items() if k != "presigned"} for o in doc.get("media_objects", [])]
        return {**doc, "media_objects": objects}


_OBJECT_FIELDS = ("id", "referenced_by_flows", "first_referenced_by_flow")
_SEGMENT_8X_FIELDS = ("object_timerange", "init_object")


DIALECT = Dialect70("7.0")
