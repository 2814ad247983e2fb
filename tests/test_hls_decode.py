"""A real decoder plays our HLS playlists: genuine H.264 and AAC (tests/media_content.py) ingested
into a real ``tams-server`` process through the API, then opened over HTTP as
``/hls/flows/{id}.m3u8?access_token=...`` with PyAV, i.e. FFmpeg's hls demuxer, and decoded.

What FFmpeg does with timestamps (and so what is asserted): its hls demuxer reads the segments
one after another into one demuxer and passes each segment's own media timestamps through as
they are. It applies neither ``#EXT-X-DISCONTINUITY`` nor ``#EXT-X-PROGRAM-DATE-TIME`` to them.
So every decoded frame's timestamp is exactly the media time its segment promised, ``flow time -
ts_offset`` (TAMS: ``ts_offset = segment ts - media object ts``), and adding its segment's
``ts_offset`` puts it back on the flow's timeline; a hole shows as a jump in the timestamps.

One limit of FFmpeg's, not of the playlist: in fragmented MP4 its mov demuxer discards every
sample whose decode time does not increase (``AV_PKT_FLAG_DISCARD``, as the last segments of a
flow whose media timestamps restart lower), because the hls demuxer does not reset it at a
discontinuity. The fMP4 flow's offset change here is therefore a jump forward; MPEG-TS takes a
restart at 0 (timestamps going back), which FFmpeg plays (it logs "DTS ... out of order", a
warning).

Recent FFmpeg (8.0 in PyAV, and Debian 12's 5.1.9 likewise) refuses a segment URL without a
media file extension unless told ``extension_picky=0``: the playlist's signed URLs end in
``&name=segment.ts`` (or ``.mp4``), so the player is opened here with no option, as ffplay is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction

import av
import av.logging
import httpx
import pytest

from tests.conftest import ADMIN_HEADERS, ADMIN_TOKEN
from tests.media_content import MP4, MPEG_TS, NS, MediaSet, audio_segments, ingest, picture_index, video_segments
from tools import server_process

PLAYER_OPTIONS: dict[str, str] = {}  # as a player opens a URL: no option (not even extension_picky)


@pytest.fixture(scope="module", params=["memory", "local"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {
        **os.environ,
        "TAMS_ADMIN_TOKEN": ADMIN_TOKEN,
        "TAMS_BACKEND": request.param,
        "TAMS_DATA_DIR": str(tmp_path_factory.mktemp("data")),
    }
    with server_process.running(["--log-level", "warning"], env) as url:
        yield url


@pytest.fixture
def api(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, headers=ADMIN_HEADERS, timeout=10) as client:
        yield client


@pytest.fixture
def ffmpeg_log() -> Iterator[list[tuple[int, str, str]]]:
    """FFmpeg's log lines (level, component, message) while the test runs, from every thread."""
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture(local=False) as logs:
            yield logs
    finally:
        av.logging.set_level(previous)


def playlist_url(server: str, flow_id: str) -> str:
    # A player's URL: no headers, the token in the query.
    return f"{server}/hls/flows/{flow_id}.m3u8?access_token={ADMIN_TOKEN}"


def finished_playlist(server: str, flow_id: str) -> str:
    """The flow's playlist as a player GETs it; it must be finished (VOD, ENDLIST), or FFmpeg
    would wait for more segments as it does on a live one."""
    answer = httpx.get(playlist_url(server, flow_id))
    assert answer.status_code == 200, answer.text
    assert answer.text.rstrip().endswith("#EXT-X-ENDLIST")
    return answer.text


