"""Media bytes in a local directory, served by this server at signed URLs.

Each object is one file whose name is the SHA-256 of its id (``ab/cd/abcd…``), so no object id,
whatever characters it holds (``..``, ``/``, NUL, 4 KB of text), can name a path outside the
directory or collide with another. The file starts with a small header (magic, then JSON: the MD5
of the bytes, the object id and the content type) followed by the bytes.

Writes are atomic and once: the bytes go to a temporary file in the same directory as they arrive,
are flushed to disk, and the file is hard-linked to the final name, which fails when that name
exists, so a reader (or a restart after a crash) sees no object or the whole one, and an object's
bytes never change (TAMS segments are immutable). Temporary files left by a crash are removed at
start-up. Files are created owner-only (0600).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from backends.errors import StorageFull
from backends.objectstore import ServedObjectStore, StorageBackendInfo, StoredObject, Upload, UrlSigner

log = logging.getLogger("tams_server.localstore")

MAGIC = b"TAMSOBJ1"
_TMP_PREFIX = ".tmp-"
_NO_MD5 = "0" * 32
_MD5 = re.compile(r"[0-9a-f]{32}")


class LocalObjectStore(ServedObjectStore):
    def __init__(self, info: StorageBackendInfo, signer: UrlSigner, root: Path, durable: bool = True) -> None:
        super().__init__(info, signer)
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._durable = durable
        self._remove_leftovers()

    def path(self, object_id: str) -> Path:
        digest = hashlib.sha256(object_id.encode("utf-8", "surrogatepass")).hexdigest()
        return self.root / digest[:2] / digest[2:4] / digest

    def probe(self) -> None:
        """The media directory is there and writable (a lost mount, a remount read-only)."""
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            raise OSError(f"{self.root} is not a writable directory")

    def _remove_leftovers(self) -> None:
        for leftover in self.root.glob(f"*/*/{_TMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                leftover.unlink()
                log.info("removed %s, left by an interrupted upload", leftover)

    def begin_upload(self, object_id: str, content_type: str | None) -> Upload:
        target = self.path(object_id)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            return _LocalUpload(self, object_id, content_type, target)
        except OSError as exc:
            raise _storage_error(exc, target) from exc

    def _open(self, object_id: str) -> tuple[BinaryIO, int, dict[str, Any]] | None:
        """The open file positioned at the first byte, the object's size and its header."""
        try:
            f = self.path(object_id).open("rb")
        except FileNotFoundError:
            return None
        try:
            prefix = f.read(len(MAGIC) + 4)
            if len(prefix) < len(MAGIC) + 4 or not prefix.startswith(MAGIC):
                raise OSError(f"{f.name} is not a media object file")
            header = json.loads(f.read(int.from_bytes(prefix[len(MAGIC) :], "big")))
            start = f.tell()
            status = os.fstat(f.fileno())
            size = status.st_size - start
            if not _MD5.fullmatch(str(header.get("md5", ""))):
                # Written before ETags were kept (which was before write-once): size and time.
                header["md5"] = f"{size:x}-{status.st_mtime_ns:x}"
        except BaseException:
            f.close()
            raise
        return f, size, header

    def open_object(self, object_id: str) -> StoredObject | None:
        opened = self._open(object_id)
        if opened is None:
            return None
        f, size, header = opened
        start = f.tell()

        def reader(first: int, last: int, chunk_size: int) -> Iterator[bytes]:
            # Only the range is read, a piece at a time: a one-byte Range GET reads one byte.
            try:
                f.seek(start + first)
                left = last - first + 1
                while left > 0:
                    piece = f.read(min(chunk_size, left))
                    if not piece:
                        break
                    left -= len(piece)
                    yield piece
            finally:
                f.close()

        return StoredObject(size, header.get("content_type"), header["md5"], reader, f.close)

    def read(self, object_id: str) -> tuple[bytes, str | None] | None:
        opened = self._open(object_id)
        if opened is None:
            return None
        f, _, header = opened
        with f:
            return f.read(), header.get("content_type")

    def delete(self, object_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(object_id).unlink()

    def _stored_md5(self, object_id: str) -> str | None:
        opened = self._open(object_id)
        if opened is None:
            return None
        opened[0].close()
        return str(opened[2]["md5"])


class _LocalUpload(Upload):
    """Bytes go to a temporary file beside the target as they arrive; ``commit`` links it to the
    object's name, which fails when the name exists, so of two racing uploads one wins."""

    def __init__(self, store: LocalObjectStore, object_id: str, content_type: str | None, target: Path) -> None:
        super().__init__(object_id, content_type)
        self._store = store
        self._target = target
        self._temporary = target.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        # The MD5 goes first in the header, as a placeholder of fixed length filled in at commit.
        header = json.dumps({"md5": _NO_MD5, "object_id": object_id, "content_type": content_type}).encode()
        self._md5_at = len(MAGIC) + 4 + len(b'{"md5": "')
        fd = os.open(self._temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        try:
            self._file.write(MAGIC + len(header).to_bytes(4, "big") + header)
        except OSError as exc:
            self.abort()
            raise _storage_error(exc, target) from exc

    def _write(self, chunk: bytes) -> None:
        assert self._file is not None, "the upload was committed or aborted"
        try:
            self._file.write(chunk)
        except OSError as exc:
            self.abort()
            raise _storage_error(exc, self._target) from exc

    def commit(self) -> None:
        assert self._file is not None, "the upload was committed or aborted"
        try:
            self._file.seek(self._md5_at)
            self._file.write(self.etag.encode())
            self._file.flush()
            if self._store._durable:
                os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            placed = _place(self._temporary, self._target)
        except OSError as exc:
            self.abort()
            raise _storage_error(exc, self._target) from exc
        finally:
            with contextlib.suppress(OSError):
                self._temporary.unlink()
        if not placed:
            if self._store._stored_md5(self.object_id) != self.etag:
                raise self.refused()
            return
        if self._store._durable:
            _fsync_directory(self._target.parent)

    def abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        with contextlib.suppress(OSError):
            self._temporary.unlink()


_place_lock = threading.Lock()


def _place(temporary: Path, target: Path) -> bool:
    """Give ``temporary``'s file the name ``target`` unless that name exists (False then)."""
    try:
        os.link(temporary, target)  # atomic, and never replaces: the first upload wins
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
    # A file system without hard links: check and rename under a lock (one process owns the directory).
    with _place_lock:
        if target.exists():
            return False
        os.replace(temporary, target)
        return True


def _storage_error(exc: OSError, where: Path) -> Exception:
    """A full disk or quota as StorageFull (with no path for clients; the log has it); else ``exc``."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        log.error("media store full: cannot write %s: %s", where, exc)
        return StorageFull("the media store is full: nothing was written")
    return exc


def _fsync_directory(path: Path) -> None:
    """Make a rename in ``path`` durable (where the platform allows opening a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
