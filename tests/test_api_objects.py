"""8.x media objects: the object resource, object_timerange, init objects, instances, put URL kinds.

Tests marked ``versions("8.2")`` run at /v8.2 only; cross-version tests write under one version and
read under the other on the same app.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import Tams, TamsClient, app_settings, fresh_app

from backends.memory import MemoryBackend
from backends.objectstore import MemoryObjectStore, StorageBackendInfo
from tams_server.app import create_app

CONTENT = b"\x47\x40\x00\x10" + bytes(range(256)) * 4
INIT_TYPE = "video/mp4"

v82 = pytest.mark.versions("8.2")
both = pytest.mark.versions("7.0", "8.2")


@pytest.fixture
def flow(tams: Tams) -> dict:
    return tams.put_flow()


@pytest.fixture
def backend(client: TamsClient) -> dict:
    return client.get("/service/storage-backends").json()[0]


def allocate_and_put(tams: Tams, flow_id: str, content: bytes = CONTENT, **body) -> str:
    [media_object] = tams.allocate(flow_id, limit=1, **body)
    put_url = media_object["put_url"]
    response = tams.client.put(put_url["url"], content=content, headers={"content-type": put_url["content-type"]})
    assert response.status_code in (200, 201, 204), response.text
    return media_object["object_id"]


def get_object(client: TamsClient, object_id: str, **params) -> dict:
    response = client.get(f"/objects/{object_id}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def cross_clients(client: TamsClient) -> tuple[TamsClient, TamsClient]:
    """A 7.0 and an 8.2 client on the app of ``client``."""
    return TamsClient(client.app, "7.0"), TamsClient(client.app, "8.2")


# ----------------------------------------------------------------- the object resource


@v82
def test_a_registered_object_has_its_urls_timerange_and_key_frames(tams, flow, backend):
    object_id = allocate_and_put(tams, flow["id"])
    tams.post_segment(flow["id"], "[10:0_20:0)", object_id=object_id, ts_offset="10:0", key_frame_count=3)
    body = get_object(tams.client, object_id)
    assert body["referenced_by_flows"] == [flow["id"]]
    assert body["timerange"] == "[0:0_10:0)"
    assert body["key_frame_count"] == 3
    [url] = body["get_urls"]
    assert url["label"] == backend["label"]
    assert tams.client.get(url["url"]).content == CONTENT
    assert "init_object" not in body


@v82
def test_object_url_filters(tams, flow, backend):
    object_id = allocate_and_put(tams, flow["id"])
    tams.post_segment(flow["id"], "[0:0_10:0)", object_id=object_id)
    assert "get_urls" not in get_object(tams.client, object_id, accept_get_urls="")
    assert get_object(tams.client, object_id, accept_get_urls="nothing")["get_urls"] == []
    assert len(get_object(tams.client, object_id, accept_storage_ids=backend["id"])["get_urls"]) == 1
    [verbose] = get_object(tams.client, object_id, verbose_storage="true")["get_urls"]
    assert verbose["storage_id"] == backend["id"] and verbose["controlled"] is True


@v82
def test_flow_tag_filters_referenced_by_flows(tams):
    tagged = tams.put_flow(tags={"team": "news"})
    plain = tams.put_flow()
    for f in (tagged, plain):
        tams.post_segment(
            f["id"], "[0:0_10:0)", object_id="shared", get_urls=[{"url": "https://x.example/a", "label": "x"}]
        )
    assert get_object(tams.client, "shared", **{"flow_tag.team": "news"})["referenced_by_flows"] == [tagged["id"]]
    assert get_object(tams.client, "shared", **{"flow_tag_exists.team": "false"})["referenced_by_flows"] == [
        plain["id"]
    ]
    assert len(get_object(tams.client, "shared")["referenced_by_flows"]) == 2


@both
def test_an_allocated_but_unregistered_object_is_404(tams, flow):
    [media_object] = tams.allocate(flow["id"], limit=1)
    assert tams.client.get(f"/objects/{media_object['object_id']}").status_code == 404
    assert tams.client.head(f"/objects/{media_object['object_id']}").status_code == 404


def test_objects_show_only_7_0_fields_under_7_0(client, tams, flow):
    old, new = cross_clients(client)
    object_id = allocate_and_put(Tams(new), flow["id"])
    Tams(new).post_segment(flow["id"], "[0:0_10:0)", object_id=object_id, key_frame_count=1)
    assert set(get_object(old, object_id)) == {"id", "referenced_by_flows", "first_referenced_by_flow"}
    assert {"timerange", "key_frame_count", "get_urls"} <= set(get_object(new, object_id))


# ----------------------------------------------------------------- object_timerange


@v82
def test_object_timerange_defaults_to_the_segment_timerange_less_ts_offset(tams, flow):
    tams.post_segment(flow["id"], "[100:0_110:0)", object_id="o", ts_offset="100:0")
    [segment] = tams.segments(flow["id"], include_object_timerange="true")
    assert segment["object_timerange"] == "[0:0_10:0)"
    [segment] = tams.segments(flow["id"])
    assert "object_timerange" not in segment


@v82
def test_an_explicit_object_timerange_is_kept_and_reuse_must_agree(tams, flow):
    tams.post_segment(flow["id"], "[0:0_5:0)", object_id="o", object_timerange="[0:0_10:0)")
    assert get_object(tams.client, "o")["timerange"] == "[0:0_10:0)"
    other = tams.put_flow()
    bad = tams.segment("[0:0_5:0)", object_id="o", object_timerange="[0:0_20:0)")
    assert tams.client.post(f"/flows/{other['id']}/segments", json=bad).status_code == 400
    tams.post_segment(other["id"], "[5:0_10:0)", object_id="o", ts_offset="0:0")  # reuse without facts
    [segment] = tams.segments(other["id"], include_object_timerange="true")
    assert segment["object_timerange"] == "[0:0_10:0)"


@v82
def test_an_invalid_object_timerange_is_400(tams, flow):
    [object_id] = tams.new_objects(flow["id"], 1)  # an object the store knows: only the timerange is wrong
    bad = tams.segment("[0:0_5:0)", object_id, object_timerange="[5:0_0:0)")
    assert tams.client.post(f"/flows/{flow['id']}/segments", json=bad).status_code == 400


# ----------------------------------------------------------------- init objects


def register_with_init(tams: Tams, flow_id: str) -> tuple[str, str]:
    init_id = allocate_and_put(tams, flow_id, b"init", content_type=INIT_TYPE)
    media_id = allocate_and_put(tams, flow_id)
    tams.post_segment(flow_id, "[0:0_10:0)", object_id=media_id, init_object_id=init_id)
    return init_id, media_id


@v82
def test_init_objects_are_allocated_with_their_own_content_type(tams, flow):
    [media_object] = tams.allocate(flow["id"], limit=1, content_type=INIT_TYPE)
    assert media_object["put_url"]["content-type"] == INIT_TYPE
    [media_object] = tams.allocate(flow["id"], limit=1)
    assert media_object["put_url"]["content-type"] == flow["container"]


@v82
def test_segments_and_objects_show_their_init_object(tams, flow):
    init_id, media_id = register_with_init(tams, flow["id"])
    [segment] = tams.segments(flow["id"])
    assert segment["init_object"]["object_id"] == init_id
    [url] = segment["init_object"]["get_urls"]
    assert tams.client.get(url["url"]).content == b"init"
    body = get_object(tams.client, media_id)
    assert body["init_object"]["id"] == init_id and len(body["init_object"]["get_urls"]) == 1
    init = get_object(tams.client, init_id)
    assert init["referenced_by_flows"] == [flow["id"]]
    assert "timerange" not in init and "init_object" not in init
    [segment] = tams.segments(flow["id"], accept_get_urls="")
    assert segment["init_object"] == {"object_id": init_id}


@v82
def test_an_object_is_media_or_init_never_both(tams, flow):
    init_id, media_id = register_with_init(tams, flow["id"])
    as_media = tams.segment("[10:0_20:0)", object_id=init_id)
    assert tams.client.post(f"/flows/{flow['id']}/segments", json=as_media).status_code == 400
    [other_media] = tams.new_objects(flow["id"], 1)  # known objects: only their use is wrong
    as_init = tams.segment("[10:0_20:0)", other_media, init_object_id=media_id)
    assert tams.client.post(f"/flows/{flow['id']}/segments", json=as_init).status_code == 400
    tams.allocate_ids(flow["id"], "self")
    itself = tams.segment("[10:0_20:0)", object_id="self", init_object_id="self")
    assert tams.client.post(f"/flows/{flow['id']}/segments", json=itself).status_code == 400
    assert len(tams.segments(flow["id"])) == 1


@v82
def test_a_reused_media_object_keeps_its_init_object(tams, flow):
    init_id, media_id = register_with_init(tams, flow["id"])
    other = tams.put_flow()
    tams.post_segment(other["id"], "[0:0_10:0)", object_id=media_id)
    [segment] = tams.segments(other["id"])
    assert segment["init_object"]["object_id"] == init_id
    assert get_object(tams.client, init_id)["referenced_by_flows"] == sorted([flow["id"], other["id"]])
    changed = tams.segment("[10:0_20:0)", object_id=media_id, init_object_id="another-init")
    assert tams.client.post(f"/flows/{other['id']}/segments", json=changed).status_code == 400


@v82
def test_init_references_go_with_the_segments(tams, flow):
    init_id, media_id = register_with_init(tams, flow["id"])
    assert tams.client.delete(f"/flows/{flow['id']}/segments").status_code == 204
    assert get_object(tams.client, init_id)["referenced_by_flows"] == []
    assert get_object(tams.client, media_id)["referenced_by_flows"] == []


def test_7_0_segments_do_not_show_8_x_fields(client, flow):
    old, new = cross_clients(client)
    init_id, _ = register_with_init(Tams(new), flow["id"])
    [segment] = Tams(old).segments(flow["id"])
    assert "init_object" not in segment and "object_timerange" not in segment
    [segment] = Tams(new).segments(flow["id"], include_object_timerange="true")
    assert segment["init_object"]["object_id"] == init_id and segment["object_timerange"] == "[0:0_10:0)"


# ----------------------------------------------------------------- instances


@v82
def test_uncontrolled_instances_can_be_added_and_removed(tams, flow, backend):
    object_id = allocate_and_put(tams, flow["id"])
    tams.post_segment(flow["id"], "[0:0_10:0)", object_id=object_id)
    added = tams.client.post(f"/objects/{object_id}/instances", json={"url": "https://cdn.example/o", "label": "cdn"})
    assert added.status_code == 201, added.text
    urls = get_object(tams.client, object_id, verbose_storage="true")["get_urls"]
    assert [(u["label"], u["controlled"]) for u in urls] == [(backend["label"], True), ("cdn", False)]
    [segment] = tams.segments(flow["id"], accept_get_urls="cdn")
    assert [u["url"] for u in segment["get_urls"]] == ["https://cdn.example/o"]
    assert tams.client.delete(f"/objects/{object_id}/instances", params={"label": "cdn"}).status_code == 204
    assert len(get_object(tams.client, object_id)["get_urls"]) == 1


@v82
def test_instance_requests_that_break_the_rules_are_400(tams, flow, backend):
    tams.post_segment(flow["id"], "[0:0_10:0)", object_id="o", get_urls=[{"url": "https://a.example/o", "label": "a"}])
    path = "/objects/o/instances"
    assert tams.client.post(path, json={"url": "https://b.example/o", "label": backend["label"]}).status_code == 400
    assert tams.client.post(path, json={"url": "https://b.example/o", "label": "a"}).status_code == 400
    assert tams.client.post(path, json={"storage_id": str(uuid.uuid4())}).status_code == 400
    assert tams.client.delete(path, params={"label": "a"}).status_code == 400  # the last instance
    assert tams.client.delete(path).status_code == 400
    assert tams.client.delete(path, params={"label": "a", "storage_id": backend["id"]}).status_code == 400
    assert tams.client.delete(path, params={"label": "nope"}).status_code == 400
    assert get_object(tams.client, "o")["get_urls"][0]["label"] == "a"


@v82
def test_a_copy_needs_a_controlled_instance_and_a_store_without_one(tams, flow, backend):
    """POST instances {storage_id}: 400 (the yaml's only refusal) both when the object has only
    uncontrolled instances (the message says so) and when the store already holds the object."""
    tams.post_segment(flow["id"], "[0:0_10:0)", object_id="o", get_urls=[{"url": "https://a.example/o", "label": "a"}])
    refused = tams.client.post("/objects/o/instances", json={"storage_id": backend["id"]})
    assert refused.status_code == 400
    assert "only uncontrolled instances" in refused.json()["summary"]
    assert [u["label"] for u in get_object(tams.client, "o")["get_urls"]] == ["a"]
    object_id = allocate_and_put(tams, flow["id"])
    tams.post_segment(flow["id"], "[10:0_20:0)", object_id=object_id)
    again = tams.client.post(f"/objects/{object_id}/instances", json={"storage_id": backend["id"]})
    assert again.status_code == 400
    assert "already has an instance" in again.json()["summary"]
    [url] = get_object(tams.client, object_id)["get_urls"]
    assert url["label"] == backend["label"] and tams.client.get(url["url"]).content == CONTENT


@v82
def test_instances_of_an_unregistered_object_are_404(tams, flow):
    [media_object] = tams.allocate(flow["id"], limit=1)
    path = f"/objects/{media_object['object_id']}/instances"
    assert tams.client.post(path, json={"url": "https://a.example/o", "label": "a"}).status_code == 404
    assert tams.client.delete(path, params={"label": "a"}).status_code == 404
    assert tams.client.post("/objects/unknown/instances", json={"url": "https://a", "label": "a"}).status_code == 404


@v82
def test_segment_post_url_labels_must_be_unique(tams, flow):
    urls = [{"url": "https://a.example/1", "label": "a"}, {"url": "https://a.example/2", "label": "a"}]
    body = tams.segment("[0:0_10:0)", get_urls=urls)
    assert tams.client.post(f"/flows/{flow['id']}/segments", json=body).status_code == 400


@v82
def test_segments_list_every_instance_of_their_object(tams, flow):
    tams.post_segment(flow["id"], "[0:0_10:0)", object_id="o", get_urls=[{"url": "https://a.example/o", "label": "a"}])
    other = tams.put_flow()
    tams.post_segment(other["id"], "[0:0_10:0)", object_id="o", get_urls=[{"url": "https://b.example/o", "label": "b"}])
    for f in (flow, other):
        [segment] = tams.segments(f["id"])
        assert [u["label"] for u in segment["get_urls"]] == ["a", "b"]


def test_an_unlabelled_url_posted_under_7_0_gets_a_minted_label_under_8_2(client, flow):
    old, new = cross_clients(client)
    urls = [{"url": "https://a.example/o"}, {"url": "https://b.example/o", "label": "b"}]
    Tams(old).post_segment(flow["id"], "[0:0_10:0)", object_id="o", get_urls=urls)
    [segment] = Tams(old).segments(flow["id"])
    assert [u.get("label") for u in segment["get_urls"]] == [None, "b"]
    [segment] = Tams(new).segments(flow["id"])
    assert [u["label"] for u in segment["get_urls"]] == ["external-1", "b"]
    assert new.delete("/objects/o/instances", params={"label": "external-1"}).status_code == 204
    [segment] = Tams(old).segments(flow["id"])
    assert [u["url"] for u in segment["get_urls"]] == ["https://b.example/o"]


@v82
def test_a_controlled_instance_is_copied_to_another_store(app_template, backend_name):
    if backend_name != "memory":
        pytest.skip("two memory stores: the memory backend only")
    app = fresh_app(app_template)
    stores = [
        MemoryObjectStore(StorageBackendInfo(str(uuid.uuid4()), label, default_storage=default), app.services.signer)
        for label, default in (("first", True), ("second", False))
    ]
    app.backend = MemoryBackend(stores, app.services)
    with TamsClient(app, "8.2") as client:
        tams = Tams(client)
        flow = tams.put_flow()
        object_id = allocate_and_put(tams, flow["id"])
        tams.post_segment(flow["id"], "[0:0_10:0)", object_id=object_id)
        second = stores[1].info.id
        assert client.post(f"/objects/{object_id}/instances", json={"storage_id": second}).status_code == 201
        assert client.post(f"/objects/{object_id}/instances", json={"storage_id": second}).status_code == 400
        [copy] = get_object(client, object_id, accept_storage_ids=second)["get_urls"]
        assert client.get(copy["url"]).content == CONTENT
        first = stores[0].info.id
        assert client.delete(f"/objects/{object_id}/instances", params={"storage_id": first}).status_code == 204
        assert stores[0].read(object_id) is None
        [url] = get_object(client, object_id)["get_urls"]
        assert url["label"] == "second" and client.get(url["url"]).content == CONTENT
        assert client.delete(f"/objects/{object_id}/instances", params={"label": "second"}).status_code == 400


# ----------------------------------------------------------------- put URL kinds


@v82
def test_allocations_say_their_put_urls_are_presigned_by_default(tams, flow):
    [media_object] = tams.allocate(flow["id"], limit=1)
    assert media_object["presigned"] is True


def test_7_0_allocations_do_not_show_presigned(client, flow):
    old, _ = cross_clients(client)
    [media_object] = Tams(old).allocate(flow["id"], limit=1)
    assert "presigned" not in media_object


@v82
def test_plain_put_urls_take_api_credentials_instead_of_a_signature(tams, flow):
    [media_object] = tams.allocate(flow["id"], limit=1, presigned=False)
    assert media_object["presigned"] is False
    put_url = media_object["put_url"]
    if urlsplit(put_url["url"]).hostname not in (None, "testserver"):
        # An S3 store (vast): its own unsigned object URL, for S3 credentials (test_s3_plain_urls_...).
        assert urlsplit(put_url["url"]).query == "" and put_url["url"].endswith(media_object["object_id"])
        return
    assert "signature=" not in put_url["url"]
    headers = {"content-type": put_url["content-type"]}
    with tams.client.unchecked():
        anonymous = tams.client.put(put_url["url"], content=CONTENT, headers={**headers, "Authorization": ""})
    assert anonymous.status_code == 401
    assert tams.client.put(put_url["url"], content=CONTENT, headers=headers).status_code in (200, 201, 204)
    tams.post_segment(flow["id"], "[0:0_10:0)", object_id=media_object["object_id"])
    [url] = get_object(tams.client, media_object["object_id"])["get_urls"]
    assert tams.client.get(url["url"], headers={"Authorization": ""}).content == CONTENT


# ----------------------------------------------------------------- controlled copies between S3 and local stores


@pytest.fixture(scope="module")
def moto():
    pytest.importorskip("moto.server")
    from backends.s3store import MotoServer

    with MotoServer() as server:
        yield server


def _s3(moto, bucket: str, **fields) -> dict:
    return {
        "label": bucket,
        "bucket": bucket,
        "endpoint_url": moto.endpoint_url,
        "access_key": "test",
        "secret_key": "test",
        "create_bucket": True,
        **fields,
    }


@v82
def test_a_controlled_instance_is_copied_from_s3_to_s3(moto, client, backend_name):
    if backend_name != "local":
        pytest.skip("the local backend configured with two S3 stores")
    suffix = uuid.uuid4().hex[:8]
    storage = [_s3(moto, f"first-{suffix}", default=True), _s3(moto, f"second-{suffix}")]
    app = create_app(app_settings(backend="local", backend_options={"temporary": True, "storage": storage}))
    try:
        with TamsClient(app, "8.2") as client:
            tams = Tams(client)
            first, second = client.get("/service/storage-backends").json()
            flow = tams.put_flow()
            [media_object] = tams.allocate(flow["id"], limit=1)
            put_url = media_object["put_url"]
            assert httpx.put(
                put_url["url"], content=CONTENT, headers={"content-type": put_url["content-type"]}
            ).is_success
            object_id = media_object["object_id"]
            tams.post_segment(flow["id"], "[0:0_10:0)", object_id=object_id)
            assert client.post(f"/objects/{object_id}/instances", json={"storage_id": second["id"]}).status_code == 201
            urls = get_object(client, object_id, verbose_storage="true")["get_urls"]
            assert [u["storage_id"] for u in urls] == [first["id"], second["id"]]
            assert httpx.get(urls[1]["url"]).content == CONTENT
            assert (
                client.delete(f"/objects/{object_id}/instances", params={"storage_id": first["id"]}).status_code == 204
            )
            [url] = get_object(client, object_id)["get_urls"]
            assert url["label"] == second["label"] and httpx.get(url["url"]).content == CONTENT
            assert httpx.get(urls[0]["url"]).status_code == 404  # the first copy's bytes are gone
    finally:
        app.backend.close()


def test_copy_object_moves_bytes_from_local_disk_to_s3(moto, tmp_path):
    from backends.localstore import LocalObjectStore
    from backends.objectstore import copy_object
    from backends.s3store import S3Config, S3ObjectStore, storage_info

    class Signer:
        def sign(self, method: str, storage_id: str, object_id: str) -> str:
            return f"http://media/{storage_id}/{object_id}"

    disk = LocalObjectStore(StorageBackendInfo(str(uuid.uuid4()), "disk"), Signer(), tmp_path)
    disk.write("o", CONTENT, "video/mp2t")
    config = S3Config(**_s3(moto, f"copy-{uuid.uuid4().hex[:8]}"))
    bucket = S3ObjectStore(storage_info(config, str(uuid.uuid4())), config)
    bucket.check()
    copy_object(disk, bucket, "o")
    assert bucket.fetch("o") == (CONTENT, "video/mp2t")
    copy_object(bucket, disk, "o")
    assert disk.read("o") == (CONTENT, "video/mp2t")


def s3_signed(method: str, url: str, body: bytes = b"", **headers: str) -> dict[str, str]:
    """Headers of a request signed with S3 credentials (the moto stores' test keys), as a client
    holding its own S3 credentials signs a request to a plain S3 URL."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    S3SigV4Auth(Credentials("test", "test"), "s3", "us-east-1").add_auth(request)
    return dict(request.headers)


@v82
def test_s3_plain_urls_are_the_objects_own_unsigned_urls(moto, client, backend_name):
    """``presigned: false`` put URLs and ``presigned=false`` get_urls of an S3 store: the object's
    own S3 URL, which the client signs with S3 credentials of its own; the default stays presigned."""
    if backend_name != "local":
        pytest.skip("the local backend configured with an S3 store")
    bucket = f"plain-{uuid.uuid4().hex[:8]}"
    storage = [_s3(moto, bucket, default=True)]
    app = create_app(app_settings(backend="local", backend_options={"temporary": True, "storage": storage}))
    try:
        with TamsClient(app, "8.2") as client:
            tams = Tams(client)
            flow = tams.put_flow()
            [media_object] = tams.allocate(flow["id"], limit=1, presigned=False)
            object_id, put_url = media_object["object_id"], media_object["put_url"]
            assert media_object["presigned"] is False
            parts = urlsplit(put_url["url"])
            assert parts.query == "" and parts.path.startswith(f"/{bucket}/") and parts.path.endswith(object_id)
            headers = s3_signed("PUT", put_url["url"], CONTENT, **{"Content-Type": put_url["content-type"]})
            assert httpx.put(put_url["url"], content=CONTENT, headers=headers).is_success
            tams.post_segment(flow["id"], "[0:0_10:0)", object_id=object_id)
            [default] = get_object(client, object_id)["get_urls"]
            assert default["presigned"] is True and "X-Amz-Signature" in default["url"]
            [plain] = get_object(client, object_id, presigned="false")["get_urls"]
            assert plain == {"url": put_url["url"], "presigned": False, "label": bucket}
            assert httpx.get(plain["url"], headers=s3_signed("GET", plain["url"])).content == CONTENT
            [segment] = tams.segments(flow["id"], presigned="false")
            assert segment["get_urls"] == [plain]
    finally:
        app.backend.close()
