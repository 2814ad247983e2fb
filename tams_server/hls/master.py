"""HLS master playlists (RFC 8216 4.3.4) for a multi-essence flow or a source: its renditions.

A flow of video becomes a variant stream (``#EXT-X-STREAM-INF``) and a flow of audio an
alternative rendition in one audio group (``#EXT-X-MEDIA``) that every variant names, so a player
plays the picture with a chosen sound. Without any video, each audio flow is a variant of its own.
Data and image flows have no HLS rendition and are left out. Each rendition's URI is that flow's
media playlist (``route``); nothing here reads segments.

What a flow declares is what is said: ``BANDWIDTH`` from ``max_bit_rate`` (else ``avg_bit_rate``;
kbit/s in TAMS, bit/s in HLS) with the audio group's peak added as RFC 8216 asks, else 0 when the
flow declares no rate; ``RESOLUTION`` and ``FRAME-RATE`` from the essence parameters; ``CHANNELS``
from an audio flow's ``channels``. ``CODECS`` is left out: TAMS names a codec by MIME type
(``video/h264``), not by the RFC 6381 profile string HLS wants.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from backends.base import Json
from tams_server.hls.playlist import VERSION, quoted_uri

VIDEO = "urn:x-nmos:format:video"
AUDIO = "urn:x-nmos:format:audio"
AUDIO_GROUP = "audio"


@dataclass(frozen=True)
class Rendition:
    """One flow as a master playlist lists it."""

    flow: Json
    uri: str  # its media playlist, relative to the master playlist
    name: str  # what a player shows (the collection role, the flow's label, or its id)

    @property
    def is_video(self) -> bool:
        return self.flow.get("format") == VIDEO

    @property
    def is_audio(self) -> bool:
        return self.flow.get("format") == AUDIO


def playable(flow: Json) -> bool:
    """Whether a flow has an HLS rendition (video or audio)."""
    return flow.get("format") in (VIDEO, AUDIO)


def master_playlist(renditions: Iterable[Rendition]) -> str:
    """The master playlist's text; ``ValueError`` when no rendition is video or audio."""
    chosen = [r for r in renditions if r.is_video or r.is_audio]
    videos = [r for r in chosen if r.is_video]
    audios = [r for r in chosen if r.is_audio]
    if not chosen:
        raise ValueError("no video or audio flow to play")
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}"]
    if not videos:  # sound alone: each audio flow is a variant
        for audio in audios:
            lines += [_stream_inf(audio, None), audio.uri]
        return "\n".join(lines) + "\n"
    names = _unique([a.name for a in audios])
    for index, (audio, name) in enumerate(zip(audios, names, strict=True)):
        lines.append(_media(audio, name, default=index == 0))
    for video in videos:
        lines += [_stream_inf(video, audios or None), video.uri]
    return "\n".join(lines) + "\n"


def _media(audio: Rendition, name: str, default: bool) -> str:
    attributes = [
        "TYPE=AUDIO",
        f'GROUP-ID="{AUDIO_GROUP}"',
        f'NAME="{_quoted(name)}"',
        f"DEFAULT={'YES' if default else 'NO'}",
        "AUTOSELECT=YES",
    ]
    channels = (audio.flow.get("essence_parameters") or {}).get("channels")
    if isinstance(channels, int) and channels > 0:
        attributes.append(f'CHANNELS="{channels}"')
    attributes.append(f'URI="{quoted_uri(audio.uri)}"')
    return "#EXT-X-MEDIA:" + ",".join(attributes)


def _stream_inf(variant: Rendition, audios: list[Rendition] | None) -> str:
    # RFC 8216 4.3.4.2: BANDWIDTH covers every rendition played with the variant: the largest audio one.
    peak = _bit_rate(variant.flow, "max_bit_rate") or _bit_rate(variant.flow, "avg_bit_rate")
    average = _bit_rate(variant.flow, "avg_bit_rate")
    if audios:
        peak += max(_bit_rate(a.flow, "max_bit_rate") or _bit_rate(a.flow, "avg_bit_rate") for a in audios)
        average += max(_bit_rate(a.flow, "avg_bit_rate") for a in audios) if average else 0
    attributes = [f"BANDWIDTH={peak}"]
    if average:
        attributes.append(f"AVERAGE-BANDWIDTH={average}")
    essence = variant.flow.get("essence_parameters") or {}
    width, height = essence.get("frame_width"), essence.get("frame_height")
    if variant.is_video and isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        attributes.append(f"RESOLUTION={width}x{height}")
    rate = essence.get("frame_rate")
    if variant.is_video and isinstance(rate, dict) and isinstance(rate.get("numerator"), int):
        denominator = rate.get("denominator", 1)
        if isinstance(denominator, int) and denominator > 0 and rate["numerator"] > 0:
            attributes.append(f"FRAME-RATE={rate['numerator'] / denominator:.3f}")
    if audios:
        attributes.append(f'AUDIO="{AUDIO_GROUP}"')
    return "#EXT-X-STREAM-INF:" + ",".join(attributes)


def _bit_rate(flow: Json, field: str) -> int:
    """A declared rate (kbit/s in TAMS, 1000 bit/s) in bit/s; 0 when not declared."""
    value = flow.get(field)
    return value * 1000 if isinstance(value, int) and value > 0 else 0


def _unique(names: list[str]) -> list[str]:
    """Names made unique within the group (RFC 8216: NAME differs between renditions of a group)."""
    used: set[str] = set()
    out = []
    for name in names:
        unique, count = name, 1
        while unique in used:
            count += 1
            unique = f"{name} ({count})"
        used.add(unique)
        out.append(unique)
    return out


def _quoted(text: str) -> str:
    # A quoted-string may not hold '"', CR or LF (RFC 8216 4.2); a name is text, not a URI.
    return text.replace('"', "'").replace("\r", " ").replace("\n", " ")
