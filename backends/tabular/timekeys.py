"""Exact, sortable columns for TAMS timerange bounds.

TAMS timestamps are integers of nanoseconds with no upper limit (``99999999999999999999:0`` is a
valid timestamp), so no fixed-width integer holds them all. Each bound of a stored segment is kept
twice:

* ``*_key``, a binary column: an order-preserving encoding of the bound's exact key
  ``(ns, eps)`` (see ``backends.timerange``), so comparing two keys bytewise compares the bounds,
  inclusive/exclusive markers included, for any value, with no rounding. This is what every
  predicate on time is decided by: no overflow, no approximation.
* ``*_ns``, a 64-bit integer column: the same nanoseconds saturated to the int64 range. It is
  monotonic in the exact value, so ``a <= b`` implies ``sat(a) <= sat(b)``; predicates on it are
  added beside the exact ones only to let the engine prune by min/max statistics (DuckDB zone maps,
  VAST DB chunk ranges) cheaply. It never decides a result.

Binary and int64 comparisons with literals are both pushed down by DuckDB and VAST DB.
"""

from __future__ import annotations

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def saturate(ns: int) -> int:
    return min(max(ns, INT64_MIN), INT64_MAX)


def encode_int(value: int) -> bytes:
    """Bytes that sort (bytewise) as the integers do: sign, length, then magnitude."""
    magnitude = abs(value)
    body = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "big")
    if len(body) > 0xFFFF:
        raise ValueError("integer too large to encode")
    if value >= 0:
        return b"\x02" + len(body).to_bytes(2, "big") + body
    # Negative: longer magnitudes sort first, and within a length larger magnitudes sort first.
    return b"\x01" + (0xFFFF - len(body)).to_bytes(2, "big") + bytes(255 - b for b in body)


def encode_key(ns: int, eps: int) -> bytes:
    """A finite bound key ``(1, ns, eps)`` (eps -1 just before, 0 at, +1 just after ``ns``)."""
    return encode_int(ns) + bytes((eps + 1,))


def decode_int(data: bytes) -> int:
    """The inverse of :func:`encode_int` (for tests and tools)."""
    length = int.from_bytes(data[1:3], "big")
    if data[0] == 2:
        return int.from_bytes(data[3 : 3 + length], "big")
    length = 0xFFFF - length
    return -int.from_bytes(bytes(255 - b for b in data[3 : 3 + length]), "big")
