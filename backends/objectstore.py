"""Media object stores: where segment bytes live, and the URLs clients use to move them.

A store either hands out URLs of its own (an S3 bucket presigns them), or holds bytes that this
server serves itself; the latter sign their URLs with a ``UrlSigner`` from the HTTP layer.
"""

from __future__ import annotations

import abc
import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from backends.errors import AlreadyExists, BadRequest


@dataclass(frozen=True)
class StorageBackendInfo:
    """How a store is advertised at ``/service/storage-backends``."""

    id: str
    label: str
    provider: str = "tams-server"
    store_product: str = "memory"
    region: str | None = None
    availability_zone: str | None = None
    default_storage: bool = False
    # Read-only tags (8.2, ADR-0055); none are configured today.
    tags: Mapping[str, str | list[str]] = field(default_factory=dict, hash=False)

    def describe(self) -> dict[str, Any]:
        """The storage-backend fields that ``verbose_storage`` adds to each get_url."""
        out: dict[str, Any] = {
            "store_type": "http_object_store",
            "provider": self.provider,
            "store_product": self.store_product,
        }
        if self.region is not None:
            out["region"] = self.region
        if self.availability_zone is not None:
            out["availability_zone"] = self.availability_zone
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            **self.describe(),
            "default_storage": self.default_storage,
            **({"tags": dict(self.tags)} if self.tags else {}),
        }


class UrlSigner(Protocol):
    """Makes expiring, signed URLs at which this server moves bytes of a self-served store.

    A signer may also offer ``sign_upload(storage_id, object_id, content_type)``: a PUT URL whose
    signature binds the content type (the HTTP layer's signer does; simple test signers need not).
    """

    def sign(self, method: str, storage_id: str, object_id: str) -> str: ...


class ObjectStore(abc.ABC):
    info: StorageBackendInfo

    @abc.abstractmethod
    def upload_url(self, object_id: str, content_type: str) -> dict[str, Any]:
        """An http-request object (url, content-type) to PUT the object's bytes to."""

    @abc.abstractmethod
    def download_url(self, object_id: str) -> tuple[str, bool]:
        """A URL to GET the object's bytes, and whether it is presigned."""

    def probe(self) -> None:
        """Raise when the store cannot be used now (readiness); cheap: polled every second.
        A store inside this process (memory, a local directory) is there while the process is."""
        return None

    @abc.abstractmethod
    def delete(self, object_id: str) -> None:
        """Remove the object's bytes (no error when there are none)."""

    def plain_upload_url(self, object_id: str, content_type: str) -> dict[str, Any] | None:
        """A non-presigned http-request to PUT the bytes to (8.x), or None when the store has none."""
        return None

    def plain_download_url(self, object_id: str) -> str | None:
        """A non-presigned URL to GET the bytes (for ``presigned=false``), or None when the store has none."""
        return None

    def fetch(self, object_id: str) -> tuple[bytes, str | None] | None:
        """The bytes and content type (for copying between stores), or None when nothing was uploaded."""
        raise NotImplementedError(f"{type(self).__name__} cannot be read by the server")

    def put(self, object_id: str, data: bytes, content_type: str | None) -> None:
        """Write the bytes (for copying between stores)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be written by the server")

    def copy_from(self, source: ObjectStore, object_id: str) -> bool:
        """Copy within the store's own service (e.g. S3 server-side copy): False when it cannot."""
        return False

    @staticmethod
    def new_object_id() -> str:
        # Random ids (ADR 0011) without "/" keep URLs and keys simple for every store.
        return str(uuid.uuid4())


class ServedObjectStore(ObjectStore):
    """A store whose bytes this server serves itself at signed URLs."""

    def __init__(self, info: StorageBackendInfo, signer: UrlSigner) -> None:
        self.info = info
        self._signer = signer

    def upload_url(self, object_id: str, content_type: str) -> dict[str, Any]:
        # The signature covers the content type (as an S3 presigned PUT does), so the URL cannot
        # plant another type (text/html) on this server's origin.
        sign_upload = getattr(self._signer, "sign_upload", None)
        url = (
            sign_upload(self.info.id, object_id, content_type)
            if sign_upload is not None
            else self._signer.sign("PUT", self.info.id, object_id)
        )
        return {"url": url, "content-type": content_type}

    def download_url(self, object_id: str) -> tuple[str, bool]:
        return self._signer.sign("GET", self.info.id, object_id), True

    def plain_upload_url(self, object_id: str, content_type: str) -> dict[str, Any] | None:
        """An unsigned URL of this server, which takes the API's credentials instead (8.x)."""
        plain_url = getattr(self._signer, "plain_url", None)
        if plain_url is None:
            return None
        return {"url": plain_url(self.info.id, object_id), "content-type": content_type}

    def plain_download_url(self, object_id: str) -> str | None:
        """The same unsigned URL of this server for GET: it takes the API's credentials too."""
        plain_url = getattr(self._signer, "plain_url", None)
        return None if plain_url is None else str(plain_url(self.info.id, object_id))

    def fetch(self, object_id: str) -> tuple[bytes, str | None] | None:
        return self.read(object_id)

    def put(self, object_id: str, data: bytes, content_type: str | None) -> None:
        self.write(object_id, data, content_type)

    @abc.abstractmethod
    def begin_upload(self, object_id: str, content_type: str | None) -> Upload:
        """An upload of the object's bytes, written as they arrive (see ``Upload``)."""

    @abc.abstractmethod
    def open_object(self, object_id: str) -> StoredObject | None:
        """The object's size, type and ETag, and its bytes to stream; None when nothing was uploaded."""

    def write(self, object_id: str, data: bytes, content_type: str | None) -> None:
        """Write all the bytes at once: write-once as ``Upload.commit`` (AlreadyExists, StorageFull)."""
        upload = self.begin_upload(object_id, content_type)
        try:
            upload.write(data)
        except BaseException:
            upload.abort()
            raise
        upload.commit()

    def read(self, object_id: str) -> tuple[bytes, str | None] | None:
        """The bytes and content type, or None when nothing was uploaded."""
        found = self.open_object(object_id)
        return None if found is None else (b"".join(found.chunks()), found.content_type)

    def stat(self, object_id: str) -> tuple[int, str | None] | None:
        """The size and content type, or None when nothing was uploaded."""
        found = self.open_object(object_id)
        if found is None:
            return None
        found.close()
        return found.size, found.content_type

    def read_range(self, object_id: str, first: int, last: int) -> bytes | None:
        """Bytes ``first`` to ``last`` inclusive (clipped to the object), or None when nothing was uploaded."""
        found = self.open_object(object_id)
        return None if found is None else b"".join(found.chunks(first, last))


