"""Media storage end to end: allocate, upload, register, read back; get_urls filters; objects."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from conftest import Tams, TamsClient, app_settings, new_id, next_link

from tams_server.app import create_app

CONTENT = b"\x47\x40\x00\x10" + bytes(range(256)) * 4
VERBOSE_FIELDS = {"url", "presigned", "label", "storage_id", "controlled", "store_type", "provider", "store_product"}


@pytest.fixture
def backend(client) -> dict:
    [backend] = client.get("/service/storage-backends").json()
    return backend


@pytest.fixture
def flow(tams):
    return tams.put_flow()


def upload(tams, flow_id: str, content: bytes = CONTENT) -> str:
    """Allocate one object, PUT the bytes to its put_url, register a segment; returns the object id."""
    [media_object] = tams.allocate(flow_id, limit=1)
    put_url = media_object["put_url"]
    response = tams.client.put(put_url["url"], content=content, headers={"content-type": put_url["content-type"]})
    assert response.status_code in (200, 201, 204), response.text
    start = len(tams.segments(flow_id)) * 10
    tams.post_segment(flow_id, f"[{start}:0_{start + 10}:0)", object_id=media_object["object_id"])
    return media_object["object_id"]


def get_urls(tams, flow_id: str, **params) -> list[dict]:
    [segment] = tams.segments(flow_id, **params)
    return segment.get("get_urls")


def served_here(url: str) -> bool:
    """Whether this server serves the URL (its own media), rather than an S3 store's presigned URL:
    error bodies and the 416 Content-Range are ours only there (S3 answers in its own way)."""
    return urlsplit(url).hostname in (None, "testserver")


def tampered(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query[name] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


# ----------------------------------------------------------------- allocation


def test_allocation_without_a_body_gives_the_default_number_of_objects(tams, flow):
    response = tams.client.post(f"/flows/{flow['id']}/storage", json={})
    assert response.status_code == 201
    objects = response.json()["media_objects"]
    assert len(objects) >= 1
    assert len({o["object_id"] for o in objects}) == len(objects)


def test_allocation_with_no_request_body_at_all_gives_the_default_number_of_objects(tams, flow):
    response = tams.client.post(f"/flows/{flow['id']}/storage")
    assert response.status_code == 201
    assert len(response.json()["media_objects"]) >= 1


@pytest.mark.parametrize("limit", [1, 3])
def test_allocation_with_a_limit_gives_that_many_objects(tams, flow, limit):
    objects = tams.allocate(flow["id"], limit=limit)
    assert len(objects) == limit
    for media_object in objects:
        assert media_object["put_url"]["url"].startswith("http")
        assert media_object["put_url"]["content-type"] == flow["container"]


def test_allocation_with_object_ids_uses_them(tams, flow, backend):
    objects = tams.allocate(flow["id"], object_ids=["chosen-1", "chosen-2"], storage_id=backend["id"])
    assert [o["object_id"] for o in objects] == ["chosen-1", "chosen-2"]


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 1, "object_ids": ["both"]},
        {"storage_id": "8f1c1e2e-9d5a-4c43-a8e8-9b0c2c6f3d11"},
        {"storage_id": "not-a-uuid"},
        {"limit": 0},
        {"limit": "two"},
        {"object_ids": "one"},
        {"object_ids": ["twice", "twice"]},
        # Ids whose media URL could never be used, or that would break headers and logs.
        {"object_ids": ["what?"]},
        {"object_ids": ["a#b"]},
        {"object_ids": ["back\\slash"]},
        {"object_ids": ["line\r\nbreak"]},
        {"object_ids": [""]},
        # One bound for both ways of asking: at most the maximum number of objects per request.
        {"object_ids": [f"many-{i}" for i in range(1001)]},
    ],
)
def test_an_invalid_allocation_request_is_400(tams, flow, body):
    assert tams.client.post(f"/flows/{flow['id']}/storage", json=body).status_code == 400


def test_a_limit_above_the_maximum_gets_the_maximum(tams, flow):
    """The spec lets the server choose its maximum, not refuse: a client wanting more asks again."""
    assert len(tams.allocate(flow["id"], limit=5000)) == 1000


def test_allocating_an_existing_object_id_is_400(tams, flow):
    [existing] = tams.allocate(flow["id"], limit=1)
    response = tams.client.post(f"/flows/{flow['id']}/storage", json={"object_ids": ["fresh", existing["object_id"]]})
    assert response.status_code == 400
    assert tams.client.get("/objects/fresh").status_code == 404


def test_allocating_an_id_of_a_registered_external_object_is_400(tams, flow):
    tams.post_segment(flow["id"], "[0:0_10:0)", object_id="external")
    assert tams.client.post(f"/flows/{flow['id']}/storage", json={"object_ids": ["external"]}).status_code == 400


def test_allocation_for_a_flow_without_container_is_400(tams):
    flow = tams.put_flow(container=None)
    assert tams.client.post(f"/flows/{flow['id']}/storage", json={}).status_code == 400


def test_allocation_for_an_unknown_flow_is_404(client):
    assert client.post(f"/flows/{new_id()}/storage", json={}).status_code == 404


# ----------------------------------------------------------------- upload and read back


def test_uploaded_media_can_be_read_back_from_the_segment_get_url(tams, flow):
    upload(tams, flow["id"])
    [url] = get_urls(tams, flow["id"])
    response = tams.client.get(url["url"])
    assert response.status_code == 200
    assert response.content == CONTENT
    assert response.headers["content-type"] == flow["container"]


def test_a_range_request_gets_206_with_content_range(tams, flow):
    upload(tams, flow["id"])
    [url] = get_urls(tams, flow["id"])
    response = tams.client.get(url["url"], headers={"Range": "bytes=2-5"})
    assert response.status_code == 206
    assert response.content == CONTENT[2:6]
    assert response.headers["content-range"] == f"bytes 2-5/{len(CONTENT)}"


def test_an_unsatisfiable_range_is_416(tams, flow):
    upload(tams, flow["id"])
    [url] = get_urls(tams, flow["id"])
    response = tams.client.get(url["url"], headers={"Range": f"bytes={len(CONTENT)}-"})
    assert response.status_code == 416
    if served_here(url["url"]):
        assert response.headers["content-range"] == f"bytes */{len(CONTENT)}"


@pytest.mark.parametrize("name", ["signature", "expires"])
def test_a_tampered_media_url_is_403(tams, flow, name):
    upload(tams, flow["id"])
    [url] = get_urls(tams, flow["id"])
    value = "0" * 64 if name == "signature" else "9999999999"
    response = tams.client.get(tampered(url["url"], name, value))
    assert response.status_code == 403
    if served_here(url["url"]):
        assert response.json()["summary"]


def test_a_download_url_cannot_be_used_to_upload(tams, flow):
    upload(tams, flow["id"])
    [url] = get_urls(tams, flow["id"])
    assert tams.client.put(url["url"], content=b"overwrite").status_code == 403
    assert tams.client.get(url["url"]).content == CONTENT


def test_an_upload_url_cannot_be_used_to_download(tams, flow):
    [media_object] = tams.allocate(flow["id"], limit=1)
    put_url = media_object["put_url"]["url"]
    tams.client.put(put_url, content=CONTENT)
    assert tams.client.get(put_url).status_code == 403


def test_an_expired_media_url_is_403(spec_path, api_version):
    settings = app_settings(specs={api_version: str(spec_path)}, media_url_lifetime=-1)
    client = TamsClient(create_app(settings), api_version)
    tams = Tams(client)
    flow = tams.put_flow()
    [media_object] = tams.allocate(flow["id"], limit=1)
    response = client.put(media_object["put_url"]["url"], content=CONTENT)
    assert response.status_code == 403
    assert "expired" in response.json()["summary"]


def test_urls_handed_out_use_the_configured_public_url(spec_path, api_version):
    public = "https://tams.example.com/api"
    settings = app_settings(specs={api_version: str(spec_path)}, public_url=public + "/")
    client = TamsClient(create_app(settings), api_version)
    tams = Tams(client)
    flow = tams.put_flow()
    tams.put_flow()
    [media_object] = tams.allocate(flow["id"], limit=1)
    assert media_object["put_url"]["url"].startswith(f"{public}/_media/")
    tams.post_segment(flow["id"], "[0:0_10:0)", object_id=media_object["object_id"])
    [url] = get_urls(tams, flow["id"])
    assert url["url"].startswith(f"{public}/_media/")
    assert next_link(client.get("/flows", params={"limit": 1})).startswith(f"{public}{client.base_path}/flows?")


# ----------------------------------------------------------------- get_urls filters


def test_get_urls_are_generated_for_controlled_storage(tams, flow, backend):
    upload(tams, flow["id"])
    [url] = get_urls(tams, flow["id"])
    assert set(url) == {"url", "presigned", "label"}
    assert url["label"] == backend["label"]
    assert url["presigned"] is True


def test_an_empty_accept_get_urls_leaves_out_get_urls(tams, flow):
    upload(tams, flow["id"])
    [segment] = tams.segments(flow["id"], accept_get_urls="")
    assert "get_urls" not in segment or segment["get_urls"] == []


@pytest.mark.parametrize(("accept", "expected"), [("{label}", 1), ("other", 0), ("other,{label}", 1)])
def test_accept_get_urls_filters_by_label(tams, flow, backend, accept, expected):
    upload(tams, flow["id"])
    assert len(get_urls(tams, flow["id"], accept_get_urls=accept.format(label=backend["label"]))) == expected


@pytest.mark.parametrize(("accept", "expected"), [("{backend}", 1), ("{other}", 0), ("{other},{backend}", 1), ("", 1)])
def test_accept_storage_ids_filters_by_storage_backend(tams, flow, backend, accept, expected):
    upload(tams, flow["id"])
    accept_storage_ids = accept.format(backend=backend["id"], other=new_id())
    assert len(get_urls(tams, flow["id"], accept_storage_ids=accept_storage_ids)) == expected


@pytest.mark.parametrize(("presigned", "controlled", "external"), [("true", 1, 0), ("false", 1, 1)])
def test_presigned_filters_get_urls(tams, flow, presigned, controlled, external):
    """``presigned=false`` asks every store for its plain URL (media_objects.controlled_url)."""
    object_id = upload(tams, flow["id"])
    urls = [{"url": "https://cdn.example.com/ext", "label": "cdn"}]
    tams.post_segment(flow["id"], "[100:0_110:0)", object_id="ext", get_urls=urls)
    segments = {s["object_id"]: s for s in tams.segments(flow["id"], presigned=presigned)}
    assert len(segments[object_id]["get_urls"]) == controlled
    assert len(segments["ext"]["get_urls"]) == external
    shown = segments[object_id]["get_urls"] + segments["ext"]["get_urls"]
    assert {u["presigned"] for u in shown} == {presigned == "true"}


def test_verbose_storage_describes_the_storage_backend(tams, flow, backend):
    upload(tams, flow["id"])
    [url] = get_urls(tams, flow["id"], verbose_storage="true")
    assert set(url) >= VERBOSE_FIELDS
    assert url["storage_id"] == backend["id"]
    assert url["controlled"] is True
    assert url["store_type"] == "http_object_store"
    assert (url["provider"], url["store_product"]) == (backend["provider"], backend["store_product"])


@pytest.mark.versions("7.0")  # 8.x requires a label (tests/test_api_objects.py: minted labels)
def test_uncontrolled_get_urls_come_back_as_posted(tams, flow):
    external = [{"url": "https://cdn.example.com/a.ts", "label": "cdn"}, {"url": "https://mirror.example.com/a.ts"}]
    tams.post_segment(flow["id"], "[0:0_10:0)", object_id="bucket/a.ts", get_urls=external)
    urls = get_urls(tams, flow["id"], verbose_storage="true")
    assert [(u["url"], u.get("label"), u["controlled"]) for u in urls] == [
        ("https://cdn.example.com/a.ts", "cdn", False),
        ("https://mirror.example.com/a.ts", None, False),
    ]
    assert all("storage_id" not in u for u in urls)
    assert [u["url"] for u in get_urls(tams, flow["id"], accept_get_urls="cdn")] == ["https://cdn.example.com/a.ts"]
    assert get_urls(tams, flow["id"], accept_storage_ids=new_id()) == []


def test_an_uncontrolled_get_url_with_a_storage_backend_label_is_400(tams, flow, backend):
    segment = tams.segment("[0:0_10:0)", get_urls=[{"url": "https://cdn.example.com/x", "label": backend["label"]}])
    assert tams.client.post(f"/flows/{flow['id']}/segments", json=segment).status_code == 400
    assert tams.segments(flow["id"]) == []


# ----------------------------------------------------------------- objects


def test_an_object_allocated_for_one_flow_cannot_be_registered_by_another_first(tams, flow):
    other = tams.put_flow()
    [media_object] = tams.allocate(flow["id"], limit=1)
    segment = tams.segment("[0:0_10:0)", object_id=media_object["object_id"])
    assert tams.client.post(f"/flows/{other['id']}/segments", json=segment).status_code == 400
    assert tams.segments(other["id"]) == []
    assert tams.client.post(f"/flows/{flow['id']}/segments", json=segment).status_code == 201
    assert tams.client.post(f"/flows/{other['id']}/segments", json=segment).status_code == 201
    assert [s["object_id"] for s in tams.segments(other["id"])] == [media_object["object_id"]]


def test_objects_allocated_by_a_deleted_flow_become_free_to_register(tams, flow):
    doomed = tams.put_flow()
    [media_object] = tams.allocate(doomed["id"], limit=1)
    assert tams.client.delete(f"/flows/{doomed['id']}").status_code == 204
    segment = tams.segment("[0:0_10:0)", object_id=media_object["object_id"])
    assert tams.client.post(f"/flows/{flow['id']}/segments", json=segment).status_code == 201
    assert tams.client.get(f"/objects/{media_object['object_id']}").json()["referenced_by_flows"] == [flow["id"]]


def test_a_reused_object_serves_the_same_bytes_from_both_flows(tams, flow):
    other = tams.put_flow()
    object_id = upload(tams, flow["id"])
    tams.post_segment(other["id"], "[100:0_110:0)", object_id=object_id, ts_offset="100:0")
    [url] = get_urls(tams, other["id"])
    assert tams.client.get(url["url"]).content == CONTENT


def test_an_object_lists_the_flows_that_reference_it(tams, flow):
    other = tams.put_flow()
    object_id = upload(tams, flow["id"])
    tams.post_segment(other["id"], "[0:0_10:0)", object_id=object_id)
    response = tams.client.get(f"/objects/{object_id}")
    assert response.status_code == 200
    shown = {k: v for k, v in response.json().items() if k in ("id", "referenced_by_flows", "first_referenced_by_flow")}
    assert shown == {
        "id": object_id,
        "referenced_by_flows": sorted([flow["id"], other["id"]]),
        "first_referenced_by_flow": flow["id"],
    }


def test_deleting_a_flows_segments_drops_it_from_the_object_references(tams, flow):
    other = tams.put_flow()
    object_id = upload(tams, flow["id"])
    tams.post_segment(other["id"], "[0:0_10:0)", object_id=object_id)
    tams.client.delete(f"/flows/{flow['id']}/segments")
    body = tams.client.get(f"/objects/{object_id}").json()
    assert body["referenced_by_flows"] == [other["id"]]
    assert body.get("first_referenced_by_flow") in (None, other["id"])
    tams.client.delete(f"/flows/{other['id']}")
    assert tams.client.get(f"/objects/{object_id}").json()["referenced_by_flows"] == []


def test_an_object_used_twice_in_one_flow_is_referenced_until_both_segments_go(tams, flow):
    tams.post_segment(flow["id"], "[0:0_10:0)", object_id="twice")
    tams.post_segment(flow["id"], "[10:0_20:0)", object_id="twice")
    tams.client.delete(f"/flows/{flow['id']}/segments", params={"timerange": "[0:0_10:0)"})
    assert tams.client.get("/objects/twice").json()["referenced_by_flows"] == [flow["id"]]


def test_an_unknown_object_is_404(client):
    for method in ("GET", "HEAD"):
        assert client.request(method, "/objects/never-heard-of-it").status_code == 404


@pytest.mark.parametrize("path", ["/objects/bucket/abc", "/objects/bucket%2Fabc"])
def test_object_ids_containing_a_slash_work(tams, flow, path):
    urls = [{"url": "https://b.example.com/abc", "label": "b"}]
    tams.post_segment(flow["id"], "[0:0_10:0)", object_id="bucket/abc", get_urls=urls)
    response = tams.client.get(path)
    assert response.status_code == 200
    assert response.json()["id"] == "bucket/abc"
    assert response.json()["referenced_by_flows"] == [flow["id"]]
    assert tams.client.head(path).status_code == 200
    assert tams.timeranges(flow["id"], object_id="bucket/abc") == ["[0:0_10:0)"]


def test_an_allocated_object_with_a_slash_can_be_uploaded_and_read(tams, flow):
    [media_object] = tams.allocate(flow["id"], object_ids=["bucket/clip.ts"])
    put_url = media_object["put_url"]
    tams.client.put(put_url["url"], content=CONTENT, headers={"content-type": put_url["content-type"]})
    tams.post_segment(flow["id"], "[0:0_10:0)", object_id="bucket/clip.ts")
    [url] = get_urls(tams, flow["id"])
    assert tams.client.get(url["url"]).content == CONTENT
    assert tams.client.get("/objects/bucket/clip.ts").json()["referenced_by_flows"] == [flow["id"]]
