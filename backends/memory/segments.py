"""The segments of the in-memory store: listing (with page resumption), registration with the
overlap check, and deletion of covered segments.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from sortedcontainers import SortedKeyList

from backends import events, rules
from backends import media_objects as mo
from backends.base import FailedSegment, Json, PageRequest, SegmentPage, SegmentQuery, UrlOptions
from backends.errors import BadRequest, TamsError
from backends.memory.core import MemoryCore, _key, _no_segments, _overlapping, _Segment, _segment_keys
from backends.timerange import TimeRange


class SegmentsMixin(MemoryCore):
    """``/flows/{id}/segments``."""

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
            chosen: list[_Segment] = []
            next_key = None
            for i in indices:
                segment = segments[i]
                if query.object_id is not None and segment.object.id != query.object_id:
                    continue
                if len(chosen) == limit:
                    next_key = rules.encode_cursor(str(chosen[-1].timerange))
                    break
                chosen.append(segment)
            shown = [(s, s.as_rules_segment()) for s in chosen]
            items = [self._segment_view(*s, urls, query.include_object_timerange) for s in shown]
            return SegmentPage(items, limit, next_key, rules.segments_extent(s for _, s in shown))

    def _segment_view(
        self, stored: _Segment, segment: rules.Segment, options: UrlOptions, include_object_timerange: bool
    ) -> Json:
        """The view of ``stored``, which the rules see as ``segment``."""
        view = rules.segment_view(segment, self._object_urls(segment.object_id, options))
        record = stored.object
        if record.stored_facts is stored:  # its object's facts are its timerange (shown already)
            if include_object_timerange:
                view["object_timerange"] = view["timerange"]
            return view
        facts = record.facts
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
            flow_id = flow["id"]  # one copy of the id for every record naming the flow
            labels = [s.info.label for s in self._stores.values()]
            failed = []
            added = []
            for body in segments:
                try:
                    segment = rules.parse_segment(body, labels)
                    posted = mo.posted_facts(body, segment.timerange)
                    instances = mo.posted_instances(body, labels)
                    added.append((self._add_segment(flow_id, segment, posted, instances), segment))
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
                if not events.wanted(self._events):
                    return failed
                options = UrlOptions(verbose_storage=True, for_events=True)
                views = [self._segment_view(*s, options, True) for s in added]
                self._flow_event(events.SEGMENTS_ADDED, flow_id, {"flow_id": flow_id, "segments": views})
            return failed

    def _add_segment(
        self, flow_id: str, segment: rules.Segment, posted: mo.PostedFacts, instances: list[Json]
    ) -> _Segment:
        stored = self._segments.get(flow_id)
        if stored is None:
            stored = self._segments[flow_id] = _no_segments()
        start, end = _segment_keys(segment.timerange)
        # Appending after the last segment (live ingest) overlaps nothing: no search then.
        clash = _overlapping(stored, segment.timerange) if stored and stored[-1].end >= start else None
        if clash:
            other = stored[clash[0]]
            raise BadRequest(f"segment {segment.timerange} overlaps segment {other.timerange} of this flow")
        object_id = segment.object_id
        record = self._usable(object_id, flow_id, mo.MEDIA)
        facts = mo.register_facts(object_id, record.facts, posted)
        external = mo.add_instances(object_id, record.external, instances)
        init_id = facts.init_object_id
        init_record = self._usable(init_id, flow_id, mo.INIT) if init_id is not None else None
        if object_id not in self._objects:  # last: a segment with another fault gets that error
            mo.check_reachable(object_id, instances, flow_id)
        # Every check passed: register.
        self._objects.setdefault(object_id, record)
        added = _Segment(start, end, record, segment.fields or None)
        record.kind, record.external = mo.MEDIA, external or ()
        if facts != record.facts:  # the first registration says them (a later one may add key frames)
            plain = facts == mo.ObjectFacts(str(segment.timerange))
            record.stored_facts = added if plain else facts  # see _Object.stored_facts
        self._claim(record, object_id, flow_id)
        if init_id is not None and init_record is not None:
            self._objects.setdefault(init_id, init_record)
            init_record.kind = mo.INIT
            self._claim(init_record, init_id, flow_id)
        stored.add(added)
        return added

    def _covered(self, flow_id: str, timerange: TimeRange, object_id: str | None) -> Iterator[_Segment]:
        """The flow's segments wholly inside ``timerange`` (and of ``object_id``), in time order."""
        segments = self._segments.get(flow_id)
        if not segments:
            return
        for i in _overlapping(segments, timerange):
            segment = segments[i]
            if timerange.covers(segment.timerange) and object_id in (None, segment.object.id):
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
            self._drop_reference(segment.object.id, flow_id)
        if chosen:
            self._flows[flow_id]["segments_updated"] = rules.now()
            extent = str(rules.segments_extent(s.as_rules_segment() for s in chosen))
            self._flow_event(events.SEGMENTS_DELETED, flow_id, {"flow_id": flow_id, "timerange": extent})
        if limit is None or len(chosen) < limit:
            return TimeRange.never()
        return rules.remaining_after(timerange, chosen[-1].timerange)


def _resume(segments: SortedKeyList, indices: range, position: str, reverse: bool) -> range:
    """Continue a segment listing after the segment whose timerange the cursor names."""
    key = _key(rules.segment_cursor_key(position))
    if reverse:
        stop = segments.bisect_key_left(key)
        return range(min(indices.start, stop - 1), indices.stop, -1) if indices else indices
    start = segments.bisect_key_right(key)
    return range(max(indices.start, start), indices.stop)
