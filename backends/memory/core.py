"""What every resource of the in-memory store shares: the state and the one lock guarding it,
the object record (``_Object``), the sorted segment lists and their overlap search, and service
info. The resources are mixins of :class:`MemoryCore` (``sources``, ``flows``, ``segments``,
``objects``, ``deletions``, ``webhooks``, ``profiles``), composed into the backend by the package.

One lock guards all state, so every operation is atomic. Segments of a flow are kept sorted by
start; as they never overlap, the ones overlapping a query are a contiguous run found by bisection.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sortedcontainers import SortedKeyList

from backends import media_objects as mo
from backends import rules
from backends.base import Backend, BackendServices, Json, UrlOptions
from backends.deletion import BackgroundWorker
from backends.objectstore import ObjectStore
from backends.timerange import TimeRange


@dataclass
class _Object:
    storage_id: str | None  # None: an external object, its bytes are elsewhere
    allocated_for: str | None = None  # flow that allocated it, until first registered
    first_referenced_by: str | None = None
    references: Counter[str] = field(default_factory=Counter)  # flow id -> segment count
    # When it was allocated, and when its last reference went (for reclamation).
    allocated_at: float = field(default_factory=time.time)
    unreferenced_since: float | None = None
    # 8.x (backends.media_objects): media or init once registered, the media facts, the instances.
    kind: str | None = None
    facts: mo.ObjectFacts | None = None
    external: list[Json] = field(default_factory=list)  # uncontrolled instances: url, label (, minted)
    copies: list[str] = field(default_factory=list)  # storage ids of controlled copies besides storage_id

    def controlled_ids(self) -> list[str]:
        return ([self.storage_id] if self.storage_id is not None else []) + self.copies


def _no_segments() -> SortedKeyList:
    return SortedKeyList(key=rules.Segment.start_key)


def _overlapping(segments: SortedKeyList, query: TimeRange) -> range:
    """Indices of the segments overlapping ``query``: O(log n) bisection on start and end keys."""
    if query.is_empty:
        return range(0)
    lo = bisect.bisect_left(segments, query.start_key(), key=rules.Segment.end_key)
    hi = bisect.bisect_right(segments, query.end_key(), key=rules.Segment.start_key)
    return range(lo, max(lo, hi))


_paged = rules.paged
_set_tag = rules.set_tag
_set_field = rules.set_field


class MemoryCore(Backend):
    """The state of the in-memory store, its one lock, and service info; the resources are mixins."""

    def __init__(self, stores: Iterable[ObjectStore], services: BackendServices) -> None:
        self._lock = threading.RLock()
        self._events = services.events
        self._policy = services.policy
        self._url_lifetime = services.url_lifetime
        self._worker = BackgroundWorker(self, services.policy)
        self._webhooks: dict[str, Json] = {}  # by id, oldest first
        self._delete_requests: dict[str, Json] = {}
        self._stores = {s.info.id: s for s in stores}
        self._service: Json = {}
        self._sources: dict[str, Json] = {}
        self._flows: dict[str, Json] = {}
        self._flows_of_source: dict[str, set[str]] = {}
        self._collectors: dict[str, set[str]] = {}  # member flow id -> ids of flows collecting it
        self._segments: dict[str, SortedKeyList] = {}
        self._objects: dict[str, _Object] = {}
        self._allocations: dict[str, set[str]] = {}  # flow id -> objects it allocated, not yet registered
        self._profiles: dict[str, Json] = {}

    if TYPE_CHECKING:
        # sources
        def _source_view(self, source_id: str) -> Json: ...

        # flows
        def _flow(self, flow_id: str) -> Json: ...
        def _flow_event(self, kind: str, flow_id: str, payload: Json | None = None) -> None: ...
        def _remove_flow(self, flow_id: str, announce: bool) -> None: ...

        # segments
        def _delete_covered(
            self, flow_id: str, timerange: TimeRange, object_id: str | None, limit: int | None
        ) -> TimeRange: ...

        # objects
        def _object_urls(self, object_id: str, options: UrlOptions) -> list[Json] | None: ...
        def _usable(self, object_id: str, flow_id: str, kind: str) -> _Object: ...
        def _claim(self, record: _Object, object_id: str, flow_id: str) -> None: ...
        def _drop_reference(self, object_id: str, flow_id: str) -> None: ...

        # deletions
        def _start_deletion(
            self, flow_id: str, timerange: TimeRange, object_id: str | None, delete_flow: bool
        ) -> Json: ...

    # --- service -----------------------------------------------------------------------------
    def service_info(self) -> Json:
        with self._lock:
            return rules.service_info(self._service, self._policy, self._url_lifetime)

    def update_service_info(self, changes: Json) -> None:
        with self._lock:
            self._service.update({k: v for k, v in changes.items() if k in ("name", "description")})

    def storage_backends(self) -> list[Json]:
        return [s.info.to_json() for s in self._stores.values()]
