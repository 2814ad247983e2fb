"""A data directory written by the 7.0-only release opens with this server, nothing lost, and reads
back under every version.

``tests/data/v7_0_store.tar.gz`` was made by ``tests/data/make_v7_0_store.py`` with that release
(commit 31b892d), and ``v7_0_store.json`` holds what that release answered then.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import TamsClient, app_settings

from tams_server.app import create_app

DATA = Path(__file__).resolve().parent / "data"
TOKEN = "tams_upgrade-test-admin-token"
EXPECTED: dict[str, Any] = json.loads((DATA / "v7_0_store.json").read_text())


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The 7.0-era data directory, opened by this server (local backend, every version)."""
    where = tmp_path_factory.mktemp("upgrade")
    with tarfile.open(DATA / "v7_0_store.tar.gz") as archive:
        archive.extractall(where, filter="data")
    settings = app_settings(backend="local", data_dir=str(where / "v7_0_store"), admin_token=TOKEN)
    app = create_app(settings)
    yield app
    app.backend.close()


def client(app: Any, version: str) -> TamsClient:
    tams = TamsClient(app, version)
    tams.headers["Authorization"] = f"Bearer {TOKEN}"
    return tams


def comparable(value: Any) -> Any:
    """A response with signed URLs reduced to their path (signatures and expiry change) and lists of
    resources put in id order (the listing order is not part of what was stored)."""
    if isinstance(value, dict):
        return {k: (urlsplit(v).path if k == "url" else comparable(v)) for k, v in value.items()}
    if isinstance(value, list):
        items = [comparable(v) for v in value]
        if items and all(isinstance(v, dict) and "id" in v for v in items):
            items.sort(key=lambda v: v["id"])
        return items
    return value


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_everything_written_by_the_70_release_reads_back_the_same_under_70(upgraded: Any, path: str) -> None:
    response = client(upgraded, "7.0").get(path)
    assert response.status_code == 200, response.text
    assert comparable(response.json()) == comparable(EXPECTED[path])


def test_media_written_by_the_70_release_downloads(upgraded: Any) -> None:
    tams = client(upgraded, "7.0")
    video = next(path for path in EXPECTED if path.endswith("/segments") and EXPECTED[path][0].get("get_urls"))
    segments = tams.get(video).json()
    contents = [tams.get(segment["get_urls"][0]["url"]).content for segment in segments]
    assert contents == [f"segment {i}".encode() for i in range(len(segments))]
