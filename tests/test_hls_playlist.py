"""HLS media playlists from segments: exact durations, discontinuities, init maps, program dates."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from backends import tai
from backends.timerange import NS_PER_SEC, TimeRange
from tams_server.hls.playlist import MediaSegment, media_playlist, seconds, target_duration

UTC_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def tai_ns(utc: dt.datetime, offset_s: int) -> int:
    return (int((utc - UTC_EPOCH).total_seconds()) + offset_s) * NS_PER_SEC


def test_tai_to_utc_across_leap_seconds() -> None:
    new_year_2017 = dt.datetime(2017, 1, 1, tzinfo=dt.UTC)
    assert tai.utc_iso(tai_ns(new_year_2017, 37)) == "2017-01-01T00:00:00.000Z"
    assert tai.utc_iso(tai_ns(new_year_2017, 36) - NS_PER_SEC) == "2016-12-31T23:59:59.000Z"
    assert tai.tai_minus_utc(tai_ns(dt.datetime(2026, 12, 6, tzinfo=dt.UTC), 37)) == 37
    assert tai.tai_minus_utc(tai_ns(dt.datetime(1980, 6, 1, tzinfo=dt.UTC), 19)) == 19
    assert tai.tai_minus_utc(0) == 10  # before 1972: the first whole-second offset
    assert tai.utc_iso(tai_ns(dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC), 37) + 40_000_000) == (
        "2024-05-01T12:00:00.040Z"
    )


@given(st.integers(min_value=-(10**20), max_value=10**20))
def test_seconds_are_exact(ns: int) -> None:
    assert Decimal(seconds(ns)) * NS_PER_SEC == ns


@given(st.integers(min_value=0, max_value=10**13))
def test_target_duration_bounds_every_rounded_duration(longest: int) -> None:
    target = target_duration(longest)
    assert target >= 1
    rounded = int(Decimal(longest) / NS_PER_SEC + Decimal("0.5"))
    assert rounded <= target <= max(1, rounded)


# A flow: segments in order, each a duration, a hole before it (0: none), a ts_offset and an init id.
segments_strategy = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=20 * NS_PER_SEC),
        st.sampled_from([0, 0, 0, 1, 2_000_000_000]),
        st.sampled_from([0, 0, 0, 5 * NS_PER_SEC]),
        st.sampled_from([None, "init-a", "init-a", "init-b"]),
    ),
    min_size=0,
    max_size=30,
)


def build(shape: list[tuple[int, int, int, str | None]], start: int) -> list[MediaSegment]:
    made, at = [], start
    for index, (length, hole, offset, init) in enumerate(shape):
        at += hole
        made.append(
            MediaSegment(
                TimeRange(at, at + length),
                f"https://media.example/{index}?signature=x",
                f"https://media.example/{init}" if init else None,
                offset,
            )
        )
        at += length
    return made


@given(segments_strategy, st.integers(min_value=0, max_value=2 * 10**18), st.booleans())
def test_a_playlist_lists_every_segment_with_its_exact_duration_and_marks(
    shape: list[tuple[int, int, int, str | None]], start: int, ended: bool
) -> None:
    segments = build(shape, start)
    longest = max((s.timerange.end - s.timerange.start for s in segments), default=0)  # type: ignore[operator]
    lines = "".join(media_playlist(segments, target_s=target_duration(longest), ended=ended)).splitlines()

    assert lines[0] == "#EXTM3U"
    target = int(next(line for line in lines if line.startswith("#EXT-X-TARGETDURATION:")).split(":")[1])
    assert ("#EXT-X-ENDLIST" in lines) is ended and (lines[-1] == "#EXT-X-ENDLIST") is ended
    assert ("#EXT-X-PLAYLIST-TYPE:VOD" if ended else "#EXT-X-PLAYLIST-TYPE:EVENT") in lines

    # Each segment's tags are the lines since the previous segment's URI.
    listed: list[tuple[list[str], str, str]] = []  # (tags, EXTINF value, uri)
    tags: list[str] = []
    body = lines[lines.index(next(line for line in lines if line.startswith("#EXT-X-PLAYLIST-TYPE"))) + 1 :]
    for line in body:
        if line.startswith("#EXTINF:"):
            extinf = line.removeprefix("#EXTINF:").rstrip(",")
        elif line.startswith("#"):
            tags.append(line)
        else:
            listed.append((tags, extinf, line))
            tags = []
    assert [uri for _, _, uri in listed] == [s.uri for s in segments]

    previous: MediaSegment | None = None
    for (tags, extinf, _), segment in zip(listed, segments, strict=True):
        start_ns, end_ns = segment.timerange.start, segment.timerange.end
        assert start_ns is not None and end_ns is not None
        assert Decimal(extinf) * NS_PER_SEC == end_ns - start_ns  # exact
        assert int(Decimal(extinf) + Decimal("0.5")) <= target
        continuous = (
            previous is not None
            and previous.timerange.end == start_ns
            and previous.ts_offset_ns == segment.ts_offset_ns
        )
        assert ("#EXT-X-DISCONTINUITY" in tags) is (previous is not None and not continuous)
        dates = [t for t in tags if t.startswith("#EXT-X-PROGRAM-DATE-TIME:")]
        assert dates == ([] if continuous else [f"#EXT-X-PROGRAM-DATE-TIME:{tai.utc_iso(start_ns)}"])
        maps = [t for t in tags if t.startswith("#EXT-X-MAP:")]
        new_init = segment.init_uri is not None and (previous is None or previous.init_uri != segment.init_uri)
        assert maps == ([f'#EXT-X-MAP:URI="{segment.init_uri}"'] if new_init else [])
        previous = segment
