"""Hypothesis strategies for TAMS values: timestamps, timeranges, flows, segment layouts.

Everything here is plain data (strings and dicts ready to send); nothing imports server code.
What depends on the TAMS version takes it as ``version`` (``SuiteConfig.version``; "7.0" by default).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from contract_tests.suite import version_tuple
from contract_tests.timeline import NS, Range, ns_to_ts

VIDEO = "urn:x-nmos:format:video"
AUDIO = "urn:x-nmos:format:audio"
DATA = "urn:x-nmos:format:data"
IMAGE = "urn:x-tam:format:image"
MULTI = "urn:x-nmos:format:multi"
FORMATS = {"video": VIDEO, "audio": AUDIO, "data": DATA, "image": IMAGE, "multi": MULTI}
KINDS = tuple(FORMATS)

HUGE_SECONDS = (2**31, 2**32, 2**63 // NS, 2**63, 2**64, 10**30)


def since(version: str, first: str) -> bool:
    """Whether ``version`` is ``first`` or later."""
    return version_tuple(version) >= version_tuple(first)


def uuids() -> st.SearchStrategy[str]:
    """Fresh random v4 UUIDs (never Hypothesis-shrunk to a shared value: the store may be live)."""
    return st.builds(lambda _: str(uuid.uuid4()), st.integers())


# --------------------------------------------------------------------------- timestamps and timeranges

nanos = st.one_of(st.sampled_from([0, 1, 500_000_000, 999_999_999]), st.integers(0, NS - 1))
seconds = st.one_of(st.integers(0, 100), st.sampled_from(HUGE_SECONDS), st.integers(0, 2**70))


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """Any TAMS Timestamp string: signs (incl. ``-0:0``), boundaries of the nanosecond field, huge seconds."""
    sign = draw(st.sampled_from(["", "", "-"]))
    return f"{sign}{draw(seconds)}:{draw(nanos)}"


def _marker_pair() -> st.SearchStrategy[tuple[str, str]]:
    return st.tuples(st.sampled_from(["", "[", "("]), st.sampled_from(["", "]", ")"]))


@st.composite
def timeranges(draw: st.DrawFn, points: st.SearchStrategy[int] | None = None) -> str:
    """Any string of the TimeRange grammar: ``_``, ``()``, ``""``, ``[ts]``, bare ``ts``, ``[a_b)``, ``(a_``, ``_b]``...

    ``points`` (ns) chooses the timestamps; by default any timestamp, including huge and negative ones.
    """
    ts = timestamps() if points is None else st.one_of(points.map(ns_to_ts), timestamps())
    opening, closing = draw(_marker_pair())
    form = draw(st.sampled_from(["range", "range", "range", "start", "end", "single", "eternity", "empty", "marks"]))
    if form == "eternity":
        return draw(st.sampled_from(["_", "[_]", "(_)", "[_)"]))
    if form == "empty":
        return draw(st.sampled_from(["()", "", "[]", "[", ")"]))
    if form == "marks":
        return opening + closing
    if form == "single":
        return f"{opening}{draw(ts)}{closing}"
    if form == "start":
        return f"{opening}{draw(ts)}_{closing}"
    if form == "end":
        return f"{opening}_{draw(ts)}{closing}"
    a, b = draw(ts), draw(ts)
    if draw(st.booleans()):
        a, b = b, a
    return f"{opening}{a}_{b}{closing}"


def query_timeranges(boundaries: list[int]) -> st.SearchStrategy[str]:
    """Timeranges biased towards the given boundaries (and one nanosecond either side)."""
    if not boundaries:
        return timeranges(st.integers(-10 * NS, 100 * NS))
    near = st.sampled_from(boundaries).flatmap(lambda b: st.sampled_from([b - 1, b, b + 1]))
    return timeranges(st.one_of(near, near, st.integers(min(boundaries) - NS, max(boundaries) + NS)))


# --------------------------------------------------------------------------- flows


def video_flow(**extra: Any) -> dict[str, Any]:
    """A fixed video flow body, valid in every version (8.0+ requires ``frame_rate`` unless ``vfr``),
    without ``id``/``source_id``; ``extra`` adds or replaces fields."""
    essence = {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 25}}
    return {"format": VIDEO, "codec": "video/h264", "container": "video/mp2t", "essence_parameters": essence, **extra}


labels = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=12)
tag_names = st.sampled_from(["genre", "team", "lang", "x.y", "with space", "ünï"])
# String tag values (the only kind in 7.0). "a,b" is one value holding a comma.
tag_values = st.sampled_from(["news", "sport", "en", "", "a,b", "ünï", "v" * 40])
tags = st.dictionaries(tag_names, tag_values, max_size=3)
# 8.0+ (tags.json, ADR-0040): a tag value is a string or an array of strings.
tag_lists = st.lists(st.sampled_from(["news", "sport", "en", "a,b", "ünï"]), max_size=3)


def tag_values_for(version: str, single: bool = False) -> st.SearchStrategy[Any]:
    """Tag values a client of ``version`` may write: strings, and from 8.0 arrays of strings in
    ``tags`` objects. ``single``: the body of PUT .../tags/{name}, a string until 8.2 made it
    "string or array of strings" too."""
    if not since(version, "8.2" if single else "8.0"):
        return tag_values
    return st.one_of(tag_values, tag_values, tag_lists)


def tags_for(version: str) -> st.SearchStrategy[dict[str, Any]]:
    return tags if not since(version, "8.0") else st.dictionaries(tag_names, tag_values_for(version), max_size=3)


def tag_filter_values(version: str) -> st.SearchStrategy[str]:
    """Values of a ``tag.{name}`` query. 7.0: one exact string (any tag value, commas included).
    8.0+: a comma-separated list matched any-of, of the pattern of ``url-tag-list.json``
    (``^([^,]+(,[^,]+)*)?$``: no empty element; the empty string is allowed)."""
    if not since(version, "8.0"):
        return tag_values
    return st.sampled_from(["news", "sport", "en", "ünï", "v" * 40, "news,sport", "a,b", "en,ünï,zz", ""])


mime = st.sampled_from(["video/h264", "video/mp2t", "audio/aac", "text/vtt", "image/jpeg", "application/mxf"])
bit_rates = st.integers(0, 10**7)
ratios = st.fixed_dictionaries({"numerator": st.integers(1, 60_000)}, optional={"denominator": st.integers(1, 1001)})


def essence_parameters(kind: str, version: str = "7.0") -> st.SearchStrategy[dict[str, Any]]:
    """Valid ``essence_parameters`` of a ``kind`` flow for ``version``.

    Video: 7.0 leaves ``frame_rate`` optional; from 8.0 (flow-video.json, ADR-0041) it MUST be set
    unless ``vfr`` is true, and MUST NOT be set when it is. 8.2 adds ``init_segments`` (video,
    audio, data, multi); only ``false`` is sent (``true`` requires every object to have an
    ``init_object``).
    """
    eight = since(version, "8.0")
    extra: dict[str, st.SearchStrategy[Any]] = {}
    if since(version, "8.2") and kind in ("video", "audio", "data", "multi"):
        extra["init_segments"] = st.just(False)
    if kind == "video":
        common = {
            "bit_depth": st.sampled_from([8, 10]),
            "interlace_mode": st.sampled_from(["progressive", "interlaced_tff"]),
            "colorspace": st.sampled_from(["BT709", "BT2020"]),
            "transfer_characteristic": st.sampled_from(["SDR", "HLG", "PQ"]),
            **extra,
        }
        size = {"frame_width": st.sampled_from([640, 1280, 1920]), "frame_height": st.sampled_from([360, 720, 1080])}
        if not eight:
            return st.fixed_dictionaries(size, optional={"frame_rate": ratios, **common})
        fixed = st.fixed_dictionaries({**size, "frame_rate": ratios}, optional={"vfr": st.just(False), **common})
        variable = st.fixed_dictionaries({**size, "vfr": st.just(True)}, optional=common)
        return st.one_of(fixed, fixed, fixed, variable)
    if kind == "image":
        return st.fixed_dictionaries(
            {"frame_width": st.sampled_from([640, 1920]), "frame_height": st.sampled_from([360, 1080])}
        )
    if kind == "audio":
        return st.fixed_dictionaries(
            {"sample_rate": st.sampled_from([44100, 48000]), "channels": st.integers(1, 16)},
            optional={"bit_depth": st.sampled_from([16, 24]), **extra},
        )
    if kind == "data":
        return st.fixed_dictionaries({}, optional={"data_type": st.just("urn:x-tams:data:subtitle"), **extra})
    if kind == "multi":  # 8.2 only: multi flows gained a (closed) essence_parameters object
        return st.fixed_dictionaries({}, optional=extra)
    raise ValueError(kind)


@st.composite
def flows(
    draw: st.DrawFn, kind: str | None = None, container: bool | None = None, version: str = "7.0"
) -> dict[str, Any]:
    """A valid flow body of ``kind`` (any when None) for TAMS ``version``, without ``id``/``source_id``.

    ``container``: True/False forces ``container`` set/unset; None leaves it to chance (mostly set).
    """
    kind = kind or draw(st.sampled_from(KINDS))
    body: dict[str, Any] = {"format": FORMATS[kind]}
    if kind != "multi":
        body["codec"] = draw(mime)
        body["essence_parameters"] = draw(essence_parameters(kind, version))
    else:
        if draw(st.booleans()):
            body["codec"] = draw(mime)
        if since(version, "8.2") and draw(st.booleans()):
            body["essence_parameters"] = draw(essence_parameters(kind, version))
    if container is None:
        # Hypothesis favours the first choice: make it the common case.
        container = draw(st.sampled_from([True] * 9 + [False]))
    if container:
        body["container"] = draw(mime)
    optional = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "label": labels,
                "description": labels,
                "tags": tags_for(version),
                "avg_bit_rate": bit_rates,
                "max_bit_rate": bit_rates,
                "generation": st.integers(0, 3),
                "segment_duration": ratios,
                "metadata_version": st.text("abcdef0123456789", min_size=1, max_size=8),
            },
        )
    )
    body.update(optional)
    return body


# --------------------------------------------------------------------------- segment layouts


@dataclass(frozen=True)
class PlannedSegment:
    timerange: str  # as it will be sent (any grammar form)
    relation: str  # how it was placed: gap, adjacent, touching, overlap, same, inside, instant

    @property
    def range(self) -> Range:
        return Range.parse(self.timerange)


def _spell(start: int, end: int, start_inclusive: bool, end_inclusive: bool, bare_ok: bool) -> str:
    """A bounded range in one of its spellings (markers omitted where that means the same)."""
    s, e = ns_to_ts(start), ns_to_ts(end)
    if start == end:
        return f"[{s}]" if not bare_ok else f"{s}"
    left = "[" if start_inclusive else "("
    right = "]" if end_inclusive else ")"
    if bare_ok and start_inclusive and end_inclusive:
        return f"{s}_{e}"
    if bare_ok and start_inclusive:
        return f"{s}_{e}{right}"
    return f"{left}{s}_{e}{right}"


@st.composite
def segment_layouts(draw: st.DrawFn, max_size: int = 8, origin: int | None = None) -> list[PlannedSegment]:
    """Segments to register on one flow, in registration order.

    Each one is placed relative to an earlier one: after a gap, exactly adjacent (the same instant
    exclusive on one side and inclusive on the other), touching (inclusive on both sides, so
    overlapping in one instant), overlapping, equal, inside, or as an instantaneous ``[ts]``. The
    overlapping kinds must be rejected by a conforming server.
    """
    count = draw(st.integers(1, max_size))
    if origin is None:
        origin = draw(st.sampled_from([0, 0, -7 * NS, 1_694_429_247 * NS, 2**64 * NS]))
    cursor_end, cursor_end_inclusive = origin, False
    placed: list[tuple[int, int, bool, bool]] = []
    out: list[PlannedSegment] = []
    step = st.one_of(st.integers(1, 3).map(lambda n: n * NS), st.integers(1, 2 * NS))
    for _ in range(count):
        relation = draw(
            st.sampled_from(["gap", "adjacent", "adjacent", "touching", "overlap", "same", "inside", "instant"])
            if placed
            else st.just("gap")
        )
        bare_ok = draw(st.integers(0, 3)) == 0
        if relation in ("gap", "adjacent", "touching", "instant"):
            if relation == "gap":
                start, start_inclusive = cursor_end + draw(step), draw(st.booleans())
            elif relation == "adjacent":
                start, start_inclusive = cursor_end, not cursor_end_inclusive
            elif relation == "touching":
                start, start_inclusive = cursor_end, True
            else:
                start, start_inclusive = cursor_end + draw(step), True
            if relation == "instant":
                end, end_inclusive = start, True
            else:
                end, end_inclusive = start + draw(step), draw(st.sampled_from([False, False, True]))
            if relation == "touching" and not cursor_end_inclusive:
                relation = "adjacent"  # touching an exclusive end is mere adjacency
        else:
            a_start, a_end, a_si, a_ei = draw(st.sampled_from(placed))
            if relation == "same":
                start, end, start_inclusive, end_inclusive = a_start, a_end, a_si, a_ei
            elif relation == "inside" and a_end - a_start > 2:
                start = draw(st.integers(a_start + 1, a_end - 2))
                end = draw(st.integers(start + 1, a_end - 1))
                start_inclusive, end_inclusive = True, False
            else:
                relation = "overlap"
                start = a_end - max(1, (a_end - a_start) // 2)
                end = a_end + draw(step)
                start_inclusive, end_inclusive = True, False
        out.append(PlannedSegment(_spell(start, end, start_inclusive, end_inclusive, bare_ok), relation))
        placed.append((start, end, start_inclusive, end_inclusive))
        if (end, end_inclusive) > (cursor_end, cursor_end_inclusive):
            cursor_end, cursor_end_inclusive = end, end_inclusive
    return out


def accepted(layout: list[PlannedSegment]) -> list[PlannedSegment]:
    """Which planned segments a conforming server keeps: each one not overlapping one kept before it."""
    kept: list[PlannedSegment] = []
    for segment in layout:
        if not any(segment.range.overlaps(k.range) for k in kept):
            kept.append(segment)
    return kept


payloads = st.binary(min_size=1, max_size=2048)


@st.composite
def relative_timeranges(draw: st.DrawFn, existing: list[Range]) -> str:
    """A bounded segment timerange placed against ``existing`` ones: in a gap, adjacent, touching
    (one shared instant), overlapping, equal, inside, instantaneous, or anywhere."""
    bounded = [r for r in existing if not r.empty and r.start is not None and r.end is not None]
    step = draw(st.one_of(st.integers(1, 3).map(lambda n: n * NS), st.integers(1, 2 * NS)))
    relation = draw(
        st.sampled_from(["after", "adjacent", "touching", "overlap", "same", "inside", "instant", "anywhere"])
        if bounded
        else st.sampled_from(["anywhere", "instant"])
    )
    bare_ok = draw(st.integers(0, 3)) == 0
    if relation == "anywhere":
        start = draw(st.integers(-5, 60)) * NS // 2
        return _spell(start, start + step, draw(st.booleans()), draw(st.booleans()), bare_ok)
    if relation == "instant":
        point = draw(st.sampled_from([r.end for r in bounded] + [0, 7 * NS])) if bounded else 0
        return f"[{ns_to_ts(point)}]"
    other = draw(st.sampled_from(bounded))
    assert other.start is not None and other.end is not None
    if relation == "after":
        last = max(bounded, key=lambda r: r.sort_key()[1])
        assert last.end is not None
        return _spell(last.end + step, last.end + 2 * step, True, False, bare_ok)
    if relation == "adjacent":
        if draw(st.booleans()):
            return _spell(other.end, other.end + step, not other.end_inclusive, False, bare_ok)
        return _spell(other.start - step, other.start, True, not other.start_inclusive, bare_ok)
    if relation == "touching":
        return _spell(other.end, other.end + step, True, False, bare_ok)
    if relation == "same":
        return str(other)
    if relation == "inside" and other.end - other.start > 2:
        start = draw(st.integers(other.start + 1, other.end - 2))
        return _spell(start, draw(st.integers(start + 1, other.end - 1)), True, False, bare_ok)
    middle = other.start + max(1, (other.end - other.start) // 2)
    return _spell(middle, other.end + step, True, False, bare_ok)


# --------------------------------------------------------------------------- collections

roles = st.sampled_from(["video", "L", "R", "role0"])


def collection_items(members: list[str], version: str = "7.0") -> st.SearchStrategy[list[dict[str, Any]]]:
    """A ``flow_collection`` of distinct ``members``. ``role`` is required in 7.0 (collection-item.json)
    and optional from 8.2 (ADR-0056), where the list is also ordered."""
    item = (
        st.fixed_dictionaries({"id": st.sampled_from(members)}, optional={"role": roles})
        if since(version, "8.2")
        else st.fixed_dictionaries({"id": st.sampled_from(members), "role": roles})
    )
    return st.lists(item, max_size=3, unique_by=lambda i: i["id"])
