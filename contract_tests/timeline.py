"""TAMS TimeRange maths written independently of any server: the suite's own brute-force oracle.

Deliberately a second, naive implementation (no server code is imported), so that a bug shared by
a server and its time maths cannot hide itself. Semantics (appnote 0008; the TimeRange and Timestamp
grammars are the same in TAMS 7.0 and 8.2, which only documents ``_`` and ``()`` in more words):

* a missing clusivity marker next to a timestamp means inclusive (``0:0_10:0`` is ``[0:0_10:0]``);
* a marker next to an omitted timestamp is ignored; marker-only strings are empty;
* a range is empty when end < start, or end == start and either side is exclusive.

A range is held as a pair of *points* on the extended time line: ``(ns, eps)`` where ``eps`` is
-1 ("just before"), 0 ("at") or +1 ("just after"), with ``None`` for an infinite side. Two ranges
overlap when each one's start point is <= the other's end point.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NS = 1_000_000_000
_TS = r"-?(?:0|[1-9][0-9]*):(?:0|[1-9][0-9]{0,8})"
_RANGE = re.compile(rf"(?P<sm>[\[(])?(?P<s>{_TS})?(?:(?P<sep>_)(?P<e>{_TS})?)?(?P<em>[\])])?")
_NEG_INF = (-1, 0, 0)
_POS_INF = (1, 0, 0)


def ts_to_ns(text: str) -> int:
    negative = text.startswith("-")
    seconds, _, nanos = text.lstrip("-").partition(":")
    value = int(seconds) * NS + int(nanos)
    return -value if negative else value


def ns_to_ts(ns: int) -> str:
    sign = "-" if ns < 0 else ""
    seconds, nanos = divmod(abs(ns), NS)
    return f"{sign}{seconds}:{nanos}"


@dataclass(frozen=True, eq=False)
class Range:
    """A TimeRange: ``start``/``end`` in ns (None = infinite) and their clusivity; ``empty`` wins.

    Two ranges are equal when they hold the same instants. Time is counted in whole nanoseconds,
    so ``(1:0_2:0)`` and ``[1:1_1:999999999]`` are one range: a server may spell the ranges it
    computes (a flow's ``timerange``, ``X-Paging-Timerange``) either way.
    """

    start: int | None
    end: int | None
    start_inclusive: bool = True
    end_inclusive: bool = False
    empty: bool = False

    @classmethod
    def parse(cls, text: str) -> Range:
        match = _RANGE.fullmatch(text)
        if match is None:
            raise ValueError(f"not a TAMS TimeRange: {text!r}")
        start = None if match["s"] is None else ts_to_ns(match["s"])
        if match["sep"] is None:
            if start is None:
                return EMPTY
            end = start
        else:
            end = None if match["e"] is None else ts_to_ns(match["e"])
        return cls.make(start, end, match["sm"] != "(", match["em"] != ")")

    @classmethod
    def make(cls, start: int | None, end: int | None, start_inclusive: bool, end_inclusive: bool) -> Range:
        start_inclusive = start_inclusive and start is not None
        end_inclusive = end_inclusive and end is not None
        if (
            start is not None
            and end is not None
            and (end < start or (end == start and not (start_inclusive and end_inclusive)))
        ):
            return EMPTY
        return cls(start, end, start_inclusive, end_inclusive)

    def _instants(self) -> tuple[int | None, int | None] | None:
        """First and last instant (None: unbounded on that side); None for a range with none."""
        if self.empty:
            return None
        first = None if self.start is None else self.start + (0 if self.start_inclusive else 1)
        last = None if self.end is None else self.end - (0 if self.end_inclusive else 1)
        if first is not None and last is not None and last < first:
            return None
        return first, last

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Range) and self._instants() == other._instants()

    def __hash__(self) -> int:
        return hash(self._instants())

    def canonical(self) -> str:
        """One spelling per set of instants (inclusive bounds), for comparing by string."""
        instants = self._instants()
        if instants is None:
            return "()"
        first, last = instants
        return str(Range.make(first, last, True, True))

    def _start_point(self) -> tuple[int, int, int]:
        if self.start is None:
            return _NEG_INF
        return (0, self.start, 0 if self.start_inclusive else 1)

    def _end_point(self) -> tuple[int, int, int]:
        if self.end is None:
            return _POS_INF
        return (0, self.end, 0 if self.end_inclusive else -1)

    def overlaps(self, other: Range) -> bool:
        if self.empty or other.empty:
            return False
        return self._start_point() <= other._end_point() and other._start_point() <= self._end_point()

    def covers(self, other: Range) -> bool:
        if other.empty:
            return True
        if self.empty:
            return False
        return self._start_point() <= other._start_point() and other._end_point() <= self._end_point()

    def extend(self, other: Range) -> Range:
        """The smallest range holding both."""
        if other.empty:
            return self
        if self.empty:
            return other
        lo = min(self, other, key=Range._start_point)
        hi = max(self, other, key=Range._end_point)
        return Range.make(lo.start, hi.end, lo.start_inclusive, hi.end_inclusive)

    def intersect(self, other: Range) -> Range:
        if self.empty or other.empty:
            return EMPTY
        lo = max(self, other, key=Range._start_point)
        hi = min(self, other, key=Range._end_point)
        return Range.make(lo.start, hi.end, lo.start_inclusive, hi.end_inclusive)

    def sort_key(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        return self._start_point(), self._end_point()

    def __str__(self) -> str:
        if self.empty:
            return "()"
        if self.start is not None and self.start == self.end:
            return f"[{ns_to_ts(self.start)}]"
        start = "" if self.start is None else ("[" if self.start_inclusive else "(") + ns_to_ts(self.start)
        end = "" if self.end is None else ns_to_ts(self.end) + ("]" if self.end_inclusive else ")")
        return f"{start}_{end}"


EMPTY = Range(0, 0, False, False, empty=True)
ETERNITY = Range(None, None, False, False)


def same(a: str, b: str) -> bool:
    """Whether two TimeRange strings denote the same set of instants (of whole nanoseconds)."""
    return Range.parse(a) == Range.parse(b)


def overlapping(registered: list[str], query: str) -> list[str]:
    """Brute force: the registered ranges overlapping ``query``, in time order."""
    q = Range.parse(query)
    hits = [r for r in registered if Range.parse(r).overlaps(q)]
    return sorted(hits, key=lambda r: Range.parse(r).sort_key())


def extent(ranges: list[str]) -> Range:
    out = EMPTY
    for r in ranges:
        out = out.extend(Range.parse(r))
    return out
