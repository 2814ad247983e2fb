"""GET /hls/flows/{flowId}.m3u8 through the app: authentication, streaming over pages, windows."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from starlette.testclient import TestClient

from tams_server.app import create_app
from tams_server.hls import route
from tests.conftest import ADMIN_HEADERS, ADMIN_TOKEN, app_settings, backend_settings, flow_body

CONTENT = b"\x47" * 188 * 4


@pytest.fixture(scope="module", params=["memory", "local"])
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    app = create_app(app_settings(**backend_settings(request.param), default_version="8.2"))
    with TestClient(app, headers=ADMIN_HEADERS) as test_client:
        yield test_client


def make_flow(client: TestClient, timeranges: list[tuple[str, str | None]], **fields: Any) -> str:
    """A video flow whose segments have these (timerange, ts_offset); the first one's bytes uploaded."""
    flow = flow_body("video", **fields)
    assert client.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    objects: list[Any] = []
    while len(objects) < len(timeranges):  # at most 1000 an allocation
        limit = min(1000, len(timeranges) - len(objects))
        objects += client.post(f"/flows/{flow['id']}/storage", json={"limit": limit}).json()["media_objects"]
    put = objects[0]["put_url"]
    assert client.put(put["url"], content=CONTENT, headers={"Content-Type": put["content-type"]}).status_code == 200
    bodies = []
    for media, (timerange, offset) in zip(objects, timeranges, strict=True):
        bodies.append(
            {"object_id": media["object_id"], "timerange": timerange, **({"ts_offset": offset} if offset else {})}
        )
    for at in range(0, len(bodies), 1000):
        assert client.post(f"/flows/{flow['id']}/segments", json=bodies[at : at + 1000]).status_code in (200, 201)
    return flow["id"]


def unsigned(text: str) -> str:
    """A playlist with the query of each URI taken off."""
    return "\n".join(line if line.startswith("#") else line.split("?")[0] for line in text.splitlines())


def entries(text: str) -> list[tuple[list[str], Decimal, str]]:
    """(tags, EXTINF seconds, uri) of each segment of a playlist."""
    found, tags, extinf = [], [], Decimal(0)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#EXT-X-PLAYLIST-TYPE")) + 1
    for line in lines[start:]:
        if line.startswith("#EXTINF:"):
            extinf = Decimal(line.removeprefix("#EXTINF:").rstrip(","))
        elif line.startswith("#"):
            tags.append(line)
        elif line:
            found.append((tags, extinf, line))
            tags = []
    return found


def test_a_flow_plays_as_listed_with_its_holes_and_offset_changes(client: TestClient) -> None:
    flow_id = make_flow(
        client, [("[0:0_10:0)", None), ("[10:0_20:0)", None), ("[25:0_30:0)", None), ("[30:0_35:0)", "2:0")]
    )
    answer = client.get(f"/hls/flows/{flow_id}.m3u8")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith(route.MEDIA_TYPE)
    assert "#EXT-X-TARGETDURATION:10" in answer.text
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in answer.text and "#EXT-X-ENDLIST" not in answer.text
    listed = entries(answer.text)
    assert [e[1] for e in listed] == [10, 10, 5, 5]
    assert ["#EXT-X-DISCONTINUITY" in tags for tags, _, _ in listed] == [False, False, True, True]
    segments = client.get(f"/flows/{flow_id}/segments", params={"presigned": "true"}).json()
    # Named as files of the container (FFmpeg judges a segment by its URL's extension).
    assert [uri for _, _, uri in listed] == [s["get_urls"][0]["url"] + "&name=segment.ts" for s in segments]
    # The URIs need no credentials: a player GETs them as they are.
    assert TestClient(client.app).get(listed[0][2]).content == CONTENT


def test_a_window_and_a_finished_flow(client: TestClient) -> None:
    flow_id = make_flow(client, [(f"[{i}:0_{i + 1}:0)", None) for i in range(6)], read_only=False)
    window = client.get(f"/hls/flows/{flow_id}.m3u8", params={"timerange": "[2:0_4:0)"})
    assert len(entries(window.text)) == 2
    assert "#EXT-X-TARGETDURATION:1" in window.text
    assert client.put(f"/flows/{flow_id}/read_only", json=True).status_code == 204
    finished = client.get(f"/hls/flows/{flow_id}.m3u8").text
    assert finished.rstrip().endswith("#EXT-X-ENDLIST") and "#EXT-X-PLAYLIST-TYPE:VOD" in finished


def test_a_flow_of_many_pages_is_listed_whole(client: TestClient) -> None:
    count = route.PAGE * 2 + 17
    flow_id = make_flow(client, [(f"[{i}:0_{i + 1}:0)", None) for i in range(count)])
    listed = entries(client.get(f"/hls/flows/{flow_id}.m3u8").text)
    assert len(listed) == count
    assert sum(1 for tags, _, _ in listed if "#EXT-X-DISCONTINUITY" in tags) == 0


def test_players_authenticate_as_api_clients_do(client: TestClient) -> None:
    flow_id = make_flow(client, [("[0:0_1:0)", None)])
    anonymous = TestClient(client.app)
    assert anonymous.get(f"/hls/flows/{flow_id}.m3u8").status_code == 401
    assert anonymous.get(f"/hls/flows/{flow_id}.m3u8", params={"access_token": ADMIN_TOKEN}).status_code == 200


def test_clear_errors(client: TestClient) -> None:
    flow_id = make_flow(client, [("[0:0_1:0)", None)])
    for path, params, status in [
        ("/hls/flows/00000000-0000-4000-8000-000000000000.m3u8", {}, 404),
        (f"/hls/flows/{flow_id}.m3u8", {"timerange": "nonsense"}, 400),
        (f"/hls/flows/{flow_id}", {}, 404),
    ]:
        answer = client.get(path, params=params)
        assert answer.status_code == status, (path, answer.text)
        assert set(answer.json()) == {"type", "summary", "time"}
    refused = client.post(f"/hls/flows/{flow_id}.m3u8")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"


def test_a_live_playlist_grows_as_segments_arrive(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_800_000_000.0]  # the start of a signing window (URLs live 3600 s, stable for 900 s)
    monkeypatch.setattr("tams_server.media.time.time", lambda: now[0])
    flow_id = make_flow(client, [("[0:0_2:0)", None), ("[2:0_4:0)", None)])
    first = client.get(f"/hls/flows/{flow_id}.m3u8").text
    now[0] += 600  # reloaded ten minutes later
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in first and len(entries(first)) == 2
    [media] = client.post(f"/flows/{flow_id}/storage", json={"limit": 1}).json()["media_objects"]
    assert (
        client.post(
            f"/flows/{flow_id}/segments", json={"object_id": media["object_id"], "timerange": "[4:0_6:0)"}
        ).status_code
        == 201
    )
    reloaded = client.get(f"/hls/flows/{flow_id}.m3u8").text
    # An EVENT playlist only grows at its end: its URIs too (a signed URL of an object is the same
    # for a quarter of its lifetime; presigned S3 URLs are not, so their queries are left out here).
    signed = "/_media/" in first
    assert reloaded.startswith(first) if signed else unsigned(reloaded).startswith(unsigned(first))
    assert [e[1] for e in entries(reloaded)] == [2, 2, 2]
