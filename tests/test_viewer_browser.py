"""The web viewer in a real browser (headless Debian chromium via tests/browser.py) against a real
``tams-server`` process on memory and on local, whose API wants an admin token: sign in, find the
flow, see its segments and its gap on the timeline, read a segment's details, play genuine
fragmented MP4 (H.264, made with PyAV by tests/media_content.py) through Media Source Extensions,
and look at a flow of 10^5 segments with a bounded number of small requests per zoom and pan.
With ``TAMS_README_SCREENSHOTS=1`` the memory run saves the README's screenshots (docs/images/viewer-*.png)."""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import media_content
import pytest
from browser import launched, screenshot_on_failure
from conftest import ADMIN_HEADERS, ADMIN_TOKEN, backend_options, flow_body, raw_get, test_backends

from tools import server_process

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Request

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
# Set to refresh the README's screenshots (docs/images) from the memory run; otherwise they go to
# the test's temporary directory, so a test run leaves the working tree as it was.
SAVE_README_SCREENSHOTS = bool(os.environ.get("TAMS_README_SCREENSHOTS"))
VIEWPORT = {"width": 1280, "height": 800}
# The timeline's bounds (tams_server/viewer/static/tiles.js): a tile is 256-512 px wide at any
# zoom, costs one request of at most TILE_LIMIT segments, plus PROBES requests of 1 when dense.
TILE_PX, TILE_LIMIT, PROBES = 256, 256, 8
ADMIN_USER = "viewer-admin"
ADMIN_PASSWORD = "Vq7-kP2x!mZ9rT4w-Lc8nY3s"
BIG = 100_000
BIG_HOLE = 50_000  # the big flow's segment i is [i:0_i+1:0), but for this one


def save_screenshot(page: Page, request: pytest.FixtureRequest, tmp_path: Path, name: str) -> None:
    """A screenshot of the page: into docs/images for the README when asked, else beside the test."""
    readme = SAVE_README_SCREENSHOTS and request.node.callspec.params["server"] == "memory"
    directory = IMAGES if readme else tmp_path
    directory.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(directory / name))
    assert (directory / name).stat().st_size > 10_000  # a picture, not an empty page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched() as chromium:
        yield chromium


