"""Media bytes in an S3 bucket (AWS, VAST, MinIO, ...), moved by clients at presigned URLs.

Why S3: segment bytes are large and many, and an S3 store lets clients PUT and GET them directly
at presigned URLs, so media never flows through this server. The server only signs URLs (a local
computation, no network call), deletes objects and, at start-up, checks that the bucket is there.

Object keys. An object id is an arbitrary string (it may hold ``/``, ``..``, ``//``, NUL, spaces
or 4 KB of text), while S3-compatible stores restrict keys (VAST: at most 1024 characters and 200
``/``, no leading or trailing ``/``, no ``//``). Ids made only of ``[A-Za-z0-9._-]`` (not ``.`` or
``..``, at most 200 characters; every id this server makes is one) map readably to
``<prefix>o/<id>``; any other id maps to ``<prefix>h/<sha256 of the id>``. The two sub-prefixes
cannot collide, and every key is made of URL-safe characters only, so no client re-encodes it.

Write-once. Media objects are immutable (TAMS segments are), so the server's own writes (``put``,
``copy_from``) are S3 conditional writes (``If-None-Match: *``), which fail when the key exists;
an endpoint that refuses the header gets plain writes (logged once). A presigned PUT URL cannot be
made conditional (S3 does not sign a condition into it), so until it expires (``url_lifetime``)
whoever holds it can replace the object's bytes; a bucket policy or versioning is the remedy there.

Settings follow the VAST notes (``shared/notes/vastdb.md`` section 7): SigV4, path-style
addressing, standard retries, a connection pool shared by threads, and botocore's new default
request checksums turned off (``when_required``), which S3-compatible stores may reject.

Configuration (``backend_options``): a list of stores under ``storage``, or for one store the flat
keys ``s3_bucket``, ``s3_endpoint``, ... (see ``parse_storage``).

``MotoServer`` runs moto's S3 emulator in this process (tests and the ``emulate`` demo mode). Moto
does not check presigned URLs at all (signature, expiry, signed headers), so it is wrapped in a
small SigV4 query-signature check that refuses bad or expired URLs the way S3 does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import hmac
import logging
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit

from backends.errors import AlreadyExists
from backends.objectstore import ObjectStore, StorageBackendInfo

try:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:  # parse_storage and S3Config work without boto3; S3ObjectStore says what to install
    boto3 = None

log = logging.getLogger("tams_server.s3store")

ADDRESSING_STYLES = ("path", "virtual", "auto")
SIGNATURE_VERSIONS = ("s3v4",)
MAX_URL_LIFETIME = 7 * 24 * 3600  # SigV4 presigned URLs are valid for at most 7 days
READABLE_ID_MAX = 200
_READABLE_ID = re.compile(r"[A-Za-z0-9._-]+")
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_PREFIX_MAX = 512  # leaves room for "o/" + 200 characters within S3's 1024-byte key limit
_PREFIX_MAX_SLASHES = 100  # VAST allows 200 "/" in a key; readable and hashed ids add one
# botocore's own client-side rule for bucket names (which S3-compatible stores may relax).
_BUCKET = re.compile(r"[A-Za-z0-9.\-_]{1,255}")
_NOT_FOUND = ("404", "NoSuchKey", "NotFound", "NoSuchBucket")


@dataclass(frozen=True)
class S3Config:
    """One S3 bucket (and key prefix) used as a media store."""

    label: str
    bucket: str
    endpoint_url: str | None = None  # None: AWS
    public_endpoint_url: str | None = None  # the endpoint as clients reach it (None: endpoint_url)
    access_key: str | None = None  # None: boto3's default credential chain
    secret_key: str | None = dataclasses.field(default=None, repr=False)
    region: str = "us-east-1"
    addressing_style: str = "path"
    signature_version: str = "s3v4"
    prefix: str = "tams/"
    verify: bool | str = True  # or the path of a CA bundle (VAST's self-signed certificate)
    max_pool_connections: int = 32
    connect_timeout: float = 5
    read_timeout: float = 60
    max_attempts: int = 5
    url_lifetime: int = 3600
    create_bucket: bool = False  # create the bucket at start-up when missing (MinIO, moto demos)
    provider: str = "S3-compatible"
    store_product: str = "S3"
    default: bool = False
    storage_id: str | None = None  # None: the caller assigns one

    def __post_init__(self) -> None:
        # Validate here, so a config built in code is as safe as one parsed from options.
        if not isinstance(self.label, str) or not self.label:
            raise ValueError("S3 storage 'label' must be a non-empty string")
        where = f"S3 storage {self.label!r}"
        if not isinstance(self.bucket, str) or not _BUCKET.fullmatch(self.bucket):
            raise ValueError(f"{where}: 'bucket' must be a bucket name ([A-Za-z0-9.-_], 1-255), got {self.bucket!r}")
        for name in ("endpoint_url", "public_endpoint_url"):
            value = getattr(self, name)
            if value is not None:
                parts = urlsplit(value) if isinstance(value, str) else None
                if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                    raise ValueError(f"{where}: {name!r} must be an http(s) URL, got {value!r}")
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError(f"{where}: give both 'access_key' and 'secret_key', or neither")
        if self.addressing_style not in ADDRESSING_STYLES:
            raise ValueError(f"{where}: 'addressing_style' must be one of {ADDRESSING_STYLES}")
        if self.signature_version not in SIGNATURE_VERSIONS:
            raise ValueError(f"{where}: 'signature_version' must be one of {SIGNATURE_VERSIONS}")
        object.__setattr__(self, "prefix", _normalise_prefix(self.prefix, where))
        if not 1 <= self.url_lifetime <= MAX_URL_LIFETIME:
            raise ValueError(f"{where}: 'url_lifetime' must be 1 to {MAX_URL_LIFETIME} seconds")
        for name in ("max_pool_connections", "max_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{where}: {name!r} must be at least 1")
        for name in ("connect_timeout", "read_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{where}: {name!r} must be positive")
        if self.storage_id is not None:
            try:
                object.__setattr__(self, "storage_id", str(uuid.UUID(str(self.storage_id))))
            except ValueError:
                raise ValueError(f"{where}: 'storage_id' must be a UUID, got {self.storage_id!r}") from None

    @property
    def presign_endpoint_url(self) -> str | None:
        return self.public_endpoint_url or self.endpoint_url

    @property
    def where(self) -> str:
        """The bucket and endpoint, for messages."""
        return f"bucket {self.bucket!r} at {self.endpoint_url or 'AWS S3'}"


def _normalise_prefix(prefix: Any, where: str) -> str:
    if not isinstance(prefix, str):
        raise ValueError(f"{where}: 'prefix' must be a string, got {prefix!r}")
    segments = [s for s in prefix.split("/") if s]  # drops leading, trailing and doubled "/"
    for segment in segments:
        if segment in (".", "..") or not _PREFIX_SEGMENT.fullmatch(segment):
            raise ValueError(
                f"{where}: 'prefix' {prefix!r} may only hold [A-Za-z0-9._-] between '/' (and no '.' or '..' parts)"
            )
    normal = "".join(s + "/" for s in segments)
    if len(normal) > _PREFIX_MAX or normal.count("/") > _PREFIX_MAX_SLASHES:
        raise ValueError(f"{where}: 'prefix' is too long (at most {_PREFIX_MAX} characters and 100 '/')")
    return normal


def object_key(prefix: str, object_id: str) -> str:
    """The S3 key of an object id under a (normalised) prefix: valid whatever the id holds."""
    if len(object_id) <= READABLE_ID_MAX and object_id not in (".", "..") and _READABLE_ID.fullmatch(object_id):
        return f"{prefix}o/{object_id}"
    # surrogatepass: ids arrive from JSON and may hold lone surrogates; they still hash distinctly.
    return f"{prefix}h/{hashlib.sha256(object_id.encode('utf-8', 'surrogatepass')).hexdigest()}"


def storage_info(config: S3Config, storage_id: str) -> StorageBackendInfo:
    """How the store of ``config`` is advertised, under ``storage_id``."""
    return StorageBackendInfo(
        id=storage_id,
        label=config.label,
        provider=config.provider,
        store_product=config.store_product,
        region=config.region,
        default_storage=config.default,
    )


# --- options ----------------------------------------------------------------------------------

_FIELDS = {f.name for f in dataclasses.fields(S3Config)}
_ALIASES = {
    "endpoint": "endpoint_url",
    "public_endpoint": "public_endpoint_url",
    "access_key_id": "access_key",
    "secret_access_key": "secret_key",
}
_FLAGS = ("create_bucket", "default")
_INTS = ("max_pool_connections", "max_attempts", "url_lifetime")
_NUMBERS = ("connect_timeout", "read_timeout")
_STRINGS = _FIELDS - set(_FLAGS) - set(_INTS) - set(_NUMBERS) - {"verify"}
FLAT_PREFIX = "s3_"


def parse_storage(options: Mapping[str, Any], url_lifetime: int | None = None) -> list[S3Config]:
    """The S3 stores configured in backend ``options`` ([] when none is).

    Either a list of mappings under ``storage`` (keys: the fields of ``S3Config``, with
    ``endpoint``, ``public_endpoint``, ``access_key_id`` and ``secret_access_key`` as aliases), or
    one store from flat keys: ``s3_`` followed by any of those keys (``s3_bucket``, ``s3_endpoint``,
    ``s3_access_key``, ...). Other keys of ``options`` belong to the backend and are ignored.
    ``url_lifetime`` is the lifetime of presigned URLs for stores that do not set their own.
    Exactly one store is the default: the one marked ``default: true``, or else the first.
    """
    flat = {k[len(FLAT_PREFIX) :]: v for k, v in options.items() if isinstance(k, str) and k.startswith(FLAT_PREFIX)}
    entries: list[tuple[str, str, Mapping[str, Any]]]  # (where, how names are shown, options)
    if "storage" in options and options["storage"] is not None:
        if flat:
            raise ValueError(
                f"backend options: give S3 stores either as a 'storage' list or as flat 's3_*' keys, "
                f"not both (found {', '.join(sorted(FLAT_PREFIX + k for k in flat))})"
            )
        listed = options["storage"]
        if isinstance(listed, (str, bytes, Mapping)) or not isinstance(listed, Iterable):
            raise ValueError("backend option 'storage' must be a list of mappings (one per S3 store)")
        entries = []
        for i, entry in enumerate(listed):
            if not isinstance(entry, Mapping):
                raise ValueError(f"backend option 'storage[{i}]' must be a mapping, got {type(entry).__name__}")
            entries.append((f"storage[{i}]", "", entry))
    elif flat:
        entries = [("backend options", FLAT_PREFIX, {"label": "s3", **flat})]
    else:
        return []

    configs = [_parse_one(where, shown, entry, url_lifetime) for where, shown, entry in entries]
    for name in ("label", "storage_id"):
        seen: set[Any] = set()
        for config in configs:
            value = getattr(config, name)
            if value is not None and value in seen:
                raise ValueError(f"backend option 'storage': two S3 stores have the {name} {value!r}")
            seen.add(value)
    defaults = [c.label for c in configs if c.default]
    if len(defaults) > 1:
        raise ValueError(f"backend option 'storage': only one S3 store may be 'default: true', not {defaults}")
    if not defaults and configs:
        configs[0] = dataclasses.replace(configs[0], default=True)
    return configs


def _parse_one(where: str, shown: str, entry: Mapping[str, Any], url_lifetime: int | None) -> S3Config:
    """One store from its options; ``shown`` is how option names are spelled to the user ("s3_" or "")."""
    values: dict[str, Any] = {}
    given: set[str] = set()
    for key, value in entry.items():
        name = _ALIASES.get(key, key)
        if name not in _FIELDS:
            known = sorted(shown + k for k in _FIELDS | set(_ALIASES))
            raise ValueError(f"{where}: unknown option {shown + str(key)!r} (known: {', '.join(known)})")
        if name in given:
            raise ValueError(f"{where}: {shown + str(key)!r} repeats another spelling of {shown + name!r}")
        given.add(name)
        if value is not None:  # null: the default
            values[name] = _coerce(f"{where}: option {shown + str(key)!r}", name, value)
    for name in ("label", "bucket"):
        if name not in values:
            raise ValueError(f"{where}: the S3 {name} is missing (option {shown + name!r})")
    if url_lifetime is not None:
        values.setdefault("url_lifetime", url_lifetime)
    try:
        return S3Config(**values)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _coerce(what: str, name: str, value: Any) -> Any:
    """Options may come from YAML (typed) or from the environment (strings): accept both."""
    if name in _FLAGS or (name == "verify" and not isinstance(value, bool)):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        if name == "verify" and isinstance(value, str) and value:
            return value  # the path of a CA bundle
        raise ValueError(f"{what} must be true or false{' or the path of a CA bundle' if name == 'verify' else ''}")
    if name in _INTS or name in _NUMBERS:
        # bool is an int to Python, but "url_lifetime: true" is a mistake.
        number = None if isinstance(value, bool) else _number(value)
        if number is None or (name in _INTS and not float(number).is_integer()):
            raise ValueError(f"{what} must be {'an integer' if name in _INTS else 'a number'}, got {value!r}")
        return int(number) if name in _INTS else number
    if name in _STRINGS and not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {value!r}")
    return value


def _number(value: Any) -> int | float | None:
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value)
        with contextlib.suppress(ValueError):
            return float(value)
    return None


_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


# --- the store ----------------------------------------------------------------------------------


class S3StoreError(RuntimeError):
    """An S3 call failed (unreachable endpoint, missing bucket, access denied, ...)."""


# How S3-compatible stores without conditional writes answer If-None-Match on a PUT or copy.
_CONDITION_REFUSED = ("NotImplemented", "501", "InvalidArgument", "InvalidRequest", "400")


class S3ObjectStore(ObjectStore):
    """Objects in one S3 bucket under a key prefix; clients move bytes at presigned URLs."""

    def __init__(self, info: StorageBackendInfo, config: S3Config) -> None:
        if boto3 is None:
            raise ImportError("the S3 object store needs boto3: pip install boto3")
        self.info = info
        self.config = config
        self._client, self._presigner = _clients(config)
        self._conditional = True  # If-None-Match on server-side writes, until the endpoint refuses it

    def key(self, object_id: str) -> str:
        return object_key(self.config.prefix, object_id)

    def probe(self) -> None:
        """One HEAD of the bucket, tried once with short timeouts (the readiness probe must not hang)."""
        try:
            _probe_client(self.config).head_bucket(Bucket=self.config.bucket)
        except Exception as exc:  # botocore's errors: unreachable, refused, denied, missing
            raise S3StoreError(f"{self.config.where} does not answer: {type(exc).__name__}") from None

    def upload_url(self, object_id: str, content_type: str) -> dict[str, Any]:
        # ContentType in the params signs the Content-Type header: the PUT must send the same one.
        url = self._presign("put_object", object_id, ContentType=content_type)
        return {"url": url, "content-type": content_type}

    def download_url(self, object_id: str) -> tuple[str, bool]:
        return self._presign("get_object", object_id), True

    def plain_upload_url(self, object_id: str, content_type: str) -> dict[str, Any] | None:
        """The object's own S3 URL, unsigned (8.x ``presigned: false``).

        This server hands out no S3 credentials: the client needs its own for the bucket and signs
        its PUT itself (SigV4 in an ``Authorization`` header), as with any S3 request.
        """
        return {"url": self._plain("put_object", object_id), "content-type": content_type}

    def plain_download_url(self, object_id: str) -> str | None:
        """The object's own S3 URL, unsigned: a client GETs it with S3 credentials of its own (or
        anonymously from a public bucket)."""
        return self._plain("get_object", object_id)

    def _plain(self, operation: str, object_id: str) -> str:
        # An unsigned client makes the URL as S3 addresses the object (endpoint, addressing style).
        return str(
            _unsigned_client(self.config).generate_presigned_url(
                operation, Params={"Bucket": self.config.bucket, "Key": self.key(object_id)}
            )
        )

    def _presign(self, operation: str, object_id: str, **params: Any) -> str:
        return self._presigner.generate_presigned_url(
            operation,
            Params={"Bucket": self.config.bucket, "Key": self.key(object_id), **params},
            ExpiresIn=self.config.url_lifetime,
        )

    def delete(self, object_id: str) -> None:
        key = self.key(object_id)
        try:
            self._client.delete_object(Bucket=self.config.bucket, Key=key)
        except ClientError as exc:
            # S3 answers 204 for a missing key; some compatible stores answer NoSuchKey.
            if _error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                return
            raise S3StoreError(f"cannot delete {key!r} from {self.config.where}: {exc}") from exc
        except BotoCoreError as exc:
            raise S3StoreError(f"cannot delete {key!r} from {self.config.where}: {exc}") from exc

    def fetch(self, object_id: str) -> tuple[bytes, str | None] | None:
        key = self.key(object_id)
        try:
            found = self._client.get_object(Bucket=self.config.bucket, Key=key)
            return found["Body"].read(), found.get("ContentType")
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise S3StoreError(f"cannot read {key!r} in {self.config.where}: {exc}") from exc
        except BotoCoreError as exc:
            raise S3StoreError(f"cannot read {key!r} in {self.config.where}: {exc}") from exc

    def put(self, object_id: str, data: bytes, content_type: str | None) -> None:
        """Write the bytes once: AlreadyExists when the object holds other bytes (the same bytes
        again are fine: a retried copy)."""
        key = self.key(object_id)
        extra = {"ContentType": content_type} if content_type else {}
        try:
            written = self._write_once(
                lambda condition: self._client.put_object(
                    Bucket=self.config.bucket, Key=key, Body=data, **extra, **condition
                )
            )
            clash = not written and self._etag(key) != hashlib.md5(data, usedforsecurity=False).hexdigest()
        except (ClientError, BotoCoreError) as exc:
            raise S3StoreError(f"cannot write {key!r} to {self.config.where}: {exc}") from exc
        if clash:
            raise AlreadyExists(f"object {object_id} already has other bytes on storage {self.info.label}")

    def copy_from(self, source: ObjectStore, object_id: str) -> bool:
        """S3 to S3 on the same endpoint and keys: a server-side copy (write-once, as ``put``)."""
        if not isinstance(source, S3ObjectStore):
            return False
        same = all(getattr(source.config, n) == getattr(self.config, n) for n in ("endpoint_url", "access_key"))
        if not same:
            return False
        key = self.key(object_id)
        copy_source = {"Bucket": source.config.bucket, "Key": source.key(object_id)}
        try:
            # Some endpoints (moto among them) ignore If-None-Match on a copy: look first as well.
            written = self._etag(key) is None and self._write_once(
                lambda condition: self._client.copy_object(
                    Bucket=self.config.bucket, Key=key, CopySource=copy_source, **condition
                )
            )
            clash = not written and self._etag(key) != source._etag(source.key(object_id))
        except (ClientError, BotoCoreError) as exc:
            raise S3StoreError(f"cannot copy {key!r} to {self.config.where}: {exc}") from exc
        if clash:
            raise AlreadyExists(f"object {object_id} already has other bytes on storage {self.info.label}")
        return True

    def _write_once(self, write: Callable[[dict[str, str]], Any]) -> bool:
        """``write`` with ``If-None-Match: *`` (an S3 conditional write) where the endpoint takes
        it: False when the key was taken. An endpoint refusing the header gets the plain write."""
        if self._conditional:
            try:
                write({"IfNoneMatch": "*"})
                return True
            except ClientError as exc:
                code = _error_code(exc)
                if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                    return False
                if code not in _CONDITION_REFUSED:
                    raise
                self._conditional = False
                log.warning(
                    "%s refuses conditional writes (%s): server-side writes there are no longer write-once",
                    self.config.where,
                    code,
                )
        write({})
        return True

    def _etag(self, key: str) -> str | None:
        """The key's ETag without quotes (the MD5 of a single-part upload), None when absent."""
        try:
            head = self._client.head_object(Bucket=self.config.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return str(head.get("ETag", "")).strip('"')

    def stat(self, object_id: str) -> int | None:
        """The object's size in bytes, or None when nothing was uploaded."""
        key = self.key(object_id)
        try:
            head = self._client.head_object(Bucket=self.config.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise S3StoreError(f"cannot read {key!r} in {self.config.where}: {exc}") from exc
        except BotoCoreError as exc:
            raise S3StoreError(f"cannot read {key!r} in {self.config.where}: {exc}") from exc
        return int(head["ContentLength"])

    def check(self) -> None:
        """At start-up: make sure the bucket is reachable (creating it when ``create_bucket``)."""
        name, where = f"S3 storage {self.config.label!r}", self.config.where
        try:
            self._client.head_bucket(Bucket=self.config.bucket)
            return
        except ClientError as exc:
            code = _error_code(exc)
            if code not in _NOT_FOUND:
                denied = code in ("403", "AccessDenied")
                hint = " (access denied: check the access key and its policy)" if denied else ""
                raise S3StoreError(f"{name}: cannot use {where}{hint}: {exc}") from exc
        except BotoCoreError as exc:
            raise S3StoreError(f"{name}: cannot reach {where}: {exc}") from exc
        if not self.config.create_bucket:
            raise S3StoreError(f"{name}: {where} does not exist (create it, or set create_bucket: true)")
        params: dict[str, Any] = {"Bucket": self.config.bucket}
        if self.config.region != "us-east-1":  # S3 wants the region named, except for us-east-1
            params["CreateBucketConfiguration"] = {"LocationConstraint": self.config.region}
        try:
            self._client.create_bucket(**params)
            log.info("created %s", where)
        except ClientError as exc:
            if _error_code(exc) != "BucketAlreadyOwnedByYou":  # another process won the race
                raise S3StoreError(f"{name}: cannot create {where}: {exc}") from exc
        except BotoCoreError as exc:
            raise S3StoreError(f"{name}: cannot reach {where}: {exc}") from exc

    def close(self) -> None:
        """Nothing to release: clients are shared by every store with the same connection settings."""


_session_lock = threading.Lock()
_session: Any = None
_client_cache: dict[tuple[Any, ...], tuple[Any, Any]] = {}
_CONNECTION = (
    "endpoint_url",
    "public_endpoint_url",
    "access_key",
    "secret_key",
    "region",
    "addressing_style",
    "signature_version",
    "verify",
    "max_pool_connections",
    "connect_timeout",
    "read_timeout",
    "max_attempts",
)


def _clients(config: S3Config) -> tuple[Any, Any]:
    """A pooled client for server-side calls and one for presigning, for ``config``'s endpoint and keys.

    Clients are made once per distinct connection setting and shared (boto3 clients are
    thread-safe): making one loads botocore's service model, ~0.1 s, too slow to do per store.
    One session of our own makes them, under a lock (creating clients from a session is not
    thread-safe, and boto3's default session is shared with whoever else imports boto3).
    """
    global _session
    connection = tuple(getattr(config, name) for name in _CONNECTION)
    with _session_lock:
        cached = _client_cache.get(connection)
        if cached is not None:
            return cached
        if _session is None:
            _session = boto3.session.Session()
        common: dict[str, Any] = {
            "signature_version": config.signature_version,
            "s3": {"addressing_style": config.addressing_style},
            # S3-compatible stores (VAST among them) may reject botocore's default CRC checksums.
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
        keys = {
            "aws_access_key_id": config.access_key,
            "aws_secret_access_key": config.secret_key,
            "region_name": config.region,
            "verify": config.verify,
        }
        server_side = Config(
            **common,
            retries={"max_attempts": config.max_attempts, "mode": "standard"},
            max_pool_connections=config.max_pool_connections,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
        )
        client = _session.client("s3", endpoint_url=config.endpoint_url, config=server_side, **keys)
        # Presigning makes no network call; the URLs must name the endpoint as clients reach it.
        presigner = _session.client("s3", endpoint_url=config.presign_endpoint_url, config=Config(**common), **keys)
        _client_cache[connection] = (client, presigner)
        return client, presigner


_probe_cache: dict[tuple[Any, ...], Any] = {}
_unsigned_cache: dict[tuple[Any, ...], Any] = {}
PROBE_TIMEOUT_S = 2.0


def _cached_client(cache: dict[tuple[Any, ...], Any], config: S3Config, make: Callable[[Any], Any]) -> Any:
    """``make(session)``'s client for ``config``'s connection settings, made once (see ``_clients``)."""
    _clients(config)  # makes the shared session
    connection = tuple(getattr(config, name) for name in _CONNECTION)
    with _session_lock:
        cached = cache.get(connection)
        if cached is None:
            assert _session is not None
            cached = cache[connection] = make(_session)
        return cached


def _probe_client(config: S3Config) -> Any:
    """A client for readiness checks: one attempt, at most PROBE_TIMEOUT_S to connect and to read."""

    def make(session: Any) -> Any:
        probe = Config(
            signature_version=config.signature_version,
            s3={"addressing_style": config.addressing_style},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=min(config.connect_timeout, PROBE_TIMEOUT_S),
            read_timeout=min(config.read_timeout, PROBE_TIMEOUT_S),
        )
        keys = {"aws_access_key_id": config.access_key, "aws_secret_access_key": config.secret_key}
        return session.client(
            "s3",
            endpoint_url=config.endpoint_url,
            config=probe,
            region_name=config.region,
            verify=config.verify,
            **keys,
        )

    return _cached_client(_probe_cache, config, make)


def _unsigned_client(config: S3Config) -> Any:
    """A client making plain (unsigned) object URLs at the endpoint as clients reach it; no network calls."""

    def make(session: Any) -> Any:
        unsigned = Config(signature_version=UNSIGNED, s3={"addressing_style": config.addressing_style})
        return session.client(
            "s3", endpoint_url=config.presign_endpoint_url, config=unsigned, region_name=config.region
        )

    return _cached_client(_unsigned_cache, config, make)


def _error_code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# --- an S3 emulator -------------------------------------------------------------------------------


class MotoServer:
    """Moto's S3 emulator on ``127.0.0.1`` and a free port, in a thread of this process.

    Presigned URLs are checked like S3 does (signature with the ``credentials`` given, signed
    headers, expiry), which moto itself skips. Requests signed in an ``Authorization`` header (the
    server's own boto3 calls) are not checked. Moto keeps its state per process: two servers in one
    process share their buckets.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: Mapping[str, str] | None = None,
        check_presigned: bool = True,
    ) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:
            raise ImportError("the S3 emulator needs moto: pip install 'moto[server]'") from exc
        self.credentials = dict(credentials or {"test": "test"})
        # ThreadedMotoServer.start() waits forever if its server thread fails to bind: try first.
        # Port 0 (the default) lets the system pick a free port as moto binds, so no clash to retry.
        if not _port_free(host, port):
            raise OSError(f"cannot start the S3 emulator: cannot listen on {host}:{port} (in use?)")
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        _quiet_werkzeug()
        self._server.start()
        bound_host, bound_port = self._server.get_host_and_port()
        if check_presigned:
            # werkzeug's handler reads server.app per request; wrap moto's app before any request.
            wsgi_server = getattr(self._server, "_server", None)
            if wsgi_server is None or not hasattr(wsgi_server, "app"):
                self._server.stop()
                raise RuntimeError("this moto version hides its WSGI server: use check_presigned=False")
            wsgi_server.app = PresignedUrlCheck(wsgi_server.app, self.credentials)
        self.endpoint_url = f"http://{bound_host}:{bound_port}"
        self._stopped = False

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._server.stop()

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug's server does
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _quiet_werkzeug() -> None:
    # werkzeug logs every request to stderr unless its logger was configured: keep demos and tests readable.
    werkzeug_log = logging.getLogger("werkzeug")
    if werkzeug_log.level == logging.NOTSET:
        werkzeug_log.setLevel(logging.WARNING)


_PRESIGN_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders")


class PresignedUrlCheck:
    """WSGI middleware refusing SigV4 presigned requests S3 would refuse (an independent verifier).

    It rebuilds the canonical request from what the client actually sent (method, path, query,
    the signed headers), so a URL whose signature, signed headers or expiry do not hold gets a 403.
    """

    def __init__(
        self, app: Callable[..., Any], credentials: Mapping[str, str], clock: Callable[[], dt.datetime] | None = None
    ) -> None:
        self.app = app
        self.credentials = dict(credentials)
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if "X-Amz-Signature=" not in environ.get("QUERY_STRING", "") or "HTTP_AUTHORIZATION" in environ:
            return self.app(environ, start_response)
        refusal = self.refusal(environ)
        if refusal is None:
            return self.app(environ, start_response)
        status, code, message = refusal
        _drain(environ)
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
        ).encode()
        start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body]

    def refusal(self, environ: Mapping[str, Any]) -> tuple[str, str, str] | None:
        """(status, S3 error code, message) when the request must be refused, else None."""
        query = [_split_pair(part) for part in environ.get("QUERY_STRING", "").split("&") if part]
        params: dict[str, str] = {}
        for name, value in query:
            params.setdefault(name, value)
        if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" or any(p not in params for p in _PRESIGN_PARAMS):
            return "400 Bad Request", "AuthorizationQueryParametersError", "Query-string authentication needs SigV4"
        scope = params["X-Amz-Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            return "400 Bad Request", "AuthorizationQueryParametersError", "Malformed X-Amz-Credential"
        access_key, day, region, service, _ = scope
        try:
            signed_at = dt.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
            lifetime = int(params["X-Amz-Expires"])
        except ValueError:
            return "400 Bad Request", "AuthorizationQueryParametersError", "Malformed X-Amz-Date or X-Amz-Expires"
        if not 1 <= lifetime <= MAX_URL_LIFETIME:
            return "400 Bad Request", "AuthorizationQueryParametersError", "X-Amz-Expires out of range"
        secret = self.credentials.get(access_key)
        if secret is None:
            return "403 Forbidden", "InvalidAccessKeyId", "The access key Id does not exist in our records"
        if self.clock() > signed_at + dt.timedelta(seconds=lifetime):
            return "403 Forbidden", "AccessDenied", "Request has expired"

        signed_headers = params["X-Amz-SignedHeaders"]
        raw_path = urlsplit(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "/").path
        canonical_request = "\n".join(
            [
                environ["REQUEST_METHOD"],
                # S3 decodes the path and encodes each byte once (keeping "/"), whatever the client sent.
                quote(unquote_to_bytes(raw_path), safe="/~"),
                "&".join(
                    f"{_encode(n)}={_encode(v)}" for n, v in sorted(q for q in query if q[0] != "X-Amz-Signature")
                ),
                "".join(f"{h}:{_header(environ, h)}\n" for h in signed_headers.split(";")),
                signed_headers,
                params.get("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"),
            ]
        )
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                params["X-Amz-Date"],
                "/".join(scope[1:]),
                hashlib.sha256(canonical_request.encode()).hexdigest(),
            ]
        )
        key = ("AWS4" + secret).encode()
        for part in (day, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params.get("X-Amz-Signature", "")):
            return (
                "403 Forbidden",
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided",
            )
        return None


def _split_pair(part: str) -> tuple[str, str]:
    name, _, value = part.partition("=")
    return unquote(name), unquote(value)


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _header(environ: Mapping[str, Any], name: str) -> str:
    if name == "content-type":
        value = environ.get("CONTENT_TYPE", "")
    elif name == "content-length":
        value = environ.get("CONTENT_LENGTH", "")
    else:
        value = environ.get("HTTP_" + name.upper().replace("-", "_"), "")
    return " ".join(str(value).split())


def _drain(environ: Mapping[str, Any]) -> None:
    # Read an unwanted upload, so the refusal is not mistaken for the start of the next request.
    with contextlib.suppress(ValueError, OSError):
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
        stream = environ["wsgi.input"]
        while remaining > 0:
            chunk = stream.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)
