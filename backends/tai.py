"""TAI, the timescale of TAMS timestamps, to UTC (for people and for HLS ``PROGRAM-DATE-TIME``).

TAMS timestamps count TAI seconds and nanoseconds since 1970-01-01T00:00:00 TAI (the PTP epoch).
UTC lags TAI by a whole number of seconds that grows at each leap second: 10 s from 1972, 37 s
since 2017-01-01. Before 1972 the offset was not a whole number of seconds; the 1972 value is
used for those times.
"""

from __future__ import annotations

import bisect
import datetime as dt

from backends.timerange import NS_PER_SEC as NS_PER_S

# The UTC days from which TAI - UTC took each value (IERS Bulletin C), as (year, month, seconds).
_LEAPS = (
    (1972, 1, 10),
    (1972, 7, 11),
    (1973, 1, 12),
    (1974, 1, 13),
    (1975, 1, 14),
    (1976, 1, 15),
    (1977, 1, 16),
    (1978, 1, 17),
    (1979, 1, 18),
    (1980, 1, 19),
    (1981, 7, 20),
    (1982, 7, 21),
    (1983, 7, 22),
    (1985, 7, 23),
    (1988, 1, 24),
    (1990, 1, 25),
    (1991, 1, 26),
    (1992, 7, 27),
    (1993, 7, 28),
    (1994, 7, 29),
    (1996, 1, 30),
    (1997, 7, 31),
    (1999, 1, 32),
    (2006, 1, 33),
    (2009, 1, 34),
    (2012, 7, 35),
    (2015, 7, 36),
    (2017, 1, 37),
)
_UTC_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Each offset, and the TAI second (since the epoch) from which it applies.
_OFFSETS = [offset for _, _, offset in _LEAPS]
_FROM_TAI = [
    int((dt.datetime(year, month, 1, tzinfo=dt.UTC) - _UTC_EPOCH).total_seconds()) + offset
    for year, month, offset in _LEAPS
]


def tai_minus_utc(tai_ns: int) -> int:
    """TAI - UTC in seconds at the TAI instant ``tai_ns``."""
    index = bisect.bisect_right(_FROM_TAI, tai_ns // NS_PER_S) - 1
    return _OFFSETS[max(index, 0)]


def utc_ns(tai_ns: int) -> int:
    """The UTC time (ns since 1970-01-01T00:00:00Z, leap seconds not counted) of a TAI instant."""
    return tai_ns - tai_minus_utc(tai_ns) * NS_PER_S


def utc_iso(tai_ns: int) -> str:
    """A TAI instant as an ISO 8601 UTC date-time with milliseconds, e.g. ``2026-12-06T18:00:00.040Z``."""
    ns = utc_ns(tai_ns)
    seconds, rest = divmod(ns, NS_PER_S)
    stamp = _UTC_EPOCH + dt.timedelta(seconds=seconds)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S") + f".{rest // 1_000_000:03d}Z"
