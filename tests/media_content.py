"""Genuine media for the HLS and viewer tests: H.264 video and AAC audio made with PyAV (whose
wheels carry FFmpeg and libx264), cut into TAMS segments, and ingested through the API.

Every segment starts with a key frame (video) and decodes on its own. A ``MediaSet`` says what
each segment promises: its timerange on the flow's timeline, its ``ts_offset`` and the flow time
of every frame in it; the media timestamps inside a segment are ``flow time - ts_offset`` (TAMS:
``ts_offset = segment ts - media object ts``).

Two containers:

* ``video/mp2t``: each segment is a standalone MPEG-TS file (PAT/PMT first) whose PTS are the
  media times in 90 kHz ticks.
* ``video/mp4``: fragmented MP4 (CMAF style): one init segment (``ftyp`` + ``moov``) and media
  segments of ``moof`` + ``mdat`` each; a fragment's ``tfdt`` is its media time.

The options shape the timeline the way stored flows are shaped: ``gap_after=k`` leaves a hole
after the first ``k`` segments (the later ones move later by ``gap_seconds``), and
``offset_change_at=k`` makes the media timestamps restart at ``restart_s`` (0 unless said) from
segment ``k`` on, with a ``ts_offset`` that puts them back on the flow's timeline.

MPEG-TS continuity counters run on across the segment files, as a segmenter cutting one stream
writes them (a demuxer reading the segments one after another sees no lost packets).
"""

from __future__ import annotations

import functools
import io
import math
import struct
import uuid
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

import av

from backends.timerange import Timestamp

NS = 1_000_000_000
VIDEO_FORMAT = "urn:x-nmos:format:video"
AUDIO_FORMAT = "urn:x-nmos:format:audio"
MPEG_TS = "video/mp2t"
MP4 = "video/mp4"
AAC_FRAME = 1024  # samples in one AAC-LC frame
_TS_HZ = 90_000


@dataclass(frozen=True)
class MediaSegment:
    data: bytes  # the segment file as uploaded
    timerange: str  # its TAMS timerange on the flow timeline, e.g. "[10:0_11:0)"
    ts_offset: str | None  # TAMS ts_offset to register (None = 0:0)
    frame_times_ns: tuple[int, ...]  # flow-timeline time (ns) of each video or audio frame in it, in order

    @property
    def ts_offset_ns(self) -> int:
        return Timestamp.parse(self.ts_offset).to_ns() if self.ts_offset else 0

    @property
    def media_times_ns(self) -> tuple[int, ...]:
        """Each frame's time on the media's own timeline (what a demuxer reads from the file)."""
        return tuple(t - self.ts_offset_ns for t in self.frame_times_ns)


@dataclass(frozen=True)
class MediaSet:
    container: str  # MIME type: "video/mp2t" or "video/mp4"
    codec: str  # TAMS codec MIME, "video/h264" or "audio/aac"
    mse_type: str  # MSE/HTML type with codecs, as the stream's own avcC/SPS (or AAC object type) says
    init: bytes | None  # the fMP4 init segment (ftyp+moov), None for MPEG-TS
    segments: tuple[MediaSegment, ...]
    essence_parameters: dict  # as the flow declares them (TAMS 8.2 flow-video / flow-audio)
    format: str = VIDEO_FORMAT  # the flow's format URN

    @property
    def frame_times_ns(self) -> tuple[int, ...]:
        return tuple(t for s in self.segments for t in s.frame_times_ns)

    @property
    def media_times_ns(self) -> tuple[int, ...]:
        return tuple(t for s in self.segments for t in s.media_times_ns)


class ApiClient(Protocol):
    """What ``ingest`` needs: httpx-like calls with paths relative to a TAMS 8.2 base."""

    def put(self, url: str, **kwargs: Any) -> Any: ...
    def post(self, url: str, **kwargs: Any) -> Any: ...
    def get(self, url: str, **kwargs: Any) -> Any: ...


# --------------------------------------------------------------------------- timeline


@dataclass(frozen=True)
class _Slot:
    """Where segment ``index`` sits: its flow start and the ts_offset of its media timestamps."""

    start_ns: int
    end_ns: int
    offset_ns: int


def _slots(
    count: int,
    duration_ns: int,
    start_s: int,
    gap_after: int | None,
    gap_seconds: int,
    offset_change_at: int | None,
    restart_s: int,
) -> list[_Slot]:
    slots: list[_Slot] = []
    start = start_s * NS
    for index in range(count):
        if gap_after is not None and index == gap_after:
            start += gap_seconds * NS
        offset = 0
        if offset_change_at is not None and index >= offset_change_at:
            # The media timeline restarts at restart_s where segment offset_change_at starts.
            first = slots[offset_change_at].start_ns if index > offset_change_at else start
            offset = first - restart_s * NS
        slots.append(_Slot(start, start + duration_ns, offset))
        start += duration_ns
    return slots


