"""Master playlists: a multi-essence flow or a source as video variants with an audio group."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tams_server.app import create_app
from tams_server.hls import master, route
from tests.conftest import ADMIN_HEADERS, ADMIN_TOKEN, app_settings, backend_settings, flow_body
from tests.test_hls_route import entries, make_flow

VIDEO, AUDIO = "urn:x-nmos:format:video", "urn:x-nmos:format:audio"


def attributes(line: str) -> dict[str, str]:
    """The attribute list of a tag line, quoted strings unquoted."""
    found = re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1])
    return {key: value.strip('"') for key, value in found}


def variants(text: str) -> list[tuple[dict[str, str], str]]:
    """(attributes, URI) of each EXT-X-STREAM-INF."""
    lines = text.splitlines()
    return [(attributes(line), lines[i + 1]) for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF:")]


def media(text: str) -> list[dict[str, str]]:
    return [attributes(line) for line in text.splitlines() if line.startswith("#EXT-X-MEDIA:")]


# --------------------------------------------------------------------------- the text


def rendition(kind: str, uri: str, name: str = "x", **fields: Any) -> master.Rendition:
    return master.Rendition({"format": {"video": VIDEO, "audio": AUDIO}.get(kind, kind), **fields}, uri, name)


rates = st.none() | st.integers(1, 10**6)


@st.composite
def flows(draw: st.DrawFn) -> list[master.Rendition]:
    found = []
    for index in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["video", "audio", "urn:x-nmos:format:data"]))
        fields = {k: v for k, v in (("max_bit_rate", draw(rates)), ("avg_bit_rate", draw(rates))) if v is not None}
        found.append(rendition(kind, f"f{index}.m3u8", draw(st.sampled_from(["main", "main", 'say "hi"'])), **fields))
    return found


@settings(max_examples=200, deadline=None)
@given(renditions=flows())
def test_every_video_is_a_variant_that_plays_with_every_audio(renditions: list[master.Rendition]) -> None:
    videos = [r for r in renditions if r.is_video]
    audios = [r for r in renditions if r.is_audio]
    if not videos and not audios:
        with pytest.raises(ValueError):
            master.master_playlist(renditions)
        return
    text = master.master_playlist(renditions)
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:")
    listed, groups = variants(text), media(text)
    if videos:
        assert [uri for _, uri in listed] == [v.uri for v in videos]
        assert [g["URI"] for g in groups] == [a.uri for a in audios]
        names = [g["NAME"] for g in groups]
        assert len(set(names)) == len(names) and all('"' not in n for n in names)
        assert [g["DEFAULT"] for g in groups] == ["YES", *["NO"] * (len(audios) - 1)][: len(audios)]
        loudest = (
            max((master._bit_rate(a.flow, "max_bit_rate") or master._bit_rate(a.flow, "avg_bit_rate")) for a in audios)
            if audios
            else 0
        )
        for (attrs, _), video in zip(listed, videos, strict=True):
            own = master._bit_rate(video.flow, "max_bit_rate") or master._bit_rate(video.flow, "avg_bit_rate")
            assert int(attrs["BANDWIDTH"]) == own + loudest
            assert ("AUDIO" in attrs) is bool(audios)
    else:  # sound alone: each audio flow is a variant
        assert [uri for _, uri in listed] == [a.uri for a in audios] and not groups


def test_what_a_video_and_an_audio_flow_declare_is_said() -> None:
    video = rendition(
        "video",
        "v.m3u8",
        max_bit_rate=5000,
        avg_bit_rate=4000,
        essence_parameters={
            "frame_width": 1920,
            "frame_height": 1080,
            "frame_rate": {"numerator": 30000, "denominator": 1001},
        },
    )
    audio = rendition("audio", "a.m3u8", "English", avg_bit_rate=128, essence_parameters={"channels": 2})
    text = master.master_playlist([audio, video])
    assert variants(text) == [
        (
            {
                "BANDWIDTH": "5128000",
                "AVERAGE-BANDWIDTH": "4128000",
                "RESOLUTION": "1920x1080",
                "FRAME-RATE": "29.970",
                "AUDIO": "audio",
            },
            "v.m3u8",
        )
    ]
    assert media(text) == [
        {
            "TYPE": "AUDIO",
            "GROUP-ID": "audio",
            "NAME": "English",
            "DEFAULT": "YES",
            "AUTOSELECT": "YES",
            "CHANNELS": "2",
            "URI": "a.m3u8",
        }
    ]


# --------------------------------------------------------------------------- through the app


@pytest.fixture(scope="module", params=["memory", "local"])
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    app = create_app(app_settings(**backend_settings(request.param), default_version="8.2"))
    with TestClient(app, headers=ADMIN_HEADERS) as test_client:
        yield test_client


def audio_flow(client: TestClient, source_id: str | None = None, **fields: Any) -> str:
    flow = flow_body("audio", source_id=source_id, **fields)
    assert client.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    return flow["id"]


def test_a_multi_essence_flow_is_a_master_playlist_of_its_members(client: TestClient) -> None:
    video = make_flow(client, [("[0:0_1:0)", None), ("[1:0_2:0)", None)])
    english, french, gone = audio_flow(client), audio_flow(client), audio_flow(client)
    multi = flow_body("multi")
    multi["flow_collection"] = [
        {"id": video, "role": "picture"},
        {"id": english, "role": "English"},
        {"id": french, "role": "French"},
        {"id": gone, "role": "deleted since"},
    ]
    assert client.put(f"/flows/{multi['id']}", json=multi).status_code == 201
    assert client.delete(f"/flows/{gone}").status_code in (200, 202, 204)

    url = f"http://testserver/hls/flows/{multi['id']}.m3u8"
    answer = client.get(url, params={"timerange": "[1:0_2:0)"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    listed, groups = variants(answer.text), media(answer.text)
    assert [g["NAME"] for g in groups] == ["English", "French"]
    assert len(listed) == 1 and listed[0][0]["AUDIO"] == "audio"
    # Each URI is the member's media playlist, with the window passed on.
    assert urljoin(url, listed[0][1]) == f"http://testserver/hls/flows/{video}.m3u8?timerange=%5B1%3A0_2%3A0%29"
    assert urljoin(url, groups[0]["URI"]).startswith(f"http://testserver/hls/flows/{english}.m3u8")
    assert len(entries(client.get(urljoin(url, listed[0][1])).text)) == 1


def test_a_player_with_an_access_token_can_follow_every_uri(client: TestClient) -> None:
    video = make_flow(client, [("[0:0_1:0)", None)])
    source_id = client.get(f"/flows/{video}").json()["source_id"]
    audio_flow(client, source_id=source_id)
    anonymous = TestClient(client.app)
    url = f"http://testserver/hls/sources/{source_id}.m3u8"
    assert anonymous.get(url).status_code == 401
    text = anonymous.get(url, params={"access_token": ADMIN_TOKEN}).text
    uris = [uri for _, uri in variants(text)] + [g["URI"] for g in media(text)]
    assert len(uris) == 2
    for uri in uris:
        assert uri.startswith("../flows/") and f"access_token={ADMIN_TOKEN}" in uri
        assert anonymous.get(urljoin(url, uri)).status_code == 200


def test_a_source_of_sound_alone_and_clear_errors(client: TestClient) -> None:
    first = audio_flow(client)
    source_id = client.get(f"/flows/{first}").json()["source_id"]
    second = audio_flow(client, source_id=source_id)
    text = client.get(f"/hls/sources/{source_id}.m3u8").text
    assert sorted(uri for _, uri in variants(text)) == sorted(f"../flows/{f}.m3u8" for f in (first, second))
    assert not media(text)

    data = flow_body("data")
    assert client.put(f"/flows/{data['id']}", json=data).status_code == 201
    empty = flow_body("multi")
    assert client.put(f"/flows/{empty['id']}", json=empty).status_code == 201
    for path in (
        f"/hls/sources/{data['source_id']}.m3u8",  # nothing to play
        f"/hls/flows/{empty['id']}.m3u8",  # a collection of nothing
        "/hls/sources/00000000-0000-4000-8000-000000000000.m3u8",  # no such source
        f"/hls/sources/{source_id}",
    ):
        answer = client.get(path)
        assert answer.status_code == 404, (path, answer.text)
        assert set(answer.json()) == {"type", "summary", "time"}


def test_more_flows_than_a_master_lists_are_refused_not_cut_short(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(route, "MAX_RENDITIONS", 2)
    first = audio_flow(client)
    source_id = client.get(f"/flows/{first}").json()["source_id"]
    audio_flow(client, source_id=source_id)
    assert client.get(f"/hls/sources/{source_id}.m3u8").status_code == 200
    audio_flow(client, source_id=source_id)
    answer = client.get(f"/hls/sources/{source_id}.m3u8")
    assert answer.status_code == 400 and "more than 2 flows" in answer.json()["summary"], answer.text
    # A multi-essence flow collecting more is refused the same way.
    multi = flow_body("multi")
    multi["flow_collection"] = [{"id": first}, {"id": audio_flow(client)}, {"id": audio_flow(client)}]
    assert client.put(f"/flows/{multi['id']}", json=multi).status_code == 201
    answer = client.get(f"/hls/flows/{multi['id']}.m3u8")
    assert answer.status_code == 400 and "more than 2 flows" in answer.json()["summary"], answer.text