@pytest.fixture(scope="module", params=["memory", "local"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param not in test_backends(request.config):
        pytest.skip(f"{request.param} is not among the backends under test")
    env = {
        **os.environ,
        "TAMS_BACKEND": request.param,
        "TAMS_BACKEND_OPTIONS": json.dumps(backend_options(request.param)),
        "TAMS_ADMIN_TOKEN": ADMIN_TOKEN,
        "TAMS_ADMIN_USER": ADMIN_USER,
        "TAMS_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "TAMS_DATA_DIR": str(tmp_path_factory.mktemp("data")),
    }
    with server_process.running(["--log-level", "warning"], env) as url:
        yield url


@pytest.fixture(scope="module")
def api(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server}/v8.2", headers=ADMIN_HEADERS, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def content(api: httpx.Client) -> dict[str, Any]:
    """A few flows to browse; the fMP4 one has 4 segments of 1 s with a 1 s hole after the second."""
    media = media_content.video_segments("video/mp4", count=4, seconds=1, gap_after=2)
    source_id = flow_body()["source_id"]
    fmp4 = media_content.ingest(
        api, media, source_id=source_id, label="Studio A camera 1", tags={"site": "studio-a", "shot": "wide"}
    )
    assert api.put(f"/sources/{source_id}/label", json="Studio A").status_code in (200, 201, 204)
    others = [
        flow_body("video", source_id=source_id, label="Studio A camera 1 (MPEG-TS)", tags={"site": "studio-a"}),
        flow_body("audio", label="Studio A programme sound"),
        flow_body("data", label="Studio A subtitles"),
    ]
    for flow in others:
        assert api.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    return {"media": media, "flow_id": fmp4, "ts_flow_id": others[0]["id"], "source_id": source_id}


@pytest.fixture(scope="module")
def big_flow(api: httpx.Client) -> tuple[str, float]:
    """A flow of 10^5 one-second segments (one object, registered 1,000 a request) with one hole;
    and how long registering took."""
    flow = flow_body("video", container="video/mp4", label="Archive: 100,000 segments")
    assert api.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    [media_object] = api.post(f"/flows/{flow['id']}/storage", json={"limit": 1}).json()["media_objects"]
    started = time.perf_counter()
    for at in range(0, BIG, 1000):
        bodies = [
            {"object_id": media_object["object_id"], "timerange": f"[{i}:0_{i + 1}:0)"}
            for i in range(at, at + 1000)
            if i != BIG_HOLE
        ]
        answer = api.post(f"/flows/{flow['id']}/segments", json=bodies)
        assert answer.status_code == 201, answer.text
    return flow["id"], time.perf_counter() - started


def sign_in(page: Page, server: str, fragment: str = "") -> None:
    from playwright.sync_api import expect

    page.goto(f"{server}/viewer/{fragment}")
    # The API wants credentials: the page asks for them.
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Token", exact=True).fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_have_text("Signed in (bearer token)")


def timeline_done(page: Page, before: str | None = None) -> str:
    """The timeline's summary once what it shows is loaded (and, given the view shown before, once
    the view has changed from it)."""
    page.wait_for_function(
        """before => {
            const timeline = document.getElementById("timeline");
            return timeline.dataset.state === "done" && timeline.dataset.view !== before;
        }""",
        arg=before,
        timeout=15_000,
    )
    return page.locator("#timeline-summary").inner_text()


def view(page: Page) -> str:
    return page.locator("#timeline").get_attribute("data-view") or ""


def click_at_time(page: Page, seconds_from_start: float, span_s: float) -> None:
    """Click the timeline where the fitted view shows this time (the fit pads 3% of the span)."""
    box = page.locator("#timeline").bounding_box()
    assert box is not None
    fraction = (0.03 * span_s + seconds_from_start) / (1.06 * span_s)
    page.mouse.click(box["x"] + box["width"] * fraction, box["y"] + 40 + 32)


def test_sign_in_find_the_flow_see_the_gap_and_play_it(
    browser: Browser, server: str, api: httpx.Client, content: dict[str, Any], tmp_path: Path, request: Any
) -> None:
    from playwright.sync_api import expect

    media, flow_id = content["media"], content["flow_id"]
    segments = api.get(f"/flows/{flow_id}/segments").json()
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(10_000)
    with screenshot_on_failure(page, tmp_path, "viewer"):
        sign_in(page, server)
        flows = page.locator("#flows .item")
        expect(flows).to_have_count(4)

        # Find it: a label filter asks the API for that label only.
        page.get_by_label("Label", exact=True).fill("Studio A camera 1")
        page.get_by_role("button", name="Filter").click()
        expect(flows).to_have_count(1)
        expect(flows.first).to_contain_text("video/mp4")
        expect(flows.first).to_contain_text("site: studio-a")
        flows.first.click()
        expect(page.locator("#flow-title")).to_have_text("Studio A camera 1")
        meta = page.locator("#flow-meta")
        expect(meta).to_contain_text("320×180, 25 fps")
        expect(meta).to_contain_text("[10:0_15:0)")

        # The timeline: 4 segments and the hole after the second.
        assert timeline_done(page).startswith("4 segments, 1 gap in view")
        expect(page.locator("#timeline")).to_have_attribute("data-segments", "4")
        expect(page.locator("#timeline")).to_have_attribute("data-gaps", "1")

        # A click on the first segment shows its details, with the URLs a player would fetch.
        click_at_time(page, 0.5, 5)
        details = page.locator("#segment")
        expect(details).to_contain_text(segments[0]["timerange"])
        expect(details).to_contain_text(segments[0]["object_id"])
        expect(details).to_contain_text(segments[0]["init_object"]["object_id"])
        href = details.locator(".urls a").first.get_attribute("href")
        assert href is not None and urlsplit(href).path == urlsplit(segments[0]["get_urls"][0]["url"]).path
        assert httpx.get(href).content == media.segments[0].data  # signed: no credentials needed
        # The keyboard walks the segments: "]" is the next one, across the gap.
        page.locator("#timeline").focus()
        page.keyboard.press("]")
        expect(details).to_contain_text(segments[1]["timerange"])
        page.keyboard.press("]")
        expect(details).to_contain_text(segments[2]["timerange"])

        # Players get the HLS playlist, with the token as access_token.
        link = page.locator("#hls-link").get_attribute("href")
        assert link is not None and urlsplit(link).path == f"/hls/flows/{flow_id}.m3u8"
        assert parse_qs(urlsplit(link).query)["access_token"] == [ADMIN_TOKEN]
        assert httpx.get(link).text.startswith("#EXTM3U")

        # The credentials stayed in the page's memory.
        stored = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie])")
        assert ADMIN_TOKEN not in stored

        # Play from the first segment, through MSE when this chromium has H.264 there.
        page.keyboard.press("[")
        page.keyboard.press("[")
        expect(details).to_contain_text(segments[0]["timerange"])
        supported = page.evaluate("type => MediaSource.isTypeSupported(type)", media.mse_type)
        page.get_by_role("button", name="Play from this segment").click()
        if not supported:
            expect(page.locator("#player-status")).to_contain_text("cannot play")
            pytest.skip(f"this chromium has no {media.mse_type} in Media Source Extensions")
        expect(page.locator("#player-status")).to_have_text(f"Playing {media.mse_type}.")
        # Past 0.5 s; then past the hole (2-3 s of the video's time), which the player jumps.
        page.wait_for_function("() => document.getElementById('video').currentTime > 0.5", timeout=15_000)
        page.wait_for_function("() => document.getElementById('video').currentTime > 3.2", timeout=15_000)
        save_screenshot(page, request, tmp_path, "viewer-timeline.png")
    page.close()