def errors(logs: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    return [line for line in logs if line[0] <= av.logging.ERROR]


def decode(url: str, kind: str) -> tuple[list[int], list[av.VideoFrame | av.AudioFrame]]:
    """Every frame of the playlist's one stream, in decoding output order, with its timestamp in ns."""
    with av.open(url, options=PLAYER_OPTIONS, timeout=10) as player:
        assert player.format.name == "hls"
        stream = player.streams.video[0] if kind == "video" else player.streams.audio[0]
        frames = list(player.decode(stream))
        # (The stream is read while the container is open: it is freed with it.)
        times = [Fraction(f.pts) * stream.time_base * NS for f in frames]
    assert all(t.denominator == 1 for t in times), "a timestamp is not a whole number of ns"
    return [int(t) for t in times], frames


def assert_promised_timestamps(media: MediaSet, times: list[int]) -> None:
    """Each frame's timestamp is its segment's media time, and with the segment's ts_offset it is
    its flow time."""
    assert times == list(media.media_times_ns)
    offsets = [s.ts_offset_ns for s in media.segments for _ in s.frame_times_ns]
    assert [t + offset for t, offset in zip(times, offsets, strict=True)] == list(media.frame_times_ns)


@pytest.mark.parametrize(
    ("container", "restart_s"),
    [(MPEG_TS, 0), (MP4, 100)],  # fMP4: a jump forward (see the module's note on FFmpeg's mov demuxer)
    ids=["mpegts", "fmp4"],
)
def test_h264_plays_every_frame_in_order_across_a_gap_and_an_offset_change(
    server: str, api: httpx.Client, ffmpeg_log: list, container: str, restart_s: int
) -> None:
    media = video_segments(container, count=5, gap_after=2, offset_change_at=3, restart_s=restart_s)
    flow_id = ingest(api, media, closed=True)
    playlist = finished_playlist(server, flow_id)
    assert playlist.count("#EXT-X-DISCONTINUITY") == 2  # the hole, then the offset change
    assert playlist.count("#EXT-X-MAP:") == (1 if container == MP4 else 0)

    times, frames = decode(playlist_url(server, flow_id), "video")

    assert [picture_index(f) for f in frames] == list(range(len(media.frame_times_ns)))  # all, in order
    assert_promised_timestamps(media, times)
    assert (frames[0].width, frames[0].height) == (320, 180)
    assert errors(ffmpeg_log) == []


@pytest.mark.parametrize(("container", "restart_s"), [(MPEG_TS, 0), (MP4, 100)], ids=["mpegts", "fmp4"])
def test_aac_plays_every_frame_across_a_gap_and_an_offset_change(
    server: str, api: httpx.Client, ffmpeg_log: list, container: str, restart_s: int
) -> None:
    media = audio_segments(container, count=4, gap_after=1, offset_change_at=2, restart_s=restart_s)
    flow_id = ingest(api, media, closed=True)
    playlist = finished_playlist(server, flow_id)
    assert playlist.count("#EXT-X-DISCONTINUITY") == 2
    assert playlist.count("#EXT-X-MAP:") == (1 if container == MP4 else 0)

    times, frames = decode(playlist_url(server, flow_id), "audio")

    assert [f.samples for f in frames] == [1024] * len(media.frame_times_ns)
    assert {f.sample_rate for f in frames} == {16000}
    assert_promised_timestamps(media, times)
    assert errors(ffmpeg_log) == []


def test_a_playlist_with_a_hole_opens_cleanly(server: str, api: httpx.Client, ffmpeg_log: list) -> None:
    """The playlist alone (opening probes the first segment only): FFmpeg takes the duration
    from the EXTINFs, the hole not counted, and logs no error."""
    media = video_segments(MPEG_TS, count=3, gap_after=1, gap_seconds=5)
    flow_id = ingest(api, media, closed=True)
    assert finished_playlist(server, flow_id).count("#EXT-X-DISCONTINUITY") == 1
    with av.open(playlist_url(server, flow_id), options=PLAYER_OPTIONS, timeout=10) as player:
        assert player.duration == 3 * 1_000_000  # AV_TIME_BASE (us): three 1 s segments
        [stream] = player.streams
        assert (stream.codec_context.name, stream.codec_context.width) == ("h264", 320)
    assert errors(ffmpeg_log) == []


def test_without_the_token_the_player_is_refused(server: str, api: httpx.Client) -> None:
    flow_id = ingest(api, video_segments(MPEG_TS, count=1), closed=True)
    with pytest.raises(av.HTTPUnauthorizedError):
        av.open(f"{server}/hls/flows/{flow_id}.m3u8", options=PLAYER_OPTIONS)
