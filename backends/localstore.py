"""Media bytes in a local directory, served by this server at signed URLs.

Each object is one file whose name is the SHA-256 of its id (``ab/cd/abcd…``), so no object id,
whatever characters it holds (``..``, ``/``, NUL, 4 KB of text), can name a path outside the
directory or collide with another. The file starts with a small header (magic, the object id and
the content type) followed by the bytes.

Writes are atomic: the bytes go to a temporary file in the same directory, are flushed to disk,
and the file is renamed over the final name, so a reader (or a restart after a crash) sees the old
object or the new one, never a part. Temporary files left by a crash are removed at start-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import BinaryIO

from backends.objectstore import ServedObjectStore, StorageBackendInfo, UrlSigner

log = logging.getLogger("tams_server.localstore")

MAGIC = b"TAMSOBJ1"
_TMP_PREFIX = ".tmp-"


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

    def _remove_leftovers(self) -> None:
        for leftover in self.root.glob(f"*/*/{_TMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                leftover.unlink()
                log.info("removed %s, left by an interrupted upload", leftover)

    def write(self, object_id: str, data: bytes, content_type: str | None) -> None:
        target = self.path(object_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        header = json.dumps({"object_id": object_id, "content_type": content_type}).encode()
        temporary = target.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            with temporary.open("wb") as f:
                f.write(MAGIC + len(header).to_bytes(4, "big") + header)
                f.write(data)
                f.flush()
                if self._durable:
                    os.fsync(f.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        if self._durable:
            _fsync_directory(target.parent)

    def _open(self, object_id: str) -> tuple[BinaryIO, int, str | None] | None:
        """The open file positioned at the first byte, the object's size and content type."""
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
            size = os.fstat(f.fileno()).st_size - start
        except BaseException:
            f.close()
            raise
        return f, size, header.get("content_type")

    def read(self, object_id: str) -> tuple[bytes, str | None] | None:
        opened = self._open(object_id)
        if opened is None:
            return None
        f, _, content_type = opened
        with f:
            return f.read(), content_type

    def stat(self, object_id: str) -> tuple[int, str | None] | None:
        opened = self._open(object_id)
        if opened is None:
            return None
        f, size, content_type = opened
        f.close()
        return size, content_type

    def read_range(self, object_id: str, first: int, last: int) -> bytes | None:
        opened = self._open(object_id)
        if opened is None:
            return None
        f, size, _ = opened
        with f:
            if first >= size or last < first:
                return b""
            f.seek(first, os.SEEK_CUR)
            return f.read(min(last, size - 1) - first + 1)

    def delete(self, object_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(object_id).unlink()


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
