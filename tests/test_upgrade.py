"""A store written by the 7.0-only release opens with this server, nothing lost, and reads back
under every version: the ``local`` backend's data directory (DuckDB tables and media files) and
the ``vast`` backend's tables and S3 objects (on the emulated cluster).

``tests/data/v7_0_*store.tar.gz`` were made by ``tests/data/make_v7_0_store.py`` with that release
(commit 31b892d), and ``v7_0_*store.json`` hold what that release answered then.
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pyarrow as pa
import pytest
from conftest import TamsClient, app_settings

from backends import vast
from tams_server.app import create_app

DATA = Path(__file__).resolve().parent / "data"
TOKEN = "tams_upgrade-test-admin-token"
EXPECTED: dict[str, dict[str, Any]] = {
    "local": json.loads((DATA / "v7_0_store.json").read_text()),
    "vast": json.loads((DATA / "v7_0_vast_store.json").read_text()),
}


def open_local(where: Path) -> Any:
    with tarfile.open(DATA / "v7_0_store.tar.gz") as archive:
        archive.extractall(where, filter="data")
    return create_app(app_settings(backend="local", data_dir=str(where / "v7_0_store"), admin_token=TOKEN))


def open_vast() -> Any:
    """Lay the 7.0-era tables (their own columns) on a fresh emulated cluster, open the backend on
    it, then put back the S3 objects."""
    name = "v7-upgrade"  # as made: the S3 bucket's name (in URLs) follows it
    with tarfile.open(DATA / "v7_0_vast_store.tar.gz") as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}  # type: ignore[union-attr]
    with vast.emulated_cluster(name).session().transaction() as tx:
        schema = tx.bucket("tams").create_schema("tams")
        for member, data in members.items():
            if member.startswith("tables/"):
                rows = pa.ipc.open_stream(io.BytesIO(data)).read_all()
                table = schema.create_table(Path(member).stem, rows.schema)
                if rows.num_rows:
                    table.insert(rows)
    app = create_app(app_settings(backend="vast", backend_options={"emulate": name}, admin_token=TOKEN))
    [store] = app.backend._stores.values()
    s3 = boto3.client(
        "s3",
        endpoint_url=store.config.endpoint_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    for member, data in members.items():
        if member.startswith("s3/"):
            s3.put_object(Bucket=store.config.bucket, Key=member[len("s3/") :], Body=data)
    return app


@pytest.fixture(scope="module", params=["local", "vast"])
def upgraded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """The 7.0-era store of a backend, opened by this server (every version served)."""
    app = open_local(tmp_path_factory.mktemp("upgrade")) if request.param == "local" else open_vast()
    yield request.param, app
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


def test_everything_written_by_the_70_release_reads_back_the_same_under_70(upgraded: tuple[str, Any]) -> None:
    backend, app = upgraded
    tams = client(app, "7.0")
    for path, expected in EXPECTED[backend].items():
        response = tams.get(path)
        assert response.status_code == 200, (path, response.text)
        body = response.json()
        if path == "/service":
            body.pop("service_version")  # new: which software serves which versions where
        assert comparable(body) == comparable(expected), path


def test_media_written_by_the_70_release_downloads(upgraded: tuple[str, Any]) -> None:
    backend, app = upgraded
    tams = client(app, "7.0")
    expected = EXPECTED[backend]
    video = next(path for path in expected if path.endswith("/segments") and expected[path][0].get("get_urls"))
    segments = tams.get(video).json()
    contents = [tams.get(segment["get_urls"][0]["url"]).content for segment in segments]
    assert contents == [f"segment {i}".encode() for i in range(len(segments))]


def test_webhooks_of_the_70_release_get_ids_that_last(upgraded: tuple[str, Any]) -> None:
    """Registrations stored without ids get one when the store opens, written back to the table."""
    from backends.tabular.engine import col
    from backends.tabular.tables import WEBHOOKS

    backend, app = upgraded
    listed = client(app, "8.2").get("/service/webhooks").json()
    assert len(listed) == len(EXPECTED[backend]["/service/webhooks"])
    assert all(w["status"] == "created" for w in listed)
    with app.backend.engine.transaction(write=False) as tx:
        assert tx.select(WEBHOOKS.name, ["seq"], col("id").isnull()).num_rows == 0
        stored = sorted(tx.select(WEBHOOKS.name, ["id"]).column("id").to_pylist())
    assert stored == sorted(w["id"] for w in listed)
    for webhook in listed:
        assert client(app, "8.2").get(f"/service/webhooks/{webhook['id']}").json() == webhook


def identities(body: Any) -> Any:
    """What a response is about: ids of resources, (object, timerange) of segments."""
    if isinstance(body, list):
        return sorted(str(identities(item)) for item in body)
    if isinstance(body, dict) and "object_id" in body and "timerange" in body:
        return (body["object_id"], body["timerange"])
    if isinstance(body, dict) and "url" in body and "events" in body:  # a webhook (ids came with 8.0)
        return body["url"]
    if isinstance(body, dict) and "id" in body:
        return body["id"]
    return None


def test_everything_written_by_the_70_release_reads_under_82(upgraded: tuple[str, Any]) -> None:
    """Every response is checked against the official 8.2 schema by the client."""
    backend, app = upgraded
    new = client(app, "8.2")
    for path, expected in EXPECTED[backend].items():
        response = new.get(path)
        assert response.status_code == 200, (path, response.text)
        assert identities(response.json()) == identities(expected), path
    flows = {flow["id"]: flow for flow in new.get("/flows").json()}
    # A 7.0 video flow without a frame rate is shown in its only valid 8.x form.
    [no_rate] = [f for f in flows.values() if f["format"].endswith("video") and f.get("label") != "camera 1"]
    assert no_rate["essence_parameters"]["vfr"] is True
    # A URL registered without a label has one under 8.x, where instances need one.
    audio = next(f for f in flows.values() if f["format"].endswith("audio"))
    [segment] = new.get(f"/flows/{audio['id']}/segments").json()
    assert [u["url"] for u in segment["get_urls"]] == ["https://cdn.example.com/audio/1.ts"]
    assert segment["get_urls"][0]["label"]
    video = next(f for f in flows.values() if f.get("label") == "camera 1")
    contents = [new.get(s["get_urls"][0]["url"]).content for s in new.get(f"/flows/{video['id']}/segments").json()]
    assert contents == [b"segment 0", b"segment 1", b"segment 2"]


def test_objects_of_the_70_release_are_known_to_new_segments(upgraded: tuple[str, Any]) -> None:
    """Segments posted now must name an object the store knows or bring get_urls; an object a
    7.0-era segment registered (rows from before 8.x) is known: another flow may reuse it as it is."""
    _, app = upgraded
    new = client(app, "8.2")
    flows = new.get("/flows").json()
    audio = next(f for f in flows if f["format"].endswith("audio"))
    [old] = new.get(f"/flows/{audio['id']}/segments").json()
    refused = new.post(f"/flows/{audio['id']}/segments", json={"object_id": "never-seen", "timerange": "[99:0_100:0)"})
    assert refused.status_code == 400
    other = {**{k: audio[k] for k in ("format", "codec", "container", "essence_parameters")}, "id": str(uuid.uuid4())}
    other["source_id"] = str(uuid.uuid4())
    assert new.put(f"/flows/{other['id']}", json=other).status_code == 201
    try:
        reuse = {"object_id": old["object_id"], "timerange": "[0:0_1:0)"}
        assert new.post(f"/flows/{other['id']}/segments", json=reuse).status_code == 201
    finally:
        assert new.delete(f"/flows/{other['id']}").status_code == 204  # the store reads back as it was made
    assert new.get(f"/flows/{audio['id']}/segments").json() == [old]
