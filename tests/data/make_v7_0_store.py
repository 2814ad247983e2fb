"""Make ``tests/data/v7_0_store``: a data directory written by the 7.0-only release of tams-server.

Run it with a checkout of that release (commit 31b892d) first on the path, from that checkout:

    git worktree add --detach /tmp/tams-7.0 31b892d
    cd /tmp/tams-7.0 && PYTHONPATH=. python /path/to/tests/data/make_v7_0_store.py /path/to/tests/data

It writes, for ``tests/test_upgrade.py``:

- ``v7_0_store.tar.gz``: the ``local`` backend's data directory (``v7_0_store/``);
- ``v7_0_vast_store.tar.gz``: what the ``vast`` backend left on its (emulated) cluster: every table
  as an Arrow IPC file (``tables/<name>.arrow``, with the 7.0-era columns) and every S3 object
  (``s3/<key>``);
- ``v7_0_store.json`` / ``v7_0_vast_store.json``: what that release answered to GET requests then.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import tarfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from starlette.testclient import TestClient

from tams_server.app import create_app
from tams_server.config import Settings

TOKEN = "tams_upgrade-test-admin-token"
MEDIA_SECRET = "make-v7-store-" + secrets.token_urlsafe(16)  # any strong secret: URLs are not kept
NS = uuid.UUID("5a1e0000-0000-4000-8000-000000000070")


def uid(name: str) -> str:
    return str(uuid.uuid5(NS, name))


def main(out_dir: Path) -> None:
    store = out_dir / "v7_0_store"
    shutil.rmtree(store, ignore_errors=True)
    settings = Settings(
        backend="local", data_dir=str(store), admin_token=TOKEN, webhooks_allow_private=True, media_secret=MEDIA_SECRET
    )
    expected = populate(create_app(settings))
    (out_dir / "v7_0_store.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    with tarfile.open(out_dir / "v7_0_store.tar.gz", "w:gz") as archive:
        archive.add(store, arcname="v7_0_store")
    shutil.rmtree(store)

    settings = Settings(
        backend="vast",
        backend_options={"emulate": "v7-upgrade"},
        data_dir=None,
        admin_token=TOKEN,
        webhooks_allow_private=True,
        media_secret=MEDIA_SECRET,
    )
    app = create_app(settings)
    expected = populate(app)
    (out_dir / "v7_0_vast_store.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    dump_vast(app.backend, out_dir / "v7_0_vast_store.tar.gz")
    print(f"wrote {out_dir}/v7_0_store.* and {out_dir}/v7_0_vast_store.*")


def dump_vast(backend, archive_path: Path) -> None:
    """The emulated cluster's tables (Arrow IPC, 7.0-era columns, no row ids) and S3 objects."""
    import io

    import boto3
    import pyarrow as pa

    cluster = backend.engine.cluster
    with tarfile.open(archive_path, "w:gz") as archive:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

        with cluster.session().transaction() as tx:
            refs = [table.ref for table in tx.bucket("tams").schema("tams").tables()]
        for ref in refs:
            rows = cluster.committed_rows(ref)
            rows = rows.drop_columns([n for n in rows.column_names if n.startswith("$")])
            sink = io.BytesIO()
            with pa.ipc.new_stream(sink, rows.schema) as writer:
                writer.write_table(rows)
            add(f"tables/{ref.table}.arrow", sink.getvalue())
        for store in backend._stores.values():
            s3 = boto3.client(
                "s3",
                endpoint_url=store.config.endpoint_url,
                aws_access_key_id="test",
                aws_secret_access_key="test",
                region_name="us-east-1",
            )
            bucket = store.config.bucket
            for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                add(f"s3/{item['Key']}", s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())


