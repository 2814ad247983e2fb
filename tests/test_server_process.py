"""The real ``tams-server`` process over real HTTP: upload to a put_url, register, download."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import httpx
import pytest
from conftest import ADMIN_HEADERS, ADMIN_TOKEN

from tools import server_process


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {**os.environ, "TAMS_ADMIN_TOKEN": ADMIN_TOKEN, "TAMS_DATA_DIR": str(tmp_path_factory.mktemp("data"))}
    with server_process.running(["--log-level", "warning"], env) as url:
        yield url


def test_media_round_trip_over_real_http(server: str) -> None:
    flow_id, source_id = str(uuid.uuid4()), str(uuid.uuid4())
    with httpx.Client(base_url=server, timeout=10, headers=ADMIN_HEADERS) as api:
        flow = {
            "id": flow_id,
            "source_id": source_id,
            "format": "urn:x-nmos:format:video",
            "codec": "video/h264",
            "container": "video/mp2t",
            "essence_parameters": {"frame_width": 1280, "frame_height": 720, "frame_rate": {"numerator": 50}},
        }
        assert api.put(f"/flows/{flow_id}", json=flow).status_code == 201
        storage = api.post(f"/flows/{flow_id}/storage", json={"limit": 1})
        assert storage.status_code == 201
        media_object = storage.json()["media_objects"][0]
        put_url = media_object["put_url"]
        assert put_url["url"].startswith(server)
        payload = bytes(range(256)) * 64
        # The signed URL needs no API credentials: a plain client with no base URL.
        upload = httpx.put(put_url["url"], content=payload, headers={"Content-Type": put_url["content-type"]})
        assert upload.status_code == 200
        registered = api.post(
            f"/flows/{flow_id}/segments", json={"object_id": media_object["object_id"], "timerange": "[0:0_2:0)"}
        )
        assert registered.status_code == 201
        segments = api.get(f"/flows/{flow_id}/segments", params={"timerange": "[1:0]"}).json()
        assert [s["timerange"] for s in segments] == ["[0:0_2:0)"]
        get_url = segments[0]["get_urls"][0]["url"]
        assert httpx.get(get_url).content == payload
        partial = httpx.get(get_url, headers={"Range": "bytes=10-19"})
        assert partial.status_code == 206
        assert partial.content == payload[10:20]
        assert partial.headers["content-range"] == f"bytes 10-19/{len(payload)}"
        head = api.head(f"/flows/{flow_id}/segments")
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["x-paging-count"] == "1"
