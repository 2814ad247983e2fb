"""TAMS 7.0: how a 7.0 client sees the store, and the operations that behave differently in 7.0."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backends import ordering
from backends.base import Json, ListingOrder
from handlers.versions.dialect import Dialect
from tams_server.context import backend

# /service fields that 8.1 added (how long allocated objects and presigned URLs stay usable).
SERVICE_FIELDS_SINCE_81 = ("min_object_timeout", "min_presigned_url_timeout")


@dataclass(frozen=True)
class Dialect70(Dialect):
    """7.0 rules.

    Tags: a 7.0 tag value is a string, so ``tag.{name}=a,b`` accepts exactly the value ``"a,b"``.
    List-valued tags (8.x, written under 8.2) are shown to 7.0 clients as ONE string, their
    elements joined with ``","`` (``["a", "b"]`` -> ``"a,b"``), in flows, sources, ``/tags`` and
    the single-tag GET. Joining rather than omitting keeps the tag visible and consistent with
    ``tag_exists``; it is lossy only for elements that contain a comma, and a 7.0 client that PUTs
    the joined value back stores the string ``"a,b"`` (7.0 cannot write lists). The tag filter
    still matches the stored value: under 7.0 ``tag.genre=a`` selects ``["a", "b"]`` (one element
    is ``a``), while ``tag.genre=a,b`` selects the string ``"a,b"`` only.
    """

    def tag_values(self, raw: str) -> frozenset[str]:
        return frozenset((raw,))

    def tag(self, value: Any) -> Any:
        return ",".join(value) if isinstance(value, list) else value

    def flow(self, flow: Json) -> Json:
        # 7.0's flow schema is open: 8.x fields such as ``status`` may stay.
        return super().flow(flow)

    def service(self, info: Json) -> Json:
        shown = super().service(info)
        for name in SERVICE_FIELDS_SINCE_81:
            shown.pop(name, None)
        return shown


DIALECT = Dialect70("7.0")


# --- operations that 7.0 defines differently --------------------------------------------------


def get_storage_backends() -> Any:
    """7.0: the whole list, unpaged (7.0 declares no paging for it), in 8.2's order (by label)."""
    return ordering.sort(backend().storage_backends(), ListingOrder("label", newest_first=False)), 200


def get_flow_delete_requests() -> Any:
    """7.0: the whole list, unpaged (7.0 declares no paging for it), newest first as in 8.2."""
    return ordering.sort(backend().list_delete_requests(), ListingOrder()), 200