CHUNK = 256 * 2**10  # bytes per piece when streaming an object


class Upload(abc.ABC):
    """One upload in progress: bytes are written as they arrive (``write``), then ``commit`` makes
    them the object's, atomically and once: an object that already holds other bytes stays as it
    is (AlreadyExists; TAMS segments are immutable), while the same bytes again (a retried upload,
    a copy run twice) succeed. ``abort`` drops what was written. A full disk raises StorageFull
    and leaves nothing behind."""

    def __init__(self, object_id: str, content_type: str | None) -> None:
        self.object_id = object_id
        self.content_type = content_type
        self.size = 0
        self._md5 = hashlib.md5(usedforsecurity=False)

    def write(self, chunk: bytes) -> None:
        self._md5.update(chunk)
        self.size += len(chunk)
        self._write(chunk)

    @property
    def etag(self) -> str:
        """The MD5 of the bytes written so far, in hex (what S3 gives a single-part upload)."""
        return self._md5.hexdigest()

    @abc.abstractmethod
    def _write(self, chunk: bytes) -> None: ...

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def abort(self) -> None: ...

    def refused(self) -> AlreadyExists:
        return AlreadyExists(f"object {self.object_id} already has other bytes: media objects are written once")


@dataclass
class StoredObject:
    """An uploaded object, open for reading: ``chunks`` streams a range of it (and then closes it)."""

    size: int
    content_type: str | None
    etag: str
    # (first, last, chunk size) -> the bytes first..last, in pieces; closes what it holds when done.
    reader: Callable[[int, int, int], Iterator[bytes]]
    closer: Callable[[], None] = lambda: None

    def chunks(self, first: int = 0, last: int | None = None, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Bytes ``first`` to ``last`` inclusive (clipped to the object)."""
        last = self.size - 1 if last is None else min(last, self.size - 1)
        if first > last:
            self.close()
            return iter(())
        return self.reader(first, last, chunk_size)

    def close(self) -> None:
        self.closer()


class MemoryObjectStore(ServedObjectStore):
    """Bytes in a dict: for the in-memory backend and tests (the reference for write-once)."""

    def __init__(self, info: StorageBackendInfo, signer: UrlSigner) -> None:
        super().__init__(info, signer)
        self._lock = threading.Lock()
        self._objects: dict[str, tuple[bytes, str | None, str]] = {}  # bytes, content type, MD5

    def begin_upload(self, object_id: str, content_type: str | None) -> Upload:
        return _MemoryUpload(self, object_id, content_type)

    def _commit(self, upload: _MemoryUpload) -> None:
        with self._lock:
            existing = self._objects.get(upload.object_id)
            if existing is not None:
                if existing[2] != upload.etag:
                    raise upload.refused()
                return
            self._objects[upload.object_id] = (b"".join(upload.parts), upload.content_type, upload.etag)

    def open_object(self, object_id: str) -> StoredObject | None:
        with self._lock:
            found = self._objects.get(object_id)
        if found is None:
            return None
        data, content_type, etag = found
        view = memoryview(data)

        def reader(first: int, last: int, chunk_size: int) -> Iterator[bytes]:
            for start in range(first, last + 1, chunk_size):
                yield bytes(view[start : min(start + chunk_size, last + 1)])

        return StoredObject(len(data), content_type, etag, reader)

    def read(self, object_id: str) -> tuple[bytes, str | None] | None:
        with self._lock:
            found = self._objects.get(object_id)
        return None if found is None else (found[0], found[1])

    def delete(self, object_id: str) -> None:
        with self._lock:
            self._objects.pop(object_id, None)


class _MemoryUpload(Upload):
    def __init__(self, store: MemoryObjectStore, object_id: str, content_type: str | None) -> None:
        super().__init__(object_id, content_type)
        self._store = store
        self.parts: list[bytes] = []

    def _write(self, chunk: bytes) -> None:
        self.parts.append(bytes(chunk))

    def commit(self) -> None:
        self._store._commit(self)
        self.parts = []

    def abort(self) -> None:
        self.parts = []


def copy_object(source: ObjectStore, target: ObjectStore, object_id: str) -> None:
    """Copy an object's bytes from one store to another (an object instance, ADR-0038).

    The target's own service copies when it can (S3 to S3); else the bytes pass through the server.
    """
    if target.copy_from(source, object_id):
        return
    found = source.fetch(object_id)
    if found is None:
        raise BadRequest(f"object {object_id} has no uploaded content on storage {source.info.id} to copy")
    data, content_type = found
    target.put(object_id, data, content_type)
