"""HLS media playlists (RFC 8216) from a flow's segments, line by line.

A playlist is made while the segments are read (a page at a time from the store), so the lines
come from a generator and nothing holds the whole flow. What TAMS stores maps onto HLS as follows:

* each segment is one media segment, its ``#EXTINF`` the exact length of its timerange;
* ``#EXT-X-MAP`` names a segment's init object (fragmented MP4, 8.x ``init_object_id``) whenever
  it differs from the one before;
* ``#EXT-X-DISCONTINUITY`` marks where the timeline has a hole (a segment that does not start
  where the one before ended), and where ``ts_offset`` changes (the media timestamps jump even
  when the flow's timeline does not);
* ``#EXT-X-PROGRAM-DATE-TIME`` gives the flow time (TAI, as UTC) of the first segment and of the
  first after each discontinuity;
* a finished flow ends with ``#EXT-X-ENDLIST`` (a VOD playlist); one still being ingested is an
  EVENT playlist, which players reload as it grows.

``#EXT-X-TARGETDURATION`` comes before the first segment, so the caller says it: a bound on every
segment's duration (the flow's declared segment duration, or a first pass over the segments).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from backends import tai
from backends.timerange import NS_PER_SEC, TimeRange

# EXT-X-MAP without I-frame-only playlists needs version 6; fractional EXTINF needs 3.
VERSION = 6


@dataclass(frozen=True)
class MediaSegment:
    """One TAMS segment as a playlist lists it."""

    timerange: TimeRange  # on the flow's timeline; bounded
    uri: str  # where a player GETs its bytes (a signed or presigned URL)
    init_uri: str | None = None  # its init object's URL (fragmented MP4), if it has one
    ts_offset_ns: int = 0  # the segment's ts_offset, in ns


def seconds(ns: int) -> str:
    """Exact decimal seconds of a whole number of nanoseconds: ``10``, ``0.04``, ``3.336666667``."""
    sign = "-" if ns < 0 else ""
    whole, fraction = divmod(abs(ns), NS_PER_SEC)
    digits = f"{fraction:09d}".rstrip("0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def target_duration(longest_ns: int) -> int:
    """``#EXT-X-TARGETDURATION`` for segments of at most ``longest_ns``: every EXTINF rounded to the
    nearest integer must not exceed it (RFC 8216 4.3.3.1), and it is at least 1."""
    whole, rest = divmod(longest_ns, NS_PER_SEC)
    return max(1, whole + (1 if rest * 2 >= NS_PER_SEC else 0))


class MediaPlaylist:
    """The lines of one media playlist, made a segment at a time (each call returns its lines)."""

    def __init__(self, target_s: int, ended: bool, media_sequence: int = 0) -> None:
        self.target_s = target_s
        self.ended = ended
        self.media_sequence = media_sequence
        self.previous: MediaSegment | None = None

    def header(self) -> str:
        return (
            f"#EXTM3U\n#EXT-X-VERSION:{VERSION}\n#EXT-X-TARGETDURATION:{self.target_s}\n"
            f"#EXT-X-MEDIA-SEQUENCE:{self.media_sequence}\n"
            f"#EXT-X-PLAYLIST-TYPE:{'VOD' if self.ended else 'EVENT'}\n"
        )

    def add(self, segment: MediaSegment) -> str:
        timerange, previous = segment.timerange, self.previous
        if timerange.start is None or timerange.end is None:
            raise ValueError(f"an unbounded segment cannot be played: {timerange}")
        continuous = (
            previous is not None
            and previous.timerange.end == timerange.start
            and previous.ts_offset_ns == segment.ts_offset_ns
        )
        lines = []
        if previous is not None and not continuous:
            lines.append("#EXT-X-DISCONTINUITY\n")
        if segment.init_uri is not None and (previous is None or previous.init_uri != segment.init_uri):
            lines.append(f'#EXT-X-MAP:URI="{quoted_uri(segment.init_uri)}"\n')
        if not continuous:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{tai.utc_iso(timerange.start)}\n")
        lines.append(f"#EXTINF:{seconds(timerange.end - timerange.start)},\n{segment.uri}\n")
        self.previous = segment
        return "".join(lines)

    def end(self) -> str:
        return "#EXT-X-ENDLIST\n" if self.ended else ""


def media_playlist(
    segments: Iterable[MediaSegment], *, target_s: int, ended: bool, media_sequence: int = 0
) -> Iterator[str]:
    """The playlist's text, in pieces, for ``segments`` in timeline order."""
    playlist = MediaPlaylist(target_s, ended, media_sequence)
    yield playlist.header()
    for segment in segments:
        yield playlist.add(segment)
    yield playlist.end()


def quoted_uri(uri: str) -> str:
    # A quoted-string may not hold '"', CR or LF (RFC 8216 4.2): percent-encode them.
    return uri.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
