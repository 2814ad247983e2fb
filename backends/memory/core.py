"""What every resource of the in-memory store shares: the state and the one lock guarding it,
the object and segment records, the sorted segment lists and their overlap search, and service
info. The resources are mixins of :class:`MemoryCore` (``sources``, ``flows``, ``segments``,
``objects``, ``deletions``, ``webhooks``, ``profiles``), composed into the backend by the package.

One lock guards all state, so every operation is atomic. Segments of a flow are kept sorted by
start; as they never overlap, the ones overlapping a query are a contiguous run found by bisection.

Records are small, since a store holds millions of them: a segment is a tuple of its timerange's
two bound keys as ints, its object and the fields the client sent beyond the usual ones; an object
record has slots, and shares what most objects have in common (one store, one referencing flow,
the timerange of the segment that registered it). The JSON views are built when listed.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING

from sortedcontainers import SortedKeyList

from backends import media_objects as mo
from backends import rules
from backends.base import Backend, BackendServices, Json, UrlOptions
from backends.deletion import BackgroundWorker
from backends.objectstore import ObjectStore
from backends.timerange import BoundKey, TimeRange


def _key(bound: BoundKey) -> int | float:
    """A bound key (``TimeRange.start_key``/``end_key``: tier, ns, eps) as one number in the same
    order: ``3 * ns + eps`` for a finite bound (eps is -1, 0 or 1), -inf/+inf for the infinite ones."""
    tier, ns, eps = bound
    return float("-inf") if tier == 0 else float("inf") if tier == 2 else 3 * ns + eps


def _bound(key: int) -> tuple[int, int]:
    """The ns and eps of a finite bound's ``_key``."""
    ns, eps = divmod(key + 1, 3)
    return ns, eps - 1


def _segment_keys(timerange: TimeRange) -> tuple[int, int]:
    """The start and end keys a segment is stored and ordered by (its timerange is bounded)."""
    return int(_key(timerange.start_key())), int(_key(timerange.end_key()))


@dataclass(slots=True, eq=False)
class _Segment:
    """A stored segment. A flow's segments are sorted by ``start``: as they never overlap, it is unique."""

    start: int  # _key of its timerange's start key
    end: int  # _key of its end key
    object: _Object  # the object it is a part of
    fields: Json | None  # what the client sent besides object_id, timerange, get_urls and object facts

    @property
    def timerange(self) -> TimeRange:
        (start, start_eps), (end, end_eps) = _bound(self.start), _bound(self.end)
        return TimeRange(start, end, include_start=start_eps == 0, include_end=end_eps == 0)

    def as_rules_segment(self) -> rules.Segment:
        """As the shared rules take a segment."""
        return rules.Segment(self.object.id, self.timerange, self.fields or {})


@dataclass(slots=True, eq=False)
class _Object:
    """What the store knows of a media object, from its allocation (or first registration) on."""

    id: str  # the same string as its key in the objects dict (one copy per id)
    stores: tuple[str, ...]  # storage ids of its controlled instances, the first one first; () external
    allocated_for: str | None = None  # flow that allocated it, until first registered
    # When it was allocated (one value for a whole allocation), and when its last reference went.
    allocated_at: float = 0.0
    unreferenced_since: float | None = None
    first_referenced_by: str | None = None
    # The flows whose segments use it: None, the flow of its only segment, or flow id -> segment count.
    references: str | Counter[str] | None = None
    # 8.x (backends.media_objects): media or init once registered, the media facts, the instances.
    kind: str | None = None
    # Its facts (media objects), or the segment that registered it when that segment's timerange is
    # all they say (most objects): no copy of the timerange then.
    stored_facts: mo.ObjectFacts | _Segment | None = None
    external: Sequence[Json] = ()  # uncontrolled instances: url, label (, minted)
    size: int | None = None  # bytes, when an upload through the server's media route recorded it

    @property
    def facts(self) -> mo.ObjectFacts | None:
        if isinstance(self.stored_facts, _Segment):
            return mo.ObjectFacts(str(self.stored_facts.timerange))
        return self.stored_facts

    @property
    def init_object_id(self) -> str | None:
        facts = self.stored_facts
        return facts.init_object_id if isinstance(facts, mo.ObjectFacts) else None

    def referencing_flows(self) -> list[str]:
        """The flows using it, sorted."""
        refs = self.references
        return [] if refs is None else [refs] if isinstance(refs, str) else sorted(refs)

    def controlled_ids(self) -> list[str]:
        return list(self.stores)


def _no_segments() -> SortedKeyList:
    return SortedKeyList(key=attrgetter("start"))


def _overlapping(segments: SortedKeyList, query: TimeRange) -> range:
    """Indices of the segments overlapping ``query``: O(log n) bisection on their start keys."""
    if query.is_empty:
        return range(0)
    start, end = _key(query.start_key()), _key(query.end_key())
    lo = segments.bisect_key_left(start)  # the first starting at or after the query's start...
    if lo and segments[lo - 1].end >= start:
        lo -= 1  # ...or the one before it, when it reaches into the query
    hi = segments.bisect_key_right(end)  # past the last starting at or before the query's end
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
        self._segments: dict[str, SortedKeyList] = {}  # flow id -> its _Segment records, by start
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
