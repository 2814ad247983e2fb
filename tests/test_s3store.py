"""The S3 object store against moto's S3 emulator, over real HTTP at presigned URLs.

One emulator serves the whole module (starting one takes about a second); tests use fresh object
ids, and buckets of their own when they need them.
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("boto3")
pytest.importorskip("moto.server")
httpx = pytest.importorskip("httpx")

from botocore.exceptions import ClientError  # noqa: E402

from backends.errors import AlreadyExists  # noqa: E402
from backends.s3store import (  # noqa: E402 (after the skips: boto3 and moto are optional)
    MotoServer,
    S3Config,
    S3ObjectStore,
    S3StoreError,
    object_key,
    parse_storage,
    storage_info,
)

NASTY_IDS = [
    "",
    ".",
    "..",
    "../../etc/passwd",
    "/leading",
    "trailing/",
    "a//b",
    "/",
    "with space",
    "tab\tand\nnewline",
    "nul\x00byte",
    "ünïcødé-ø-日本",
    "emoji-🎞",
    "lone-surrogate-\ud800",
    "percent%2Fencoded",
    "query?x=1&y=2#frag",
    "x" * 4096,
    "y" * 201,
    "o/looks-like-a-key",
]

StoreFactory = Callable[..., S3ObjectStore]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def make_store(moto: MotoServer) -> StoreFactory:
    def make(bucket: str = "tams-media", check: bool = True, **fields: Any) -> S3ObjectStore:
        values: dict[str, Any] = {
            "label": bucket,
            "bucket": bucket,
            "endpoint_url": moto.endpoint_url,
            "access_key": "test",
            "secret_key": "test",
            "create_bucket": True,
            "max_attempts": 2,
            **fields,
        }
        config = S3Config(**values)
        store = S3ObjectStore(storage_info(config, str(uuid.uuid4())), config)
        if check:
            store.check()
        return store

    return make


@pytest.fixture(scope="module")
def store(make_store: StoreFactory) -> S3ObjectStore:
    return make_store()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def upload(http: httpx.Client, store: S3ObjectStore, object_id: str, data: bytes, content_type: str) -> int:
    request = store.upload_url(object_id, content_type)
    return http.put(request["url"], content=data, headers={"Content-Type": request["content-type"]}).status_code


def new_id() -> str:
    return str(uuid.uuid4())


# --- presigned URLs over HTTP ----------------------------------------------------------------------


def test_upload_then_download_gives_the_bytes_and_content_type(store: S3ObjectStore, http: httpx.Client) -> None:
    object_id, data = new_id(), bytes(range(256)) * 40
    request = store.upload_url(object_id, "video/mp2t")
    assert request["content-type"] == "video/mp2t"
    assert upload(http, store, object_id, data, "video/mp2t") == 200

    url, presigned = store.download_url(object_id)
    assert presigned is True
    response = http.get(url)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "video/mp2t"
    assert store.stat(object_id) == len(data)


def test_presigned_urls_carry_no_checksum_parameters(store: S3ObjectStore) -> None:
    # S3-compatible stores may refuse botocore's newer checksum parameters; none are signed in.
    put_url = store.upload_url(new_id(), "video/mp2t")["url"]
    assert "X-Amz-SignedHeaders=content-type%3Bhost" in put_url
    for url in (put_url, store.download_url(new_id())[0]):
        assert "checksum" not in url.lower()
        assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url


def test_range_request_gets_the_slice(store: S3ObjectStore, http: httpx.Client) -> None:
    object_id = new_id()
    assert upload(http, store, object_id, b"0123456789", "application/octet-stream") == 200
    response = http.get(store.download_url(object_id)[0], headers={"Range": "bytes=2-5"})
    assert response.status_code == 206
    assert response.content == b"2345"
    assert response.headers["content-range"] == "bytes 2-5/10"


def test_expired_urls_are_refused(make_store: StoreFactory, http: httpx.Client) -> None:
    store = make_store(url_lifetime=1)
    object_id = new_id()
    upload_request = store.upload_url(object_id, "video/mp2t")
    download = store.download_url(object_id)[0]
    time.sleep(2.1)  # X-Amz-Date has whole seconds: 2 s later a 1 s URL has certainly expired
    put = http.put(upload_request["url"], content=b"late", headers={"Content-Type": "video/mp2t"})
    assert put.status_code == 403
    assert b"Request has expired" in put.content
    assert store.stat(object_id) is None
    assert http.get(download).status_code == 403


@pytest.mark.parametrize("headers", [{"Content-Type": "text/plain"}, {}], ids=["other-type", "no-type"])
def test_upload_with_another_content_type_than_signed_is_refused(
    store: S3ObjectStore, http: httpx.Client, headers: dict[str, str]
) -> None:
    object_id = new_id()
    url = store.upload_url(object_id, "video/mp2t")["url"]
    response = http.put(url, content=b"data", headers=headers)
    assert response.status_code == 403
    assert b"SignatureDoesNotMatch" in response.content
    assert store.stat(object_id) is None


def test_tampered_urls_are_refused(store: S3ObjectStore, http: httpx.Client) -> None:
    object_id = new_id()
    assert upload(http, store, object_id, b"data", "video/mp2t") == 200
    url = store.download_url(object_id)[0]
    other = store.download_url(new_id())[0]
    signature = re.search(r"X-Amz-Signature=([0-9a-f]+)", other)
    assert signature is not None
    # Another object's signature, a longer lifetime: neither holds for this URL.
    assert http.get(re.sub(r"X-Amz-Signature=[0-9a-f]+", f"X-Amz-Signature={signature[1]}", url)).status_code == 403
    assert http.get(url.replace("X-Amz-Expires=3600", "X-Amz-Expires=7200")).status_code == 403
    assert http.get(url).status_code == 200


def test_a_wrong_secret_is_refused(make_store: StoreFactory, http: httpx.Client) -> None:
    honest, forger = make_store(), make_store(secret_key="not-the-secret", check=False)
    object_id = new_id()
    assert upload(http, honest, object_id, b"data", "video/mp2t") == 200
    assert http.get(forger.download_url(object_id)[0]).status_code == 403
    assert http.get(honest.download_url(object_id)[0]).status_code == 200


def test_delete_removes_and_deleting_nothing_is_fine(store: S3ObjectStore, http: httpx.Client) -> None:
    object_id = new_id()
    assert upload(http, store, object_id, b"data", "video/mp2t") == 200
    store.delete(object_id)
    assert http.get(store.download_url(object_id)[0]).status_code == 404
    assert store.stat(object_id) is None
    store.delete(object_id)
    store.delete(new_id())


def test_delete_in_a_missing_bucket_is_an_error(make_store: StoreFactory) -> None:
    store = make_store(bucket="never-created", create_bucket=False, check=False)
    with pytest.raises(S3StoreError, match="never-created"):
        store.delete(new_id())


def test_public_endpoint_is_the_host_of_presigned_urls(
    moto: MotoServer, make_store: StoreFactory, http: httpx.Client
) -> None:
    public = moto.endpoint_url.replace("127.0.0.1", "localhost")
    store = make_store(public_endpoint_url=public)
    object_id = new_id()
    request = store.upload_url(object_id, "video/mp2t")
    assert request["url"].startswith(public + "/tams-media/tams/o/")
    assert http.put(request["url"], content=b"via localhost", headers={"Content-Type": "video/mp2t"}).status_code == 200
    assert http.get(store.download_url(object_id)[0]).content == b"via localhost"


def test_two_stores_in_two_buckets(make_store: StoreFactory, http: httpx.Client) -> None:
    first, second = make_store(bucket="tams-first"), make_store(bucket="tams-second", prefix="")
    object_id = new_id()
    assert upload(http, first, object_id, b"first", "video/mp2t") == 200
    assert upload(http, second, object_id, b"second", "audio/aac") == 200
    assert "/tams-first/tams/o/" in first.download_url(object_id)[0]
    assert "/tams-second/o/" in second.download_url(object_id)[0]
    assert http.get(first.download_url(object_id)[0]).content == b"first"
    assert http.get(second.download_url(object_id)[0]).content == b"second"
    first.delete(object_id)
    assert second.stat(object_id) == len(b"second")


@pytest.mark.parametrize("object_id", NASTY_IDS, ids=range(len(NASTY_IDS)))
def test_nasty_ids_round_trip(store: S3ObjectStore, http: httpx.Client, object_id: str) -> None:
    data = f"bytes of {object_id!r}".encode("utf-8", "surrogatepass")
    assert upload(http, store, object_id, data, "video/mp2t") == 200
    assert http.get(store.download_url(object_id)[0]).content == data
    assert store.stat(object_id) == len(data)
    store.delete(object_id)
    assert store.stat(object_id) is None


# --- write-once server-side writes -------------------------------------------------------------------


def test_server_side_writes_never_replace_other_bytes(store: S3ObjectStore) -> None:
    object_id = new_id()
    store.put(object_id, b"first", "video/mp2t")
    with pytest.raises(AlreadyExists):
        store.put(object_id, b"other", "video/mp2t")
    store.put(object_id, b"first", "video/mp2t")  # the same bytes again (a retried copy): fine
    assert store.fetch(object_id) == (b"first", "video/mp2t")


def test_a_server_side_copy_never_replaces_other_bytes(make_store: StoreFactory, http: httpx.Client) -> None:
    source, target = make_store(bucket="tams-copy-from"), make_store(bucket="tams-copy-to")
    object_id, planted = new_id(), new_id()
    assert upload(http, source, object_id, b"segment", "video/mp2t") == 200
    assert upload(http, source, planted, b"segment", "video/mp2t") == 200
    assert upload(http, target, planted, b"planted", "video/mp2t") == 200
    assert target.copy_from(source, object_id) is True
    assert target.copy_from(source, object_id) is True  # again: the same bytes, fine
    with pytest.raises(AlreadyExists):
        target.copy_from(source, planted)
    assert target.fetch(planted) == (b"planted", "video/mp2t")


class _NoConditions:
    """A client of an endpoint that refuses If-None-Match, as some S3-compatible stores do."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def put_object(self, **params: Any) -> Any:
        if "IfNoneMatch" in params:
            error = {"Error": {"Code": "NotImplemented", "Message": "A header you provided is not implemented"}}
            raise ClientError(error, "PutObject")
        return self._client.put_object(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_an_endpoint_without_conditional_writes_still_takes_writes(
    make_store: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store()
    store._client = _NoConditions(store._client)
    object_id = new_id()
    store.put(object_id, b"bytes", "video/mp2t")
    assert store.fetch(object_id) == (b"bytes", "video/mp2t")
    assert "refuses conditional writes" in caplog.text
    store.put(new_id(), b"more", None)  # no second attempt with the header


# --- keys ----------------------------------------------------------------------------------------


def check_key(key: str) -> None:
    assert not key.startswith("/")
    assert not key.endswith("/")
    assert "//" not in key
    assert len(key.encode("utf-8")) <= 1024
    assert key.count("/") <= 200
    assert re.fullmatch(r"[A-Za-z0-9._/-]+", key)  # URL-safe: no client re-encodes it


@settings(max_examples=300, deadline=None)
@given(ids=st.lists(st.text(max_size=300), unique=True, max_size=20), prefix=st.sampled_from(["tams/", "", "a/b/"]))
def test_every_id_has_a_valid_distinct_key(ids: list[str], prefix: str) -> None:
    keys = [object_key(prefix, object_id) for object_id in ids]
    for key in keys:
        check_key(key)
        assert key.startswith(prefix)
    assert len(set(keys)) == len(keys)


@given(object_id=st.from_regex(r"[A-Za-z0-9._-]{1,200}", fullmatch=True).filter(lambda s: s not in (".", "..")))
def test_plain_ids_map_readably(object_id: str) -> None:
    assert object_key("tams/", object_id) == "tams/o/" + object_id


def test_key_examples(store: S3ObjectStore) -> None:
    an_id = "0c6bd6d8-0a36-4c62-9b2f-3f4b2f4a1b9e"
    assert store.key(an_id) == f"tams/o/{an_id}"
    for odd in (".", "..", "", "a/b", "z" * 201):
        assert re.fullmatch(r"tams/h/[0-9a-f]{64}", store.key(odd))
    assert store.key("z" * 200) == "tams/o/" + "z" * 200
    for object_id in NASTY_IDS:
        check_key(store.key(object_id))


@pytest.mark.parametrize(
    ("given_prefix", "normal"),
    [("tams/", "tams/"), ("tams", "tams/"), ("/tams/", "tams/"), ("a//b", "a/b/"), ("", ""), ("/", "")],
)
def test_prefix_is_normalised(given_prefix: str, normal: str) -> None:
    assert S3Config(label="s", bucket="bkt", prefix=given_prefix).prefix == normal


@pytest.mark.parametrize("prefix", ["a/../b", "./x", "with space/", "ü/", "a" * 600])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        S3Config(label="s", bucket="bkt", prefix=prefix)


# --- start-up checks -----------------------------------------------------------------------------


def test_check_fails_clearly_when_the_bucket_is_missing(moto: MotoServer, make_store: StoreFactory) -> None:
    store = make_store(bucket="tams-missing", create_bucket=False, check=False)
    with pytest.raises(RuntimeError, match="tams-missing") as caught:
        store.check()
    assert moto.endpoint_url in str(caught.value)
    assert "create_bucket" in str(caught.value)


def test_check_creates_the_bucket_when_asked(make_store: StoreFactory) -> None:
    store = make_store(bucket="tams-created", check=False)
    store.check()
    store.check()  # already there: fine
    assert store.stat(new_id()) is None


def test_check_fails_clearly_when_the_endpoint_is_unreachable() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    config = S3Config(
        label="gone", bucket="tams-media", endpoint_url=endpoint, access_key="test", secret_key="test", max_attempts=1
    )
    store = S3ObjectStore(storage_info(config, str(uuid.uuid4())), config)
    with pytest.raises(RuntimeError, match=re.escape(endpoint)):
        store.check()


def test_moto_server_refuses_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="in use"):
            MotoServer(port=taken.getsockname()[1])


# --- configuration -------------------------------------------------------------------------------


def test_storage_info_comes_from_the_config() -> None:
    config = S3Config(label="vast", bucket="media", region="vast-1", provider="VAST", store_product="VAST S3")
    info = storage_info(config, "8d8d7d31-27c2-4f73-9d2f-66c0f2c56a3a")
    assert info.to_json() == {
        "id": "8d8d7d31-27c2-4f73-9d2f-66c0f2c56a3a",
        "label": "vast",
        "store_type": "http_object_store",
        "provider": "VAST",
        "store_product": "VAST S3",
        "region": "vast-1",
        "default_storage": False,
    }


def test_the_secret_stays_out_of_repr() -> None:
    config = S3Config(label="s", bucket="bkt", access_key="AKID", secret_key="very-secret")
    assert "very-secret" not in repr(config)
    assert "AKID" in repr(config)


def test_no_s3_options_means_no_stores() -> None:
    assert parse_storage({}) == []
    assert parse_storage({"data_dir": "/tmp/x", "storage": None}) == []


def test_flat_options_make_one_default_store() -> None:
    options = {
        "data_dir": "/elsewhere",  # the backend's own option: not ours
        "s3_bucket": "media",
        "s3_endpoint": "https://vast.example:443",
        "s3_public_endpoint": "https://media.example",
        "s3_access_key": "AKID",
        "s3_secret_key": "secret",
        "s3_region": "vast",
        "s3_addressing_style": "path",
        "s3_prefix": "/tams",
        "s3_verify": "/etc/ssl/vast-ca.pem",
    }
    [config] = parse_storage(options, url_lifetime=600)
    assert config == S3Config(
        label="s3",
        bucket="media",
        endpoint_url="https://vast.example:443",
        public_endpoint_url="https://media.example",
        access_key="AKID",
        secret_key="secret",
        region="vast",
        prefix="tams/",
        verify="/etc/ssl/vast-ca.pem",
        url_lifetime=600,
        default=True,
    )
    assert config.presign_endpoint_url == "https://media.example"


def test_flat_options_take_strings_from_the_environment() -> None:
    [config] = parse_storage(
        {"s3_bucket": "b3t", "s3_verify": "false", "s3_create_bucket": "yes", "s3_max_attempts": "2"}
    )
    assert (config.verify, config.create_bucket, config.max_attempts) == (False, True, 2)


def test_a_storage_list_makes_several_stores() -> None:
    options = {
        "storage": [
            {"label": "aws", "bucket": "tams-aws", "region": "eu-west-2", "url_lifetime": 60},
            {
                "label": "vast",
                "bucket": "tams-vast",
                "endpoint": "http://10.0.0.1",
                "access_key_id": "AKID",
                "secret_access_key": "secret",
                "default": True,
                "storage_id": "8D8D7D31-27C2-4F73-9D2F-66C0F2C56A3A",
            },
        ]
    }
    aws, vast = parse_storage(options, url_lifetime=900)
    assert (aws.label, aws.endpoint_url, aws.default, aws.url_lifetime, aws.storage_id) == (
        "aws",
        None,
        False,
        60,
        None,
    )
    assert (vast.endpoint_url, vast.access_key, vast.secret_key, vast.default) == (
        "http://10.0.0.1",
        "AKID",
        "secret",
        True,
    )
    assert vast.url_lifetime == 900
    assert vast.storage_id == "8d8d7d31-27c2-4f73-9d2f-66c0f2c56a3a"


def test_the_first_listed_store_is_the_default_when_none_is() -> None:
    first, second = parse_storage({"storage": [{"label": "a", "bucket": "bkt-a"}, {"label": "b", "bucket": "bkt-b"}]})
    assert first.default and not second.default


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"s3_bukket": "x"}, "unknown option 's3_bukket'"),
        ({"s3_endpoint": "http://x"}, "bucket is missing.*'s3_bucket'"),
        ({"storage": [{"label": "a", "bucket": "bkt", "colour": "red"}]}, r"storage\[0\]: unknown option 'colour'"),
        ({"storage": [{"bucket": "bkt"}]}, r"storage\[0\]: the S3 label is missing"),
        ({"storage": [{"label": "a"}]}, r"storage\[0\]: the S3 bucket is missing \(option 'bucket'\)"),
        (
            {"storage": [{"label": "a", "bucket": "b1t"}, {"label": "a", "bucket": "b2t"}]},
            "two S3 stores have the label 'a'",
        ),
        (
            {
                "storage": [
                    {"label": "a", "bucket": "b1t", "default": True},
                    {"label": "b", "bucket": "b2t", "default": True},
                ]
            },
            "only one S3 store may be 'default: true'",
        ),
        ({"storage": {"label": "a", "bucket": "bkt"}}, "'storage' must be a list"),
        ({"storage": ["bkt"]}, r"storage\[0\]' must be a mapping"),
        ({"storage": [], "s3_bucket": "bkt"}, "not both"),
        ({"s3_bucket": "bkt", "s3_addressing_style": "sideways"}, "addressing_style"),
        ({"s3_bucket": "bkt", "s3_url_lifetime": 0}, "url_lifetime"),
        ({"s3_bucket": "bkt", "s3_url_lifetime": "soon"}, "'s3_url_lifetime' must be an integer"),
        ({"s3_bucket": "bkt", "s3_max_attempts": True}, "'s3_max_attempts' must be an integer"),
        ({"s3_bucket": "bkt", "s3_create_bucket": "perhaps"}, "'s3_create_bucket' must be true or false"),
        ({"s3_bucket": "bkt", "s3_endpoint": "vast.example:80"}, "endpoint_url.*http"),
        ({"s3_bucket": "bkt", "s3_access_key": "AKID"}, "both 'access_key' and 'secret_key'"),
        ({"s3_bucket": "no/slash"}, "bucket"),
        ({"s3_bucket": "bkt", "s3_storage_id": "not-a-uuid"}, "storage_id"),
        ({"storage": [{"label": "a", "bucket": "bkt", "endpoint": "http://x", "endpoint_url": "http://y"}]}, "repeats"),
    ],
)
def test_bad_options_are_refused_clearly(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_storage(options)