def segment_requests(requests: list[Request]) -> list[dict[str, list[str]]]:
    """The queries of the timeline's segment listings among requests."""
    return [
        parse_qs(urlsplit(r.url).query, keep_blank_values=True)
        for r in requests
        if re.search(r"/v8\.2/flows/[^/]+/segments$", urlsplit(r.url).path)
    ]


def test_a_flow_of_100000_segments_costs_a_few_small_requests_per_view(
    browser: Browser, server: str, big_flow: tuple[str, float], content: dict[str, Any], tmp_path: Path, request: Any
) -> None:
    from playwright.sync_api import expect

    flow_id, ingest_s = big_flow
    print(f"registered {BIG} segments in {ingest_s:.1f} s")
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(10_000)
    requests: list[Request] = []
    page.on("request", lambda r: requests.append(r))
    with screenshot_on_failure(page, tmp_path, "viewer-big"):
        sign_in(page, server)
        page.locator(f"#flows [data-flow-id='{flow_id}']").click()
        summary = timeline_done(page)
        width = page.locator("#timeline").bounding_box()["width"]
        # Tiles are at least TILE_PX wide: the view shows at most this many (whole or in part).
        bound = (math.ceil(width / TILE_PX) + 1) * (1 + PROBES)

        def check(action: str) -> int:
            asked = segment_requests(requests)
            requests.clear()
            assert 0 < len(asked) <= bound, (action, len(asked))
            for query in asked:
                # Small pages without get_urls (nothing signed for drawing).
                assert int(query["limit"][0]) <= TILE_LIMIT, (action, query)
                assert query["accept_get_urls"] == [""], (action, query)
            return len(asked)

        counts = {"fit": check("fit")}
        # Dense at this zoom: the count is estimated from the exact part of each tile.
        assert summary.startswith("About ") and "zoom in" in summary
        estimated = int(page.locator("#timeline").get_attribute("data-segments"))
        assert 0.9 * BIG <= estimated <= 1.1 * BIG, summary
        save_screenshot(page, request, tmp_path, "viewer-flows.png")

        page.locator("#timeline").focus()
        before = view(page)
        for _ in range(3):  # three quick zooms: one new level is fetched, once it settles
            page.keyboard.press("+")
        timeline_done(page, before)
        counts["zoom"] = check("zoom in x8")
        before = view(page)
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        timeline_done(page, before)
        counts["pan"] = check("pan")
        before = view(page)
        page.keyboard.press("-")
        timeline_done(page, before)
        counts["zoom out"] = check("zoom out")

        # Zoomed in around the hole (a link to a window): every segment and the hole, exactly.
        page.evaluate(f"() => {{ location.hash = 'flow={flow_id}&view=[{BIG_HOLE - 10}:0_{BIG_HOLE + 10}:0)'; }}")
        expect(page.locator("#timeline-summary")).to_have_text(re.compile(r"^19 segments, 1 gap in view"))
        counts["window"] = check("window")
        print(f"segment requests per action (bound {bound}): {counts}")
    page.close()


@pytest.mark.parametrize(
    "target", ["/viewer/../tams_server/app.py", "/viewer/..%2fviewer%2froute.py", "/viewer/%2e%2e/"]
)
def test_dot_segments_over_real_http_are_refused(server: str, target: str) -> None:
    answer = raw_get(server, target)
    assert answer.startswith(b"HTTP/1.1 404 "), answer[:200]


