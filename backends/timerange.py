"""Exact TAMS Timestamp and TimeRange value types.

Values are held as Python ints of nanoseconds, so there is no 64-bit limit and no
rounding. Semantics follow TAMS 7.0 (``schemas/timestamp.json``,
``schemas/timerange.json``) and appnote 0008:

* A missing clusivity marker next to a timestamp means *inclusive* (as BBC's
  mediatimestamp does), so ``0:0_10:0`` is ``[0:0_10:0]`` and a bare ``ts`` is ``[ts]``.
* A marker next to an omitted timestamp is ignored; ``[_]`` is eternity.
* A range is empty if end < start, or end == start and either marker is exclusive,
  so ``(ts)``, ``[ts)`` and ``(ts]`` are empty (mediatimestamp gets these wrong).
* Ranges are continuous sets: ``[0:0_10:0)`` and ``[10:0]`` do not overlap.

Ordering model
--------------
Every bound is mapped to a point on the extended time line with an infinitesimal
offset, encoded as a tuple ``(tier, ns, eps)`` (see :data:`BoundKey`):

* ``tier`` is 0 for -infinity, 1 for a finite bound and 2 for +infinity
  (``ns`` and ``eps`` are 0 for infinite bounds);
* ``eps`` is -1 for "just before ns", 0 for "at ns" and +1 for "just after ns".

A start ``[v`` is ``(1, v, 0)`` and ``(v`` is ``(1, v, 1)``; an end ``v]`` is
``(1, v, 0)`` and ``v)`` is ``(1, v, -1)``. Start keys and end keys live in the same
ordered space, so a range is non-empty iff ``start_key <= end_key`` and two non-empty
ranges overlap iff each one's start key is ``<=`` the other's end key.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "NS_PER_SEC",
    "BoundKey",
    "TimeRange",
    "Timestamp",
    "overlapping_slice",
]

NS_PER_SEC: Final = 1_000_000_000

BoundKey = tuple[int, int, int]
"""Sortable encoding of a range bound: ``(tier, ns, eps)``; see the module docstring."""

_NEG_INF_KEY: Final[BoundKey] = (0, 0, 0)
_POS_INF_KEY: Final[BoundKey] = (2, 0, 0)

_TS_PATTERN: Final = r"-?(?:0|[1-9][0-9]*):(?:0|[1-9][0-9]{0,8})"
_TIMESTAMP_RE: Final = re.compile(r"(?P<neg>-)?(?P<sec>0|[1-9][0-9]*):(?P<nsec>0|[1-9][0-9]{0,8})")
_TIMERANGE_RE: Final = re.compile(
    rf"(?P<smark>[\[(])?(?P<start>{_TS_PATTERN})?"
    rf"(?:(?P<sep>_)(?P<end>{_TS_PATTERN})?)?(?P<emark>[\])])?"
)


def _as_ns(value: int | Timestamp) -> int:
    """Coerce an int or Timestamp to int nanoseconds, rejecting bools and floats."""
    if isinstance(value, Timestamp):
        return value.ns
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected int nanoseconds or Timestamp, got {type(value).__name__}")
    return int(value)


def _format_ns(ns: int) -> str:
    sign = "-" if ns < 0 else ""
    sec, nsec = divmod(abs(ns), NS_PER_SEC)
    return f"{sign}{sec}:{nsec}"


def _parse_ns(s: str) -> int:
    if not isinstance(s, str):
        raise TypeError(f"Timestamp must be parsed from str, got {type(s).__name__}")
    m = _TIMESTAMP_RE.fullmatch(s)
    if m is None:
        raise ValueError(
            f"invalid TAMS Timestamp {s!r}: expected '{{sign?}}{{seconds}}:{{nanoseconds}}' "
            "with no leading zeros and nanoseconds <= 999999999"
        )
    try:
        sec = int(m["sec"])
    except ValueError as exc:  # only reachable past sys.get_int_max_str_digits()
        raise ValueError(f"invalid TAMS Timestamp {s!r}: seconds too long") from exc
    ns = sec * NS_PER_SEC + int(m["nsec"])
    # The sign applies to the whole value: -1:500000000 is -(1.5 s).
    return -ns if m["neg"] else ns


@dataclass(frozen=True, order=True, slots=True)
class Timestamp:
    """An exact TAMS Timestamp: a signed integer number of nanoseconds."""

    ns: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "ns", _as_ns(self.ns))

    @classmethod
    def parse(cls, s: str) -> Timestamp:
        """Parse the TAMS form ``-?(0|[1-9][0-9]*):(0|[1-9][0-9]{0,8})``.

        The sign applies to the whole value, so ``-1:500000000`` is -1.5 s and
        ``-0:0`` is zero. Raises ValueError for anything else.
        """
        return cls(_parse_ns(s))

    @classmethod
    def from_ns(cls, ns: int) -> Timestamp:
        return cls(ns)

    def to_ns(self) -> int:
        return self.ns

    def __int__(self) -> int:
        return self.ns

    def __str__(self) -> str:
        return _format_ns(self.ns)

    def __repr__(self) -> str:
        return f"Timestamp.parse({str(self)!r})"

    def __add__(self, other: Timestamp | int) -> Timestamp:
        if isinstance(other, (Timestamp, int)) and not isinstance(other, bool):
            return Timestamp(self.ns + _as_ns(other))
        return NotImplemented

    __radd__ = __add__

    def __sub__(self, other: Timestamp | int) -> Timestamp:
        if isinstance(other, (Timestamp, int)) and not isinstance(other, bool):
            return Timestamp(self.ns - _as_ns(other))
        return NotImplemented

    def __neg__(self) -> Timestamp:
        return Timestamp(-self.ns)

    def __abs__(self) -> Timestamp:
        return Timestamp(abs(self.ns))


@dataclass(frozen=True, slots=True, init=False, repr=False)
class TimeRange:
    """An exact TAMS TimeRange over integer nanoseconds, with continuous semantics.

    ``start``/``end`` of None mean -infinity/+infinity. Values are normalised on
    construction so that equality and hashing are semantic: the clusivity flag of
    an infinite side is always False, and every empty range is stored as
    ``(0, 0, False, False)`` (so ``start``/``end`` of an empty range carry no
    meaning; check :attr:`is_empty` first).
    """

    start: int | None
    end: int | None
    include_start: bool
    include_end: bool

    def __init__(
        self,
        start: int | Timestamp | None = None,
        end: int | Timestamp | None = None,
        *,
        include_start: bool = True,
        include_end: bool = False,
    ) -> None:
        """Build a range; the defaults give the half-open segment form ``[start_end)``.

        Note this differs from parsing, where a missing marker means inclusive.
        """
        s = None if start is None else _as_ns(start)
        e = None if end is None else _as_ns(end)
        inc_s = bool(include_start) and s is not None
        inc_e = bool(include_end) and e is not None
        if s is not None and e is not None and (e < s or (e == s and not (inc_s and inc_e))):
            s, e, inc_s, inc_e = 0, 0, False, False
        object.__setattr__(self, "start", s)
        object.__setattr__(self, "end", e)
        object.__setattr__(self, "include_start", inc_s)
        object.__setattr__(self, "include_end", inc_e)

    # ----------------------------------------------------------------- construction

    @classmethod
    def parse(cls, s: str) -> TimeRange:
        """Parse any string matching the TAMS TimeRange pattern; ValueError otherwise."""
        if not isinstance(s, str):
            raise TypeError(f"TimeRange must be parsed from str, got {type(s).__name__}")
        m = _TIMERANGE_RE.fullmatch(s)
        if m is None:
            raise ValueError(
                f"invalid TAMS TimeRange {s!r}: expected "
                "'{[|(}?{start}?_{end}?{]|)}?', '{[|(}?{ts}{]|)}?', '_' or '()'"
            )
        # A missing marker next to a timestamp is inclusive; next to an omitted one
        # it is ignored (the constructor drops the flag on infinite sides).
        inc_s = m["smark"] != "("
        inc_e = m["emark"] != ")"
        start = None if m["start"] is None else _parse_ns(m["start"])
        if m["sep"] is None:
            if start is None:  # "", "[", "()", "[]", ")" ...: marker-only means empty
                return cls.never()
            return cls(start, start, include_start=inc_s, include_end=inc_e)
        end = None if m["end"] is None else _parse_ns(m["end"])
        return cls(start, end, include_start=inc_s, include_end=inc_e)

    @classmethod
    def eternity(cls) -> TimeRange:
        return cls(None, None)

    @classmethod
    def never(cls) -> TimeRange:
        """The empty range (all empty ranges compare equal)."""
        return cls(0, 0, include_start=False, include_end=False)

    @classmethod
    def instant(cls, ts: int | Timestamp) -> TimeRange:
        return cls(ts, ts, include_start=True, include_end=True)

    # ------------------------------------------------------------------- properties

    @property
    def is_empty(self) -> bool:
        return self._skey() > self._ekey()

    @property
    def is_eternity(self) -> bool:
        return self.start is None and self.end is None

    @property
    def is_instantaneous(self) -> bool:
        return self.start is not None and self.start == self.end and not self.is_empty

    @property
    def has_finite_start(self) -> bool:
        """True if bounded below (empty ranges count as bounded)."""
        return self.start is not None

    @property
    def has_finite_end(self) -> bool:
        """True if bounded above (empty ranges count as bounded)."""
        return self.end is not None

    @property
    def is_bounded(self) -> bool:
        """True if both ends are finite (including empty and instantaneous ranges)."""
        return self.start is not None and self.end is not None

    @property
    def start_timestamp(self) -> Timestamp | None:
        return None if self.start is None else Timestamp(self.start)

    @property
    def end_timestamp(self) -> Timestamp | None:
        return None if self.end is None else Timestamp(self.end)

    @property
    def duration_ns(self) -> int | None:
        """end - start in ns (0 for empty/instantaneous), None if unbounded."""
        if self.start is None or self.end is None:
            return None
        return self.end - self.start

    # -------------------------------------------------------------------- sort keys

    def _skey(self) -> BoundKey:
        if self.start is None:
            return _NEG_INF_KEY
        return (1, self.start, 0 if self.include_start else 1)

    def _ekey(self) -> BoundKey:
        if self.end is None:
            return _POS_INF_KEY
        return (1, self.end, 0 if self.include_end else -1)

    @classmethod
    def from_keys(cls, skey: BoundKey, ekey: BoundKey) -> TimeRange:
        """The range between a :meth:`start_key` and an :meth:`end_key` (empty if they cross)."""
        start = None if skey[0] == 0 else skey[1]
        end = None if ekey[0] == 2 else ekey[1]
        return cls(start, end, include_start=skey[2] == 0, include_end=ekey[2] == 0)

    def start_key(self) -> BoundKey:
        """Sortable key of the lower bound: -inf < ``[v`` < ``(v`` < ``[w`` for v < w.

        Comparable with :meth:`end_key` (same ordered space). Raises ValueError
        for the empty range, which has no position.
        """
        if self.is_empty:
            raise ValueError("the empty TimeRange has no start key")
        return self._skey()

    def end_key(self) -> BoundKey:
        """Sortable key of the upper bound: ``v)`` < ``v]`` < ``w)`` for v < w < +inf.

        Raises ValueError for the empty range.
        """
        if self.is_empty:
            raise ValueError("the empty TimeRange has no end key")
        return self._ekey()

    # ------------------------------------------------------------------ set algebra

    def contains(self, ts: int | Timestamp) -> bool:
        """True if the instant ``ts`` (ns or Timestamp) lies in the range."""
        point: BoundKey = (1, _as_ns(ts), 0)
        return self._skey() <= point <= self._ekey()

    def __contains__(self, ts: int | Timestamp) -> bool:
        return self.contains(ts)

    def overlaps(self, other: TimeRange) -> bool:
        """True if the two ranges share at least one instant (empty overlaps nothing)."""
        return (
            not self.is_empty and not other.is_empty and self._skey() <= other._ekey() and other._skey() <= self._ekey()
        )

    def covers(self, other: TimeRange) -> bool:
        """True if ``other`` is a subset of ``self`` (every range covers the empty one)."""
        if other.is_empty:
            return True
        return self._skey() <= other._skey() and other._ekey() <= self._ekey()

    def intersect(self, other: TimeRange) -> TimeRange:
        """The set intersection (empty if the ranges do not overlap)."""
        if self.is_empty or other.is_empty:
            return TimeRange.never()
        return TimeRange.from_keys(max(self._skey(), other._skey()), min(self._ekey(), other._ekey()))

    def extend_to_encompass(self, other: TimeRange) -> TimeRange:
        """The smallest range containing both (fills any gap; empty is the identity)."""
        if other.is_empty:
            return self
        if self.is_empty:
            return other
        return TimeRange.from_keys(min(self._skey(), other._skey()), max(self._ekey(), other._ekey()))

    def is_before(self, other: TimeRange) -> bool:
        """True if every instant of ``self`` precedes every instant of ``other``.

        False if either is empty. For non-empty ranges exactly one of
        ``a.overlaps(b)``, ``a.is_before(b)``, ``b.is_before(a)`` holds.
        """
        if self.is_empty or other.is_empty:
            return False
        return self._ekey() < other._skey()

    # ---------------------------------------------------------------- presentation

    def __str__(self) -> str:
        """Canonical TAMS form: ``()``, ``_``, ``[ts]`` or explicit markers on finite sides."""
        if self.is_empty:
            return "()"
        if self.start is not None and self.start == self.end:
            return f"[{_format_ns(self.start)}]"  # instantaneous
        start = "" if self.start is None else ("[" if self.include_start else "(") + _format_ns(self.start)
        end = "" if self.end is None else _format_ns(self.end) + ("]" if self.include_end else ")")
        return f"{start}_{end}"

    def __repr__(self) -> str:
        return f"TimeRange.parse({str(self)!r})"


def overlapping_slice(ranges: Sequence[TimeRange], query: TimeRange) -> slice:
    """Slice of ``ranges`` that overlaps ``query``, in O(log n).

    ``ranges`` must be non-empty, pairwise non-overlapping and sorted by
    :meth:`TimeRange.start_key` (which for such lists is also sorted by
    :meth:`TimeRange.end_key`). The overlapping ranges are then contiguous:
    those whose end key is >= the query's start key and whose start key is <= the
    query's end key.
    """
    if query.is_empty:
        return slice(0, 0)
    lo = bisect.bisect_left(ranges, query.start_key(), key=TimeRange.end_key)
    hi = bisect.bisect_right(ranges, query.end_key(), key=TimeRange.start_key)
    return slice(lo, max(lo, hi))
