"""The in-memory reference backend: small and obviously correct, the oracle for other backends.

One lock guards all state, so every operation is atomic. Segments of a flow are kept sorted by
start; as they never overlap, the ones overlapping a query are a contiguous run found by bisection.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sortedcontainers import SortedKeyList

from backends import deletion, events, ordering, profiles, rules
from backends import media_objects as mo
from backends.base import (
    Backend,
    BackendServices,
    FailedSegment,
    FlowField,
    FlowQuery,
    Json,
    Page,
    PageRequest,
    ProfileQuery,
    SegmentPage,
    SegmentQuery,
    SourceField,
    SourceQuery,
    StorageRequest,
    TagFilter,
    UrlOptions,
    WebhookQuery,
)
from backends.deletion import BackgroundWorker
from backends.errors import BadRequest, NotFound, TamsError
from backends.objectstore import MemoryObjectStore, ObjectStore, StorageBackendInfo, copy_object
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


class MemoryBackend(Backend):
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

    # --- service -----------------------------------------------------------------------------
    def service_info(self) -> Json:
        with self._lock:
            return rules.service_info(self._service, self._policy, self._url_lifetime)

    def update_service_info(self, changes: Json) -> None:
        with self._lock:
            self._service.update({k: v for k, v in changes.items() if k in ("name", "description")})

    def storage_backends(self) -> list[Json]:
        return [s.info.to_json() for s in self._stores.values()]

    # --- sources -----------------------------------------------------------------------------
    def _source(self, source_id: str) -> Json:
        try:
            return self._sources[source_id]
        except KeyError:
            raise NotFound(f"source {source_id} not found") from None

    def _source_view(self, source_id: str) -> Json:
        flows = [self._flows[f] for f in self._flows_of_source.get(source_id, ())]
        collectors = {c for flow in flows for c in self._collectors.get(flow["id"], ())}
        collection, collected_by = rules.source_collections(source_id, flows, self._source_of, collectors)
        return rules.source_view(self._sources[source_id], collection, collected_by)

    def _source_of(self, flow_id: str) -> str | None:
        flow = self._flows.get(flow_id)
        return None if flow is None else flow["source_id"]

    def list_sources(self, query: SourceQuery, page: PageRequest) -> Page[Json]:
        with self._lock:
            views = (self._source_view(i) for i in self._sources)
            return ordering.ordered_page([v for v in views if rules.matches_source(v, query)], query.order, page)

    def get_source(self, source_id: str) -> Json:
        with self._lock:
            self._source(source_id)
            return self._source_view(source_id)

    def set_source_tag(self, source_id: str, name: str, value: str | list[str] | None) -> None:
        with self._lock:
            _set_tag(self._source(source_id), name, value, "updated")
            self._events.publish(events.source_event(events.SOURCE_UPDATED, self._source_view(source_id)))

    def set_source_field(self, source_id: str, name: SourceField, value: str | None) -> None:
        with self._lock:
            _set_field(self._source(source_id), name, value, "updated")
            self._events.publish(events.source_event(events.SOURCE_UPDATED, self._source_view(source_id)))

    # --- flows -------------------------------------------------------------------------------
    def _flow(self, flow_id: str) -> Json:
        try:
            return self._flows[flow_id]
        except KeyError:
            raise NotFound(f"flow {flow_id} not found") from None

    def _flow_view(self, flow_id: str) -> Json:
        return rules.flow_view(self._flows[flow_id], self._collectors.get(flow_id, ()))

    def _flow_event(self, kind: str, flow_id: str, payload: Json | None = None) -> None:
        flow = self._flow_view(flow_id)
        self._events.publish(events.flow_event(kind, flow, self._source_view(flow["source_id"]), payload))

    def list_flows(self, query: FlowQuery, page: PageRequest) -> Page[Json]:
        with self._lock:
            views = (self._flow_view(i) for i in self._flows)
            selected = [
                view
                for view in views
                if rules.matches_flow(view, query)
                and rules.matches_flow_timerange(self._ranges_overlapping(view["id"], query.timerange), query.timerange)
            ]
            return ordering.ordered_page(selected, query.order, page)

    def _ranges_overlapping(self, flow_id: str, query: TimeRange | None) -> Iterable[TimeRange]:
        segments = self._segments.get(flow_id, ())
        if query is None or query.is_empty:
            return [s.timerange for s in segments[:1]]
        return [segments[i].timerange for i in _overlapping(segments, query)[:1]]

    def get_flow(
        self,
        flow_id: str,
        include_timerange: bool = False,
        timerange: TimeRange | None = None,
    ) -> Json:
        with self._lock:
            self._flow(flow_id)
            view = self._flow_view(flow_id)
            if include_timerange:
                segments = self._segments.get(flow_id)
                extent = (
                    segments[0].timerange.extend_to_encompass(segments[-1].timerange) if segments else TimeRange.never()
                )
                view["timerange"] = rules.flow_timerange_view(extent, timerange)
            return view

    def put_flow(self, flow_id: str, flow: Json) -> tuple[Json, bool]:
        with self._lock:
            existing = self._flows.get(flow_id)
            stamp = rules.now()
            flow = profiles.expand_flow(flow, existing, self._profiles.get)
            stored = rules.prepare_flow(flow_id, flow, existing, stamp)
            rules.check_collection(stored, lambda f: f in self._flows)
            if existing is not None:
                self._drop_collection_edges(existing)
                if existing["source_id"] != stored["source_id"]:
                    self._leave_source(existing)
            new_source = stored["source_id"] not in self._sources
            if new_source:
                self._sources[stored["source_id"]] = rules.new_source(stored, stamp)
            self._flows[flow_id] = stored
            self._flows_of_source.setdefault(stored["source_id"], set()).add(flow_id)
            for member in rules.collection_members(stored):
                self._collectors.setdefault(member, set()).add(flow_id)
            if new_source:
                source = self._source_view(stored["source_id"])
                self._events.publish(events.source_event(events.SOURCE_CREATED, source))
            self._flow_event(events.FLOW_UPDATED if existing else events.FLOW_CREATED, flow_id)
            return self._flow_view(flow_id), existing is None

    def _drop_collection_edges(self, flow: Json) -> None:
        for member in rules.collection_members(flow):
            self._collectors.get(member, set()).discard(flow["id"])

    def _leave_source(self, flow: Json) -> None:
        """Take a flow off its source; a source goes with its last flow."""
        source_id = flow["source_id"]
        source_flows = self._flows_of_source[source_id]
        source_flows.discard(flow["id"])
        if not source_flows:
            source = self._source_view(source_id)
            del self._flows_of_source[source_id]
            del self._sources[source_id]
            self._events.publish(events.source_event(events.SOURCE_DELETED, source, {"source_id": source_id}))

    def delete_flow(self, flow_id: str) -> Json | None:
        with self._lock:
            rules.ensure_writable(self._flow(flow_id))
            if len(self._segments.get(flow_id, ())) > self._policy.async_delete_threshold:
                return self._start_deletion(flow_id, TimeRange.eternity(), None, delete_flow=True)
            self._remove_flow(flow_id, announce=True)
            return None

    def _remove_flow(self, flow_id: str, announce: bool) -> None:
        """Remove a flow, its segments and its place in collections; ``announce`` raises flows/deleted."""
        with self._lock:
            flow = self._flows[flow_id]
            view = self._flow_view(flow_id)
            source = self._source_view(flow["source_id"])
            stamp = rules.now()
            for segment in self._segments.pop(flow_id, ()):
                self._drop_reference(segment.object_id, flow_id)
            # Flows that collected this one no longer can: drop it from their collections.
            for collector in self._collectors.pop(flow_id, set()):
                owner = self._flows[collector]
                remaining = [i for i in owner["flow_collection"] if i["id"] != flow_id]
                _set_field(owner, "flow_collection", remaining or None, "metadata_updated", stamp)
            # Objects it allocated but never registered become free for any flow to register.
            for object_id in self._allocations.pop(flow_id, set()):
                self._objects[object_id].allocated_for = None
            self._drop_collection_edges(flow)
            del self._flows[flow_id]
            if announce:
                self._events.publish(events.flow_event(events.FLOW_DELETED, view, source, {"flow_id": flow_id}))
            self._leave_source(flow)

    def set_flow_tag(self, flow_id: str, name: str, value: str | list[str] | None) -> None:
        with self._lock:
            flow = self._flow(flow_id)
            rules.ensure_writable(flow)
            _set_tag(flow, name, value, "metadata_updated")
            self._flow_event(events.FLOW_UPDATED, flow_id)

    def set_flow_field(self, flow_id: str, name: FlowField, value: Any) -> None:
        with self._lock:
            flow = self._flow(flow_id)
            if name != "read_only":
                rules.ensure_writable(flow)
            profiles.check_field_change(flow, name)
            if name == "flow_collection":
                rules.check_collection({**flow, "flow_collection": value or []}, lambda f: f in self._flows)
                self._drop_collection_edges(flow)
                for item in value or []:
                    self._collectors.setdefault(item["id"], set()).add(flow_id)
            _set_field(flow, name, value, "metadata_updated")
            self._flow_event(events.FLOW_UPDATED, flow_id)

    # --- segments ----------------------------------------------------------------------------
    def list_segments(self, flow_id: str, query: SegmentQuery, urls: UrlOptions, page: PageRequest) -> SegmentPage:
        limit = rules.page_limit(page.limit)
        with self._lock:
            segments = self._segments.get(flow_id) or _no_segments()
            indices = _overlapping(segments, query.timerange)
            if query.reverse_order:
                indices = indices[::-1]
            if page.page is not None:
                indices = _resume(segments, indices, page.page, query.reverse_order)
            chosen: list[rules.Segment] = []
            next_key = None
            for i in indices:
                segment = segments[i]
                if query.object_id is not None and segment.object_id != query.object_id:
                    continue
                if len(chosen) == limit:
                    next_key = rules.encode_cursor(str(chosen[-1].timerange))
                    break
                chosen.append(segment)
            items = [self._segment_view(s, urls, query.include_object_timerange) for s in chosen]
            return SegmentPage(items, limit, next_key, rules.segments_extent(chosen))

    def _object_urls(self, object_id: str, options: UrlOptions) -> list[Json] | None:
        """Every instance of an object as ``get_urls``, filtered by ``options``."""
        if options.accept_get_urls == ():
            return None  # the client wants no URLs: skip signing them
        record = self._objects.get(object_id)
        if record is None:
            return [] if options.accept_get_urls is None else mo.instance_urls([], [], options)
        controlled = []
        for storage_id in record.controlled_ids():
            controlled.append(mo.controlled_url(self._stores[storage_id], object_id, options))
        return mo.instance_urls(controlled, record.external, options)

    def _segment_view(self, segment: rules.Segment, options: UrlOptions, include_object_timerange: bool) -> Json:
        view = rules.segment_view(segment, self._object_urls(segment.object_id, options))
        record = self._objects.get(segment.object_id)
        facts = record.facts if record is not None else None
        if facts is not None:
            if include_object_timerange and facts.timerange is not None:
                view["object_timerange"] = facts.timerange
            if facts.init_object_id is not None:
                urls = self._object_urls(facts.init_object_id, options)
                view["init_object"] = mo.init_view(facts.init_object_id, urls, "object_id")
        return view

    def add_segments(self, flow_id: str, segments: list[Json]) -> list[FailedSegment]:
        with self._lock:
            flow = self._flow(flow_id)
            rules.check_segment_post(flow)
            labels = [s.info.label for s in self._stores.values()]
            failed = []
            added = []
            for body in segments:
                try:
                    segment = rules.parse_segment(body, labels)
                    posted = mo.posted_facts(body)
                    instances = mo.posted_instances(body, labels)
                    added.append(self._add_segment(flow_id, segment, posted, instances))
                except TamsError as exc:
                    failed.append(
                        FailedSegment(
                            body.get("object_id", ""),
                            body.get("timerange"),
                            exc.summary,
                        )
                    )
            if added:
                flow["segments_updated"] = rules.now()
                views = [self._segment_view(s, UrlOptions(verbose_storage=True, for_events=True), True) for s in added]
                self._flow_event(events.SEGMENTS_ADDED, flow_id, {"flow_id": flow_id, "segments": views})
            return failed

    def _usable(self, object_id: str, flow_id: str, kind: str) -> _Object:
        """The object a segment of ``flow_id`` may use as ``kind`` (a new external one if unknown)."""
        record = self._objects.get(object_id)
        if record is None:
            return _Object(storage_id=None)
        if record.allocated_for not in (None, flow_id):
            raise BadRequest(
                f"object {object_id} was allocated for flow {record.allocated_for} and is not registered yet"
            )
        mo.check_use(object_id, record.kind, kind)
        return record

    def _add_segment(
        self, flow_id: str, segment: rules.Segment, posted: mo.PostedFacts, instances: list[Json]
    ) -> rules.Segment:
        stored = self._segments.setdefault(flow_id, _no_segments())
        clash = _overlapping(stored, segment.timerange)
        if clash:
            other = stored[clash[0]]
            raise BadRequest(f"segment {segment.timerange} overlaps segment {other.timerange} of this flow")
        object_id = segment.object_id
        record = self._usable(object_id, flow_id, mo.MEDIA)
        facts = mo.register_facts(object_id, record.facts, posted)
        external = mo.add_instances(object_id, record.external, instances)
        init_id = facts.init_object_id
        init_record = self._usable(init_id, flow_id, mo.INIT) if init_id is not None else None
        # Every check passed: register.
        self._objects.setdefault(object_id, record)
        record.kind, record.facts, record.external = mo.MEDIA, facts, external
        self._claim(record, object_id, flow_id)
        if init_id is not None and init_record is not None:
            self._objects.setdefault(init_id, init_record)
            init_record.kind = mo.INIT
            self._claim(init_record, init_id, flow_id)
        stored.add(segment)
        return segment

    def _claim(self, record: _Object, object_id: str, flow_id: str) -> None:
        """One more segment of ``flow_id`` uses the object (as media or as init)."""
        if record.allocated_for is not None:
            self._allocations[record.allocated_for].discard(object_id)
            record.allocated_for = None
        if not record.references:
            record.first_referenced_by = flow_id
        record.references[flow_id] += 1
        record.unreferenced_since = None

    def _drop_reference(self, object_id: str, flow_id: str) -> None:
        """A segment of ``flow_id`` no longer uses the object, nor its init object."""
        record = self._objects[object_id]
        init_id = record.facts.init_object_id if record.facts is not None else None
        self._release(object_id, record, flow_id)
        if init_id is not None and init_id in self._objects:
            self._release(init_id, self._objects[init_id], flow_id)

    def _release(self, object_id: str, record: _Object, flow_id: str) -> None:
        record.references[flow_id] -= 1
        if record.references[flow_id] <= 0:
            del record.references[flow_id]
            if record.first_referenced_by == flow_id:
                record.first_referenced_by = None
        if not record.references:
            if not record.controlled_ids():
                del self._objects[object_id]  # an external object nobody references is forgotten
            else:
                record.unreferenced_since = time.time()

    def _covered(self, flow_id: str, timerange: TimeRange, object_id: str | None) -> Iterator[rules.Segment]:
        """The flow's segments wholly inside ``timerange`` (and of ``object_id``), in time order."""
        segments = self._segments.get(flow_id)
        if not segments:
            return
        for i in _overlapping(segments, timerange):
            segment = segments[i]
            if timerange.covers(segment.timerange) and object_id in (None, segment.object_id):
                yield segment

    def delete_segments(self, flow_id: str, timerange: TimeRange, object_id: str | None) -> Json | None:
        with self._lock:
            rules.ensure_writable(self._flow(flow_id))
            threshold = self._policy.async_delete_threshold
            if (
                sum(1 for _ in itertools.islice(self._covered(flow_id, timerange, object_id), threshold + 1))
                > threshold
            ):
                return self._start_deletion(flow_id, timerange, object_id, delete_flow=False)
            self._delete_covered(flow_id, timerange, object_id, limit=None)
            return None

    def _delete_covered(
        self, flow_id: str, timerange: TimeRange, object_id: str | None, limit: int | None
    ) -> TimeRange:
        """Delete covered segments (at most ``limit``); return the part of ``timerange`` still to do."""
        chosen = list(itertools.islice(self._covered(flow_id, timerange, object_id), limit))
        for segment in chosen:
            self._segments[flow_id].remove(segment)
            self._drop_reference(segment.object_id, flow_id)
        if chosen:
            self._flows[flow_id]["segments_updated"] = rules.now()
            extent = str(rules.segments_extent(chosen))
            self._flow_event(events.SEGMENTS_DELETED, flow_id, {"flow_id": flow_id, "timerange": extent})
        if limit is None or len(chosen) < limit:
            return TimeRange.never()
        return rules.remaining_after(timerange, chosen[-1].timerange)

    # --- deletion requests -------------------------------------------------------------------
    def _start_deletion(self, flow_id: str, timerange: TimeRange, object_id: str | None, delete_flow: bool) -> Json:
        request = deletion.new_request(flow_id, timerange, object_id, delete_flow)
        self._delete_requests[request["id"]] = request
        if delete_flow:
            self._flow_event(events.FLOW_DELETED, flow_id, {"flow_id": flow_id})
        self._worker.submit(request["id"])
        return deletion.request_view(request)

    def load_delete_request(self, request_id: str) -> Json:
        with self._lock:
            return dict(self._delete_requests[request_id])

    def save_delete_request(self, request: Json) -> None:
        with self._lock:
            self._delete_requests[request["id"]] = dict(request)

    def delete_chunk(self, request: Json, limit: int) -> TimeRange:
        with self._lock:
            if request["flow_id"] not in self._flows:
                return TimeRange.never()
            remaining = TimeRange.parse(request["timerange_remaining"])
            return self._delete_covered(request["flow_id"], remaining, request.get("object_id"), limit)

    def finish_flow_delete(self, request: Json) -> None:
        with self._lock:
            if request["flow_id"] in self._flows:
                self._remove_flow(request["flow_id"], announce=False)

    def list_delete_requests(self) -> list[Json]:
        with self._lock:
            for request_id in [i for i, r in self._delete_requests.items() if deletion.expired(r)]:
                del self._delete_requests[request_id]
            return [deletion.request_view(r) for r in self._delete_requests.values()]

    def get_delete_request(self, request_id: str) -> Json:
        with self._lock:
            request = self._delete_requests.get(request_id)
            if request is None or deletion.expired(request):
                raise NotFound(f"deletion request {request_id} not found")
            return deletion.request_view(request)

    # --- storage and objects -------------------------------------------------------------------
    def allocate_storage(self, flow_id: str, request: StorageRequest) -> Json:
        with self._lock:
            flow = self._flow(flow_id)
            rules.check_storage_request(flow, request)
            info = rules.choose_storage([s.info for s in self._stores.values()], request.storage_id)
            store = self._stores[info.id]
            if request.object_ids is not None:
                ids = list(request.object_ids)
                taken = [i for i in ids if i in self._objects]
                if taken or len(set(ids)) != len(ids):
                    raise BadRequest(f"object ids already exist or repeat: {', '.join(taken) or 'duplicates'}")
            else:
                ids = [store.new_object_id() for _ in range(request.limit or rules.DEFAULT_STORAGE_LIMIT)]
            content_type = request.content_type or flow["container"]
            for object_id in ids:
                self._objects[object_id] = _Object(storage_id=info.id, allocated_for=flow_id)
            self._allocations.setdefault(flow_id, set()).update(ids)
            return {"media_objects": [rules.media_object(store, i, content_type, request.presigned) for i in ids]}

    def _registered(self, object_id: str) -> _Object:
        """The object, once a segment has registered it (an allocated id alone is not found)."""
        record = self._objects.get(object_id)
        if record is None or record.kind is None:
            raise NotFound(f"object {object_id} not found")
        return record

    def get_object(
        self,
        object_id: str,
        page: PageRequest,
        urls: UrlOptions | None = None,
        flow_tags: TagFilter | None = None,
    ) -> tuple[Json, Page[str]]:
        options = urls or UrlOptions()
        with self._lock:
            record = self._registered(object_id)
            referencing = sorted(record.references)
            if flow_tags is not None:
                referencing = [
                    f for f in referencing if f in self._flows and rules.matches_tags(self._flows[f], flow_tags)
                ]
            flows = _paged(referencing, page, key=None)
            init = None
            facts = record.facts
            if facts is not None and facts.init_object_id is not None:
                init = mo.init_view(facts.init_object_id, self._object_urls(facts.init_object_id, options), "id")
            body = mo.object_view(
                object_id,
                flows.items,
                record.first_referenced_by,
                record.kind,
                facts,
                self._object_urls(object_id, options),
                init,
            )
            return body, flows

    def add_object_instance(self, object_id: str, body: Json) -> None:
        with self._lock:
            record = self._registered(object_id)
            mo.check_instance_post(body, [s.info.label for s in self._stores.values()])
            if "url" in body:
                record.external = mo.add_instances(
                    object_id, record.external, [{"url": body["url"], "label": body["label"]}]
                )
                return
            target = self._stores.get(body["storage_id"])
            if target is None:
                raise BadRequest(f"unknown storage_id {body['storage_id']}")
            held = record.controlled_ids()
            mo.check_copy(object_id, target.info.id, held)
            sources = [self._stores[i] for i in held]
            copy_object(sources[0], target, object_id)
            if record.storage_id is None:
                record.storage_id = target.info.id
            else:
                record.copies.append(target.info.id)

    def delete_object_instance(self, object_id: str, storage_id: str | None, label: str | None) -> None:
        with self._lock:
            record = self._registered(object_id)
            mo.instance_to_remove(storage_id, label)
            held = record.controlled_ids()
            if label is not None:
                by_label = [i for i in held if self._stores[i].info.label == label]
                storage_id = by_label[0] if by_label else None
            if storage_id is None:
                if not any(i["label"] == label for i in record.external):
                    raise BadRequest(f"object {object_id} has no instance labelled {label!r}")
                mo.check_not_last(len(held) + len(record.external), object_id)
                record.external = [i for i in record.external if i["label"] != label]
                return
            if storage_id not in held:
                raise BadRequest(f"object {object_id} has no instance on storage {storage_id}")
            mo.check_not_last(len(held) + len(record.external), object_id)
            if record.storage_id == storage_id:
                record.storage_id = record.copies.pop(0) if record.copies else None
            else:
                record.copies.remove(storage_id)
            self._stores[storage_id].delete(object_id)

    def object_store(self, storage_id: str) -> ObjectStore | None:
        return self._stores.get(storage_id)

    def reclaim_objects(self) -> int:
        """Forget objects past their grace period and delete their bytes."""
        clock = time.time()
        policy = self._policy
        with self._lock:
            doomed = [
                object_id
                for object_id, record in self._objects.items()
                if record.controlled_ids()
                and not record.references
                and rules.reclaimable(
                    record.allocated_for is not None, record.allocated_at, record.unreferenced_since, clock, policy
                )
            ]
            namers = ((i, r.facts.init_object_id) for i, r in self._objects.items() if r.facts is not None)
            doomed = mo.spare_named_inits(doomed, namers)
            for object_id in doomed:
                record = self._objects.pop(object_id)
                if record.allocated_for is not None:
                    self._allocations.get(record.allocated_for, set()).discard(object_id)
                for storage_id in record.controlled_ids():
                    self._stores[storage_id].delete(object_id)
            return len(doomed)

    # --- webhooks ------------------------------------------------------------------------------
    def _webhook(self, webhook_id: str) -> Json:
        try:
            return self._webhooks[webhook_id]
        except KeyError:
            raise NotFound(f"webhook {webhook_id} not found") from None

    def all_webhooks(self) -> list[Json]:
        with self._lock:
            return [dict(w) for w in self._webhooks.values()]

    def list_webhooks(self, query: WebhookQuery, page: PageRequest) -> Page[Json]:
        with self._lock:
            return events.list_page([dict(w) for w in self._webhooks.values()], query, page)

    def get_webhook(self, webhook_id: str) -> Json:
        with self._lock:
            return dict(self._webhook(webhook_id))

    def create_webhook(self, webhook: Json) -> Json:
        webhook = events.new_registration(webhook)
        with self._lock:
            self._webhooks[webhook["id"]] = webhook
            return dict(webhook)

    def replace_webhook(self, webhook_id: str, webhook: Json) -> Json:
        with self._lock:
            webhook = events.replaced_registration(self._webhook(webhook_id), webhook)
            self._webhooks[webhook_id] = webhook
            return dict(webhook)

    def delete_webhook(self, webhook_id: str) -> None:
        with self._lock:
            self._webhook(webhook_id)
            del self._webhooks[webhook_id]

    def upsert_webhook_by_identity(self, webhook: Json) -> Json | None:
        with self._lock:
            write = events.write_by_identity(list(self._webhooks.values()), webhook)
            for webhook_id in write.deleted:
                del self._webhooks[webhook_id]
            stored = write.stored
            if stored is None:
                return None
            self._webhooks[stored["id"]] = stored
            return dict(stored)

    def set_webhook_status(self, webhook_id: str, status: str, error: Json | None = None) -> bool:
        with self._lock:
            current = self._webhooks.get(webhook_id)
            changed = None if current is None else events.server_status(current, status, error)
            if changed is None:
                return False
            self._webhooks[webhook_id] = changed
            return True

    # --- flow profiles -----------------------------------------------------------------------
    def list_profiles(self, query: ProfileQuery, page: PageRequest) -> Page[Json]:
        with self._lock:
            chosen = [copy.deepcopy(self._profiles[i]) for i in sorted(self._profiles)]
            return _paged([p for p in chosen if profiles.matches_profile(p, query)], page, key="id")

    def get_profile(self, profile_id: str) -> Json:
        with self._lock:
            profile = self._profiles.get(profile_id)
            if profile is None:
                raise NotFound(f"profile {profile_id} not found")
            return copy.deepcopy(profile)

    def create_profile(self, profile_id: str, profile: Json) -> Json:
        stored = profiles.new_profile(profile_id, copy.deepcopy(profile), rules.now())
        with self._lock:
            if profile_id in self._profiles:
                raise profiles.already_exists(profile_id)
            self._profiles[profile_id] = stored
            return copy.deepcopy(stored)

    # --- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._worker.start()

    def close(self) -> None:
        self._worker.close()


def _resume(segments: SortedKeyList, indices: range, position: str, reverse: bool) -> range:
    """Continue a segment listing after the segment whose timerange the cursor names."""
    key = rules.segment_cursor_key(position)
    if reverse:
        stop = bisect.bisect_left(segments, key, key=rules.Segment.start_key)
        return range(min(indices.start, stop - 1), indices.stop, -1) if indices else indices
    start = bisect.bisect_right(segments, key, key=rules.Segment.start_key)
    return range(max(indices.start, start), indices.stop)


_paged = rules.paged
_set_tag = rules.set_tag
_set_field = rules.set_field


def create(options: Mapping[str, Any], services: BackendServices) -> MemoryBackend:
    """Backend factory registered as ``memory``."""
    label = str(options.get("storage_label", "memory"))
    info = StorageBackendInfo(id=str(uuid.uuid4()), label=label, store_product="memory", default_storage=True)
    return MemoryBackend([MemoryObjectStore(info, services.signer)], services)