def populate(app) -> dict:
    """Write one of everything 7.0 has through ``app``; what GET answered afterwards."""
    with TestClient(app, base_url="http://testserver", headers={"Authorization": f"Bearer {TOKEN}"}) as client:

        def ok(response, *statuses):
            assert response.status_code in (statuses or (200, 201, 204)), (response.request.url, response.text)
            return response

        ok(client.post("/service", json={"name": "upgrade", "description": "written by the 7.0 release"}))
        video = {
            "id": uid("video"),
            "source_id": uid("camera"),
            "format": "urn:x-nmos:format:video",
            "codec": "video/h264",
            "container": "video/mp2t",
            "label": "camera 1",
            "description": "main",
            "tags": {"genre": "news", "list_like": "a,b"},
            "essence_parameters": {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 25}},
        }
        # Valid in 7.0, invalid in 8.x (no frame_rate, no vfr).
        video_no_rate = {
            "id": uid("video-no-rate"),
            "source_id": uid("camera"),
            "format": "urn:x-nmos:format:video",
            "codec": "video/h264",
            "container": "video/mp2t",
            "essence_parameters": {"frame_width": 1280, "frame_height": 720},
        }
        audio = {
            "id": uid("audio"),
            "source_id": uid("microphone"),
            "format": "urn:x-nmos:format:audio",
            "codec": "audio/aac",
            "container": "video/mp2t",
            "read_only": False,
            "essence_parameters": {"sample_rate": 48000, "channels": 2},
        }
        data = {
            "id": uid("data"),
            "source_id": uid("subtitles"),
            "format": "urn:x-nmos:format:data",
            "codec": "text/vtt",
            "container": "text/vtt",
            "essence_parameters": {"data_type": "urn:x-tams:data:subtitle"},
        }
        image = {
            "id": uid("image"),
            "source_id": uid("stills"),
            "format": "urn:x-tam:format:image",
            "codec": "image/jpeg",
            "container": "image/jpeg",
            "essence_parameters": {"frame_width": 640, "frame_height": 360},
        }
        multi = {
            "id": uid("multi"),
            "source_id": uid("programme"),
            "format": "urn:x-nmos:format:multi",
            "container": "video/mp2t",
            "label": "programme",
            "flow_collection": [{"id": uid("video"), "role": "video"}, {"id": uid("audio"), "role": "audio"}],
        }
        for flow in (video, video_no_rate, audio, data, image, multi):
            ok(client.put(f"/flows/{flow['id']}", json=flow), 201)
        ok(client.put(f"/sources/{uid('camera')}/tags/site", json="studio 2"), 204)
        ok(client.put(f"/flows/{uid('image')}/read_only", json=True), 204)

        # Controlled media: allocate, upload, register; and one uncontrolled URL without a label.
        objects = ok(client.post(f"/flows/{uid('video')}/storage", json={"limit": 3}), 201).json()["media_objects"]
        segments = []
        for i, media in enumerate(objects):
            url = urlsplit(media["put_url"]["url"])
            upload = {"content": f"segment {i}".encode(), "headers": {"Content-Type": "video/mp2t"}}
            if url.netloc == "testserver":
                ok(client.put(f"{url.path}?{url.query}", **upload), 200, 201, 204)
            else:  # a presigned S3 URL (moto on loopback)
                ok(httpx.put(media["put_url"]["url"], **upload), 200, 201, 204)
            segments.append(
                {
                    "object_id": media["object_id"],
                    "timerange": f"[{i * 10}:0_{i * 10 + 10}:0)",
                    "ts_offset": "0:0",
                    "last_duration": "10:0",
                    "sample_offset": 0,
                    "sample_count": 250,
                }
            )
        ok(client.post(f"/flows/{uid('video')}/segments", json=segments), 201)
        ok(
            client.post(
                f"/flows/{uid('audio')}/segments",
                json={
                    "object_id": "external-object-1",
                    "timerange": "[0:0_5:0)",
                    "get_urls": [{"url": "https://cdn.example.com/audio/1.ts"}],
                },
            ),
            201,
        )
        ok(
            client.post(
                "/service/webhooks",
                json={
                    "url": "https://receiver.example.com/tams",
                    "api_key_name": "X-Key",
                    "api_key_value": "secret",
                    "events": ["flows/created", "flows/segments_added"],
                    "flow_ids": [uid("video")],
                    "accept_get_urls": [],
                },
            ),
            201,
        )

        expected = {}
        for path in [
            "/service",
            "/flows",
            "/sources",
            "/service/webhooks",
            "/service/storage-backends",
            *(f"/flows/{f['id']}" for f in (video, video_no_rate, audio, data, image, multi)),
            f"/flows/{uid('video')}/segments",
            f"/flows/{uid('audio')}/segments",
            f"/sources/{uid('camera')}",
            f"/objects/{objects[0]['object_id']}",
        ]:
            expected[path] = ok(client.get(path), 200).json()
    return expected


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