def test_basic_credentials_sources_and_paging(
    browser: Browser, server: str, api: httpx.Client, content: dict[str, Any], tmp_path: Path, request: Any
) -> None:
    from playwright.sync_api import expect

    if request.node.callspec.params["server"] != "memory":
        pytest.skip("signing in, sources and paging are the page's, whatever the backend")
    bulk_source = flow_body()["source_id"]
    for _ in range(55):
        flow = flow_body("data", source_id=bulk_source, label="bulk")
        assert api.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(10_000)
    with screenshot_on_failure(page, tmp_path, "viewer-basic"):
        page.goto(f"{server}/viewer/")
        page.get_by_label("User name and password").check()
        page.get_by_label("User name", exact=True).fill(ADMIN_USER)
        page.get_by_label("Password", exact=True).fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("The server refused these credentials.")
        page.get_by_label("User name", exact=True).fill(ADMIN_USER)
        page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#who")).to_have_text("Signed in (user name and password)")

        # Pages of flows follow the API's Link header.
        flows = page.locator("#flows .item")
        page.get_by_label("Label", exact=True).fill("bulk")
        page.get_by_role("button", name="Filter").click()
        expect(flows).to_have_count(50)
        page.get_by_role("button", name="More flows").click()
        expect(flows).to_have_count(55)
        expect(page.get_by_role("button", name="More flows")).to_be_hidden()

        # A source's flows.
        page.get_by_label("Label", exact=True).fill("")
        page.locator("#sources-box summary").click()
        page.locator("#sources .item").filter(has_text="Studio A").click()
        expect(page.locator("#filter-source")).to_contain_text("Source: Studio A")
        expect(flows).to_have_count(2)
        assert {f.get_attribute("data-flow-id") for f in flows.all()} == {content["flow_id"], content["ts_flow_id"]}

        # An MPEG-TS flow does not play in the page; its HLS link carries no credentials here.
        flows.filter(has_text="MPEG-TS").click()
        expect(page.locator("#player-status")).to_contain_text("video/mp2t does not play in the page")
        expect(page.get_by_role("button", name=re.compile("^Play"))).to_be_hidden()
        expect(page.locator("#hls")).to_contain_text("the player needs the API's user name and password")
        assert "access_token" not in (page.locator("#hls-link").get_attribute("href") or "")

        stored = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie])")
        assert ADMIN_PASSWORD not in stored
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.locator("#app")).to_be_hidden()
    page.close()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {**os.environ, "TAMS_BACKEND": "memory", "TAMS_DATA_DIR": str(tmp_path_factory.mktemp("open"))}
    with server_process.running(["--log-level", "warning", "--insecure-no-auth"], env) as url:
        yield url


def test_without_credentials_and_in_a_narrow_window(browser: Browser, open_server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    flow = flow_body("video", label="Open flow")
    assert httpx.put(f"{open_server}/v8.2/flows/{flow['id']}", json=flow).status_code == 201
    page = browser.new_page(viewport={"width": 400, "height": 800})
    page.set_default_timeout(10_000)
    with screenshot_on_failure(page, tmp_path, "viewer-open"):
        page.goto(f"{open_server}/viewer/")
        expect(page.locator("#who")).to_have_text("This server needs no credentials")
        expect(page.get_by_role("heading", name="Sign in")).to_be_hidden()
        page.locator("#flows .item").filter(has_text="Open flow").click()
        assert timeline_done(page) == "This flow has no segments."
        # Nothing wider than the window: the columns stack.
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 400
    page.close()


def hevc_mp4() -> bytes:
    """A few frames of HEVC (libx265, in PyAV's wheels) in fragmented MP4."""
    import io

    import av

    out = io.BytesIO()
    with av.open(out, "w", format="mp4", options={"movflags": "empty_moov+default_base_moof+frag_keyframe"}) as mp4:
        stream = mp4.add_stream("libx265", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "x265-params": "log-level=error"}
        for index in range(3):
            frame = av.VideoFrame(320, 180, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([index * 40 + 16]) * plane.buffer_size)
            frame.pts = index
            for packet in stream.encode(frame):
                mp4.mux(packet)
        for packet in stream.encode(None):
            mp4.mux(packet)
    return out.getvalue()


def test_codecs_are_named_from_the_init_segment(browser: Browser, open_server: str) -> None:
    # What the player gives MediaSource.isTypeSupported and addSourceBuffer (static/mp4.js).
    video = media_content.video_segments("video/mp4", count=1)
    audio = media_content.audio_segments("video/mp4", count=1)
    page = browser.new_page()
    page.goto(f"{open_server}/viewer/")

    def named(data: bytes, container: str) -> str | None:
        script = "async ([data, container]) => (await import('./mp4.js')).mseType(new Uint8Array(data), container)"
        return page.evaluate(script, [list(data), container])

    assert video.init is not None and audio.init is not None
    assert named(video.init, "video/mp4") == video.mse_type  # avc1.PPCCLL from avcC
    assert named(audio.init, "audio/mp4") == audio.mse_type == 'audio/mp4; codecs="mp4a.40.2"'  # esds
    # hvcC: profile space and profile, reversed compatibility flags, tier and level, constraints.
    assert re.fullmatch(r'video/mp4; codecs="(hev1|hvc1)\.1\.6\.L\d+\.90"', named(hevc_mp4(), "video/mp4") or "")
    assert named(video.segments[0].data, "video/mp4") is None  # a media segment names nothing
    page.close()
