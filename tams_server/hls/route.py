"""``GET /hls/flows/{flowId}.m3u8``: a flow as an HLS media playlist, beside the versioned API.

Authenticated as the API is (players that cannot send headers use ``?access_token=``); the
segment and init URIs in the playlist are the segments' signed or presigned ``get_urls``, which
need no further credentials. The playlist is streamed while the store is read a page at a time:
a flow of 10^6 segments is never loaded, and ``?timerange=`` costs what its segments cost.

``#EXT-X-TARGETDURATION`` must precede the segments: it comes from the flow's declared
``segment_duration`` when it has one, else from a first pass over the segments' timeranges (no
URLs are made in that pass).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from backends.base import Backend, Json, PageRequest, SegmentQuery, UrlOptions
from backends.errors import TamsError
from backends.timerange import NS_PER_SEC, TimeRange, Timestamp
from tams_server import errors
from tams_server.hls.playlist import MediaPlaylist, MediaSegment, target_duration

PREFIX = "/hls/"
_FLOW = re.compile(r"/hls/flows/([^/]+)\.m3u8")
PAGE = 1000  # segments read from the store at a time
MEDIA_TYPE = "application/vnd.apple.mpegurl"
_NO_URLS = UrlOptions(accept_get_urls=())
_PRESIGNED = UrlOptions(presigned=True)
_MULTI = "urn:x-nmos:format:multi"


async def serve(request: Request, backend: Backend) -> Response:
    """Answer one request under ``PREFIX`` (credentials were checked by the caller)."""
    if request.method not in ("GET", "HEAD"):
        return errors.plain_error(405, f"{request.method} is not allowed here", {"Allow": "GET, HEAD"})
    found = _FLOW.fullmatch(request.url.path)
    if found is None:
        return errors.plain_error(404, "HLS playlists are at /hls/flows/{flowId}.m3u8")
    flow_id = unquote(found.group(1))
    call = _caller(backend)
    try:
        window = TimeRange.parse(request.query_params.get("timerange", "_"))
    except ValueError:
        return errors.plain_error(400, "timerange is not a TAMS timerange")
    try:
        flow = await call(backend.get_flow, flow_id)
        if flow.get("format") == _MULTI:
            return errors.plain_error(501, "a multi-essence flow has no media playlist of its own")
        longest = _declared_ns(flow)
        if longest is None:
            longest = await _longest(call, backend, flow_id, window)
    except TamsError as exc:
        return errors.plain_error(errors.domain_status(exc), exc.summary)
    ended = bool(flow.get("read_only")) or flow.get("status") == "closed_complete"
    lines = _lines(call, backend, flow_id, window, target_duration(longest), ended)
    headers = {"Cache-Control": "max-age=60" if ended else "no-cache"}
    return StreamingResponse(lines, media_type=MEDIA_TYPE, headers=headers)


def _caller(backend: Backend) -> Callable[..., Any]:
    """Call the backend as the API does: in a worker thread when its reads may wait."""
    if backend.may_block("GET"):
        return run_in_threadpool

    async def on_loop(function: Callable[..., Any], *args: Any) -> Any:
        return function(*args)

    return on_loop


def _declared_ns(flow: Json) -> int | None:
    """The flow's declared segment duration (8.x ``segment_duration``, a rational), in ns, rounded up."""
    declared = flow.get("segment_duration")
    if not isinstance(declared, dict) or not declared.get("numerator"):
        return None
    denominator = declared.get("denominator", 1) or 1
    return -(-declared["numerator"] * NS_PER_SEC // denominator)


async def _pages(
    call: Callable[..., Any], backend: Backend, flow_id: str, window: TimeRange, urls: UrlOptions
) -> AsyncIterator[list[Json]]:
    cursor: str | None = None
    while True:
        page = await call(
            backend.list_segments, flow_id, SegmentQuery(timerange=window), urls, PageRequest(PAGE, cursor)
        )
        yield page.items
        cursor = page.next_key
        if cursor is None:
            return


async def _longest(call: Callable[..., Any], backend: Backend, flow_id: str, window: TimeRange) -> int:
    longest = 0
    async for items in _pages(call, backend, flow_id, window, _NO_URLS):
        for item in items:
            longest = max(longest, TimeRange.parse(item["timerange"]).duration_ns or 0)
    return longest


async def _lines(
    call: Callable[..., Any], backend: Backend, flow_id: str, window: TimeRange, target_s: int, ended: bool
) -> AsyncIterator[str]:
    playlist = MediaPlaylist(target_s, ended)
    yield playlist.header()
    async for items in _pages(call, backend, flow_id, window, _PRESIGNED):
        yield "".join(playlist.add(s) for s in (_media_segment(i) for i in items) if s is not None)
    yield playlist.end()


def _media_segment(item: Json) -> MediaSegment | None:
    """A listed segment as the playlist shows it; None when it has no URL a player could GET (it
    then shows as a hole: a discontinuity)."""
    urls = [u["url"] for u in item.get("get_urls") or () if u.get("url")]
    if not urls:
        return None
    init = item.get("init_object") or {}
    init_urls = [u["url"] for u in init.get("get_urls") or () if u.get("url")]
    offset = item.get("ts_offset")
    return MediaSegment(
        TimeRange.parse(item["timerange"]),
        urls[0],
        init_urls[0] if init_urls else None,
        Timestamp.parse(offset).to_ns() if offset else 0,
    )