def _segment(data: bytes, slot: _Slot, frame_times: list[int]) -> MediaSegment:
    return MediaSegment(
        data,
        f"[{Timestamp.from_ns(slot.start_ns)}_{Timestamp.from_ns(slot.end_ns)})",
        str(Timestamp.from_ns(slot.offset_ns)) if slot.offset_ns else None,
        tuple(frame_times),
    )


# --------------------------------------------------------------------------- encoding


INDEX_BITS = 10  # a frame's index (mod 1024) is drawn in its top quarter, one cell a bit


def _picture(index: int, width: int, height: int) -> av.VideoFrame:
    """A grey frame whose top quarter shows ``index`` in binary (white cells are 1s, most
    significant first: see ``picture_index``) above a bright bar that moves a step each frame
    (so playback visibly moves)."""
    frame = av.VideoFrame(width, height, "yuv420p")
    cell = width // INDEX_BITS
    bits = bytes(
        235 if x < cell * INDEX_BITS and index >> (INDEX_BITS - 1 - x // cell) & 1 else 16 for x in range(width)
    )
    bar = (index * 8) % width
    row = bytes(235 if bar <= x < bar + 16 else 60 for x in range(width))
    luma = frame.planes[0]
    top = height // 4
    pad = luma.line_size - width
    luma.update((bits + bytes(pad)) * top + (row + bytes(pad)) * (height - top))
    for plane in frame.planes[1:]:
        plane.update(bytes([128]) * plane.buffer_size)
    frame.pts = index
    return frame


def picture_index(frame: av.VideoFrame) -> int:
    """The index a decoded frame of ``video_segments`` shows (mod 2**INDEX_BITS): which frame it is."""
    luma = frame.reformat(format="yuv420p").planes[0]
    data, line = bytes(luma), luma.line_size
    cell = frame.width // INDEX_BITS
    row = (frame.height // 8) * line
    value = 0
    for bit in range(INDEX_BITS):
        value = value << 1 | (data[row + bit * cell + cell // 2] > 128)
    return value


@functools.cache
def _tone_samples() -> bytes:
    """One AAC frame of a 0.3-amplitude tone as float32: 16 periods a frame (the sample rate / 64:
    250 Hz at 16 kHz), so every frame is the same and the tone runs on without a click."""
    return array("f", (0.3 * math.sin(2 * math.pi * 16 * i / AAC_FRAME) for i in range(AAC_FRAME))).tobytes()


def _tone(index: int, rate: int, channels: int) -> av.AudioFrame:
    """Frame ``index`` of a steady tone (planar float, as the AAC encoder takes it)."""
    frame = av.AudioFrame(format="fltp", layout="mono" if channels == 1 else "stereo", samples=AAC_FRAME)
    for plane in frame.planes:
        plane.update(_tone_samples())
    frame.pts, frame.sample_rate = index * AAC_FRAME, rate
    return frame


def _x264_options(gop: int) -> dict[str, str]:
    # Constrained baseline: no B-frames, so decode order is presentation order and pts == dts.
    # A key frame exactly every gop frames, so every segment starts with one.
    return {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "profile": "baseline",
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0",
    }


def _encode(stream: Any, frames: Iterator[Any]) -> list[av.Packet]:
    packets: list[av.Packet] = []
    for frame in frames:
        packets += stream.encode(frame)
    return packets + list(stream.encode(None))


# --------------------------------------------------------------------------- containers


def _ts_files(template: Any, groups: list[list[av.Packet]], media_ticks: list[list[int]]) -> list[bytes]:
    """One standalone MPEG-TS file (PAT/PMT first) per group of packets, PTS = the given 90 kHz ticks."""
    files = []
    for packets, ticks in zip(groups, media_ticks, strict=True):
        out = io.BytesIO()
        # mpegts_copyts: the PTS are written as given (no mux delay added).
        with av.open(out, "w", format="mpegts", options={"mpegts_copyts": "1"}) as ts:
            stream = ts.add_stream_from_template(template)
            # The template's extradata (AAC's AudioSpecificConfig, from which the muxer writes
            # ADTS headers) is not copied with it.
            stream.codec_context.extradata = template.codec_context.extradata
            for packet, tick in zip(packets, ticks, strict=True):
                packet.stream, packet.time_base = stream, Fraction(1, _TS_HZ)
                packet.pts = packet.dts = tick
                packet.duration = 0
                ts.mux(packet)
        files.append(out.getvalue())
    return _continue_counters(files)


def _continue_counters(files: list[bytes]) -> list[bytes]:
    """The files with each PID's 4-bit continuity counter running on from one file to the next
    (each muxer run starts them at 0)."""
    last: dict[int, int] = {}
    out = []
    for data in files:
        packets = bytearray(data)
        for at in range(0, len(packets), 188):
            pid = (packets[at + 1] & 0x1F) << 8 | packets[at + 2]
            if packets[at + 3] & 0x10:  # the packet has a payload: its counter counts
                last[pid] = (last.get(pid, -1) + 1) & 0x0F
                packets[at + 3] = packets[at + 3] & 0xF0 | last[pid]
        out.append(bytes(packets))
    return out


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, offset, size) of each ISO BMFF box in data[start:end]."""
    end = len(data) if end is None else end
    while start < end:
        size, kind = struct.unpack_from(">I4s", data, start)
        if size == 1:
            size = struct.unpack_from(">Q", data, start + 8)[0]
        elif size == 0:
            size = end - start
        yield kind, start, size
        start += size


def _find(data: bytes, path: list[bytes], start: int = 0, end: int | None = None) -> tuple[int, int]:
    """(offset, size) of the first box along ``path`` (e.g. moov/trak/mdia/mdhd)."""
    for kind, offset, size in _boxes(data, start, end):
        if kind == path[0]:
            return (offset, size) if len(path) == 1 else _find(data, path[1:], offset + 8, offset + size)
    raise ValueError(f"no {path[0]!r} box")


def _split_fragmented(data: bytes) -> tuple[bytes, list[bytes]]:
    """(init: ftyp+moov, [moof+mdat, ...]) of a fragmented MP4 file."""
    init, fragments = b"", []
    for kind, offset, size in _boxes(data):
        box = data[offset : offset + size]
        if kind in (b"ftyp", b"moov"):
            init += box
        elif kind == b"moof":
            fragments.append(box)
        elif kind == b"mdat":
            fragments[-1] += box
    return init, fragments


def _timescale(init: bytes) -> int:
    offset, _ = _find(init, [b"moov", b"trak", b"mdia", b"mdhd"])
    version = init[offset + 8]
    return struct.unpack_from(">I", init, offset + (28 if version == 1 else 20))[0]


def _set_tfdt(fragment: bytes, decode_time: int) -> bytes:
    """The fragment with its base media decode time (moof/traf/tfdt) set: where it sits on the
    media timeline, whatever the muxer wrote."""
    offset, _ = _find(fragment, [b"moof", b"traf", b"tfdt"])
    out = bytearray(fragment)
    if fragment[offset + 8] == 1:
        struct.pack_into(">Q", out, offset + 12, decode_time)
    else:
        struct.pack_into(">I", out, offset + 12, decode_time)
    return bytes(out)


def _avcc_codecs(init: bytes) -> str:
    """``avc1.PPCCLL`` exactly as the init segment's avcC says (profile, flags, level)."""
    offset, _ = _find(init, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"])
    at = init.index(b"avcC", offset)
    return f"avc1.{init[at + 5 : at + 8].hex()}"


def _sps_codecs(access_unit: bytes) -> str:
    """``avc1.PPCCLL`` from the first SPS NAL unit of an Annex B access unit."""
    for nal in access_unit.split(b"\x00\x00\x01")[1:]:
        if nal and nal[0] & 0x1F == 7:
            return f"avc1.{nal[1:4].hex()}"
    raise ValueError("no SPS in the key frame")


def _fragmented(
    add: Any, frames: Iterator[Any], packets: int, step: int, fragments: int, movflags: str, **options: str
) -> tuple[bytes, list[bytes]]:
    """Encode into one fragmented MP4 and split it into init + ``fragments`` fragments. Packet i
    is stamped i * ``step`` (in the stream's time base): a plain media clock from 0, with an
    encoder's priming (AAC) left out of it; ``_set_tfdt`` places each fragment afterwards."""
    out = io.BytesIO()
    flags = "+".join(["empty_moov", "default_base_moof", "skip_trailer", *movflags.split()])
    with av.open(out, "w", format="mp4", options={"movflags": flags, **options}) as mp4:
        stream = add(mp4)
        for index, packet in enumerate(_encode(stream, frames)[:packets]):
            packet.pts = packet.dts = index * step
            mp4.mux(packet)
    init, found = _split_fragmented(out.getvalue())
    if len(found) != fragments:
        raise AssertionError(f"{len(found)} fragments, not {fragments}")
    return init, found


# --------------------------------------------------------------------------- media sets


def video_segments(
    container: str = MP4,
    count: int = 4,
    seconds: int = 1,
    *,
    gap_after: int | None = None,
    offset_change_at: int | None = None,
    fps: int = 25,
    width: int = 320,
    height: int = 180,
    start_s: int = 10,
    gap_seconds: int = 1,
    restart_s: int = 0,
) -> MediaSet:
    """``count`` H.264 segments of ``seconds`` each (``fps`` frames a second, a key frame first)
    on a flow timeline that starts at ``start_s``. ``gap_after=k``: a hole of ``gap_seconds``
    after the first k segments. ``offset_change_at=k``: from segment k on, the media timestamps
    restart at ``restart_s`` and the segments' ts_offset puts them back on the flow's timeline
    (a restart later than the media time before it is a jump forward)."""
    per_segment = fps * seconds
    total = count * per_segment
    slots = _slots(count, seconds * NS, start_s, gap_after, gap_seconds, offset_change_at, restart_s)
    times = [[s.start_ns + j * NS // fps for j in range(per_segment)] for s in slots]
    frames = (_picture(i, width, height) for i in range(total))

    def add(output: Any) -> Any:
        stream = output.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = _x264_options(per_segment)
        return stream

    if container == MPEG_TS:
        # The encoder only (nothing is written); in mpegts it writes SPS/PPS into the stream.
        with av.open(io.BytesIO(), "w", format="mpegts") as scratch:
            stream = add(scratch)
            packets = _encode(stream, frames)
            if len(packets) != total or not all(p.is_keyframe == (p.pts % per_segment == 0) for p in packets):
                raise AssertionError("the encoder did not make one key frame a segment")
            codecs = _sps_codecs(bytes(packets[0]))
            groups = [packets[i * per_segment : (i + 1) * per_segment] for i in range(count)]
            ticks = [[(t - s.offset_ns) * _TS_HZ // NS for t in ts] for ts, s in zip(times, slots, strict=True)]
            data = _ts_files(stream, groups, ticks)
        init = None
    elif container == MP4:
        init, fragments = _fragmented(add, frames, total, 1, count, "frag_keyframe")
        scale = _timescale(init)
        data = [
            _set_tfdt(f, (t[0] - s.offset_ns) * scale // NS) for f, t, s in zip(fragments, times, slots, strict=True)
        ]
        codecs = _avcc_codecs(init)
    else:
        raise ValueError(f"no H.264 video in {container} here")
    profile, flags, level = bytes.fromhex(codecs.removeprefix("avc1."))
    parameters: dict[str, Any] = {
        "frame_width": width,
        "frame_height": height,
        "frame_rate": {"numerator": fps, "denominator": 1},
        "avc_parameters": {"profile": profile, "flags": flags, "level": level},
    }
    if init is not None:
        parameters["init_segments"] = True
    segments = tuple(_segment(d, s, t) for d, s, t in zip(data, slots, times, strict=True))
    return MediaSet(container, "video/h264", f'{container}; codecs="{codecs}"', init, segments, parameters)


def audio_segments(
    container: str = MPEG_TS,
    count: int = 4,
    frames_per_segment: int = 16,
    *,
    gap_after: int | None = None,
    offset_change_at: int | None = None,
    sample_rate: int = 16000,
    channels: int = 1,
    start_s: int = 10,
    gap_seconds: int = 1,
    restart_s: int = 0,
) -> MediaSet:
    """``count`` AAC-LC segments of ``frames_per_segment`` frames of 1024 samples each (at 16 kHz,
    16 frames are exactly 1.024 s: the rate is chosen so that a frame is a whole number of ns
    and of 90 kHz ticks). The timeline options are those of ``video_segments``."""
    frame_ns, remainder = divmod(AAC_FRAME * NS, sample_rate)
    if remainder or (AAC_FRAME * _TS_HZ) % sample_rate:
        raise ValueError(f"an AAC frame at {sample_rate} Hz is not a whole number of ns and 90 kHz ticks")
    total = count * frames_per_segment
    slots = _slots(count, frames_per_segment * frame_ns, start_s, gap_after, gap_seconds, offset_change_at, restart_s)
    times = [[s.start_ns + j * frame_ns for j in range(frames_per_segment)] for s in slots]
    # One more frame than kept: the encoder's priming delays its output by one frame.
    frames = (_tone(i, sample_rate, channels) for i in range(total + 1))

    def add(output: Any) -> Any:
        stream = output.add_stream("aac", rate=sample_rate)
        stream.layout = "mono" if channels == 1 else "stereo"
        return stream

    if container == MPEG_TS:
        # The encoder only (nothing is written): in mp4 it makes the AudioSpecificConfig the
        # MPEG-TS muxer needs to write ADTS headers.
        with av.open(io.BytesIO(), "w", format="mp4") as scratch:
            stream = add(scratch)
            packets = _encode(stream, frames)[:total]
            groups = [packets[i * frames_per_segment : (i + 1) * frames_per_segment] for i in range(count)]
            ticks = [[(t - s.offset_ns) * _TS_HZ // NS for t in ts] for ts, s in zip(times, slots, strict=True)]
            data = _ts_files(stream, groups, ticks)
        init = None
    elif container == MP4:
        fragment_us = frames_per_segment * frame_ns // 1000
        init, fragments = _fragmented(add, frames, total, AAC_FRAME, count, "", frag_duration=str(fragment_us))
        scale = _timescale(init)
        data = [
            _set_tfdt(f, (t[0] - s.offset_ns) * scale // NS) for f, t, s in zip(fragments, times, slots, strict=True)
        ]
    else:
        raise ValueError(f"no AAC audio in {container} here")
    parameters: dict[str, Any] = {
        "sample_rate": sample_rate,
        "channels": channels,
        "codec_parameters": {"coded_frame_size": AAC_FRAME, "mp4_oti": 2},
    }
    if init is not None:
        parameters["init_segments"] = True
    segments = tuple(_segment(d, s, t) for d, s, t in zip(data, slots, times, strict=True))
    top = "audio/mp4" if container == MP4 else container
    return MediaSet(container, "audio/aac", f'{top}; codecs="mp4a.40.2"', init, segments, parameters, AUDIO_FORMAT)


# --------------------------------------------------------------------------- ingest


def _check(response: Any, *statuses: int) -> Any:
    if response.status_code not in statuses:
        raise AssertionError(
            f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
        )
    return response


def ingest(
    client: ApiClient,
    media: MediaSet,
    *,
    flow_id: str | None = None,
    source_id: str | None = None,
    closed: bool = False,
    **flow_fields: Any,
) -> str:
    """Create a flow for ``media`` (format, codec, container, essence_parameters, then
    ``flow_fields``), upload every object to the put_urls of ``POST /flows/{id}/storage``
    (the init segment too), register the segments (each with its ``ts_offset``, and the init
    object as ``init_object_id``, TAMS 8.2) and return the flow's id. ``closed``: then mark the
    flow ``status: closed_complete`` (8.2), so that its HLS playlist is a finished one (VOD,
    ``#EXT-X-ENDLIST``) which a player reads to its end rather than waiting for more as it does
    on a live (EVENT) playlist. ``client`` is anything with httpx-like ``put``/``post``/``get``
    whose paths are relative to a TAMS 8.2 base."""
    flow_id = flow_id or str(uuid.uuid4())
    body = {
        "id": flow_id,
        "source_id": source_id or str(uuid.uuid4()),
        "format": media.format,
        "codec": media.codec,
        "container": media.container,
        "essence_parameters": media.essence_parameters,
        **flow_fields,
    }
    _check(client.put(f"/flows/{flow_id}", json=body), 201, 204)
    uploads = [s.data for s in media.segments] + ([media.init] if media.init is not None else [])
    storage = _check(client.post(f"/flows/{flow_id}/storage", json={"limit": len(uploads)}), 201)
    objects = storage.json()["media_objects"]
    if len(objects) != len(uploads):
        raise AssertionError(f"asked for {len(uploads)} objects, given {len(objects)}")
    for media_object, data in zip(objects, uploads, strict=True):
        put = media_object["put_url"]
        _check(client.put(put["url"], content=data, headers={"Content-Type": put["content-type"]}), 200, 201, 204)
    init_id = objects[-1]["object_id"] if media.init is not None else None
    bodies = []
    for media_object, segment in zip(objects, media.segments, strict=False):
        body = {"object_id": media_object["object_id"], "timerange": segment.timerange}
        if segment.ts_offset is not None:
            body["ts_offset"] = segment.ts_offset
        if init_id is not None:
            body["init_object_id"] = init_id
        bodies.append(body)
    _check(client.post(f"/flows/{flow_id}/segments", json=bodies), 200, 201)
    if closed:
        flow = _check(client.get(f"/flows/{flow_id}"), 200).json()
        _check(client.put(f"/flows/{flow_id}", json={**flow, "status": "closed_complete"}), 200, 201, 204)
    return flow_id
