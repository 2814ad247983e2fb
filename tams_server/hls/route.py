"""HLS beside the versioned API: ``GET /hls/flows/{flowId}.m3u8`` is a flow's media playlist, or for a
multi-essence flow the master playlist of its members; ``GET /hls/sources/{sourceId}.m3u8`` is the
master playlist of a source's flows (``master``: video variants with an audio group).

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
from urllib.parse import quote, unquote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from backends.base import Backend, FlowQuery, Json, PageRequest, SegmentQuery, UrlOptions
from backends.errors import BadRequest, NotFound, TamsError
from backends.timerange import NS_PER_SEC, TimeRange, Timestamp
from tams_server import auth, errors, media
from tams_server.hls import master
from tams_server.hls.playlist import MediaPlaylist, MediaSegment, target_duration

PREFIX = "/hls/"
_FLOW = re.compile(r"/hls/flows/([^/]+)\.m3u8")
_SOURCE = re.compile(r"/hls/sources/([^/]+)\.m3u8")
PAGE = 1000  # segments read from the store at a time
MAX_RENDITIONS = 100  # flows one master playlist lists; a source with more is refused, not cut short
MEDIA_TYPE = "application/vnd.apple.mpegurl"
_NO_URLS = UrlOptions(accept_get_urls=())
_PRESIGNED = UrlOptions(presigned=True)
_MULTI = "urn:x-nmos:format:multi"
# File extensions of the containers players know by name (see ``_file_name``).
_EXTENSIONS = {"video/mp2t": "ts", "video/mp4": "mp4", "audio/mp4": "mp4", "audio/aac": "aac"}


async def serve(request: Request, backend: Backend) -> Response:
    """Answer one request under ``PREFIX`` (credentials were checked by the caller)."""
    if request.method not in ("GET", "HEAD"):
        return errors.plain_error(405, f"{request.method} is not allowed here", {"Allow": "GET, HEAD"})
    flow_path, source_path = _FLOW.fullmatch(request.url.path), _SOURCE.fullmatch(request.url.path)
    if flow_path is None and source_path is None:
        return errors.plain_error(404, "HLS playlists are at /hls/flows/{flowId}.m3u8 and /hls/sources/{sourceId}.m3u8")
    call = _caller(backend)
    try:
        window = TimeRange.parse(request.query_params.get("timerange", "_"))
    except ValueError:
        return errors.plain_error(400, "timerange is not a TAMS timerange")
    try:
        if source_path is not None:
            flows = await _source_flows(call, backend, unquote(source_path.group(1)))
            return _master(flows, request, "../flows/", "this source has no video or audio flow")
        flow = await call(backend.get_flow, unquote(flow_path.group(1)))
        if flow.get("format") == _MULTI:
            members = await _collection(call, backend, flow)
            return _master(members, request, "", "this multi-essence flow has no video or audio flow")
        return await _media(call, backend, flow, window)
    except TamsError as exc:
        return errors.plain_error(errors.domain_status(exc), exc.summary)


async def _media(call: Callable[..., Any], backend: Backend, flow: Json, window: TimeRange) -> Response:
    """One flow's media playlist, streamed."""
    longest = _declared_ns(flow)
    if longest is None:
        longest = await _longest(call, backend, flow["id"], window)
    ended = bool(flow.get("read_only")) or flow.get("status") == "closed_complete"
    named = _file_name(flow)
    lines = _lines(call, backend, flow["id"], window, target_duration(longest), ended, named)
    headers = {"Cache-Control": "max-age=60" if ended else "no-cache"}
    return StreamingResponse(lines, media_type=MEDIA_TYPE, headers=headers)


def _master(renditions: list[tuple[Json, str]], request: Request, to_flows: str, nothing: str) -> Response:
    """The master playlist of ``renditions`` (a flow and the name it is shown by), each URI relative to the
    request and carrying its window and ``access_token`` on: players do not pass a query on to the URIs."""
    passed = [("timerange", v) for v in request.query_params.getlist("timerange")]
    token = request.scope.get(auth.URL_TOKEN)  # taken out of the query by authentication
    query = urlencode(passed + ([("access_token", token)] if token else []))
    listed = [
        master.Rendition(flow, f"{to_flows}{quote(flow['id'], safe='')}.m3u8" + (f"?{query}" if query else ""), name)
        for flow, name in renditions
    ]
    try:
        text = master.master_playlist(listed)
    except ValueError:
        return errors.plain_error(404, nothing)
    return Response(text, media_type=MEDIA_TYPE, headers={"Cache-Control": "no-cache"})


async def _collection(call: Callable[..., Any], backend: Backend, flow: Json) -> list[tuple[Json, str]]:
    """A multi-essence flow's playable members, named by their role; members not found are left out."""
    collection = flow.get("flow_collection") or []
    if len(collection) > MAX_RENDITIONS:
        raise BadRequest(f"flow {flow['id']} collects more than {MAX_RENDITIONS} flows: too many for a master playlist")
    found = []
    for item in collection:
        try:
            member = await call(backend.get_flow, item["id"])
        except NotFound:  # a collection may name a flow that was deleted since
            continue
        if master.playable(member):
            found.append((member, item.get("role") or member.get("label") or member["id"]))
    return found


async def _source_flows(call: Callable[..., Any], backend: Backend, source_id: str) -> list[tuple[Json, str]]:
    """A source's playable flows, and the members of its multi-essence flows, each once."""
    await call(backend.get_source, source_id)  # NotFound for a source that is not there
    page = await call(backend.list_flows, FlowQuery(source_id=source_id), PageRequest(MAX_RENDITIONS))
    if page.next_key is not None:
        raise BadRequest(f"this source has more than {MAX_RENDITIONS} flows: ask for a multi-essence flow's playlist")
    found: dict[str, tuple[Json, str]] = {}
    for flow in page.items:
        members = await _collection(call, backend, flow) if flow.get("format") == _MULTI else []
        if master.playable(flow):
            members.insert(0, (flow, flow.get("label") or flow["id"]))
        for member, name in members:
            found.setdefault(member["id"], (member, name))
    return list(found.values())


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
    call: Callable[..., Any],
    backend: Backend,
    flow_id: str,
    window: TimeRange,
    target_s: int,
    ended: bool,
    named: Callable[[str, str], str],
) -> AsyncIterator[str]:
    playlist = MediaPlaylist(target_s, ended)
    yield playlist.header()
    async for items in _pages(call, backend, flow_id, window, _PRESIGNED):
        yield "".join(playlist.add(s) for s in (_media_segment(i, named) for i in items) if s is not None)
    yield playlist.end()


def _media_segment(item: Json, named: Callable[[str, str], str]) -> MediaSegment | None:
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
        named(urls[0], "segment"),
        named(init_urls[0], "init") if init_urls else None,
        Timestamp.parse(offset).to_ns() if offset else 0,
    )


def _file_name(flow: Json) -> Callable[[str, str], str]:
    """Names our signed media URLs as files of the flow's container (``media.with_file_name``):
    FFmpeg's HLS reader refuses a segment URL without a media extension (unless told
    ``-extension_picky 0``)."""
    container = (flow.get("container") or "").split(";")[0].strip().lower()
    extension = _EXTENSIONS.get(container)

    def named(url: str, stem: str) -> str:
        return url if extension is None else media.with_file_name(url, f"{stem}.{extension}")

    return named
