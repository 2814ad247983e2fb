"""The ``local`` backend: a persistent store on one machine, with no service to run.

Metadata lives in a DuckDB file (``<data_dir>/tams.duckdb``) through the tabular TAMS store, and
media bytes in a directory (``<data_dir>/media``) that this server serves at signed, expiring URLs
(with HTTP Range). Everything survives a restart or a crash: a write answered 2xx is committed to
the database (and its bytes renamed into place) before the answer leaves.

Options (``backend_options`` in the config file):

``data_dir``
    Where to keep the store (default: the server's ``--data-dir``, ``./tams-data``).
``temporary``
    ``true``: a fresh directory that is deleted when the backend closes (tests, demos).
``storage_label``
    Label of the media storage backend (default ``local``).
``durable``
    ``false`` skips fsync of uploaded media (faster, for tests; the database still commits).
``storage`` or ``s3_*``
    S3 object stores to keep media in instead of the media directory (see
    ``backends.s3store.parse_storage``); uploads and downloads then go to S3 at presigned URLs.

One process at a time: DuckDB locks the database file, so a second server on the same directory
stops at start-up with a clear message.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from backends.base import BackendServices
from backends.localstore import LocalObjectStore
from backends.objectstore import StorageBackendInfo
from backends.tabular.duckdb_engine import DuckDBEngine
from backends.tabular.engine import EngineError
from backends.tabular.store import TabularBackend, new_storage_id, persistent_value, s3_stores

log = logging.getLogger("tams_server.local")

DATABASE_FILE = "tams.duckdb"
MEDIA_DIR = "media"


_open_dirs: set[Path] = set()
_open_dirs_lock = threading.Lock()


class LocalBackend(TabularBackend):
    """The tabular store on DuckDB and a media directory under ``data_dir``."""

    def __init__(self, data_dir: Path, services: BackendServices, options: Mapping[str, Any], temporary: bool) -> None:
        self.data_dir = data_dir
        self._temporary = temporary
        data_dir.mkdir(parents=True, exist_ok=True)
        with _open_dirs_lock:
            # DuckDB would share one database between two backends of this process: refuse instead.
            if data_dir in _open_dirs:
                raise RuntimeError(f"the local backend at {data_dir} is already open in this process")
            _open_dirs.add(data_dir)
        try:
            engine = DuckDBEngine(data_dir / DATABASE_FILE)
        except EngineError as exc:
            self._release()
            raise RuntimeError(
                f"the local backend cannot open {data_dir / DATABASE_FILE} "
                f"(is another tams-server using {data_dir}?): {exc}"
            ) from exc
        try:
            stores = s3_stores(options, engine, services)
            if not stores:
                storage_id = persistent_value(engine, "local_storage_id", new_storage_id)
                info = StorageBackendInfo(
                    id=storage_id,
                    label=str(options.get("storage_label", "local")),
                    store_product="local-disk",
                    default_storage=True,
                )
                stores = [
                    LocalObjectStore(
                        info, services.signer, data_dir / MEDIA_DIR, durable=_flag(options, "durable", True)
                    )
                ]
            super().__init__(engine, stores, services)
        except BaseException:
            engine.close()
            self._release()
            raise
        media = ", ".join(str(getattr(s, "root", s.info.label)) for s in self._stores.values())
        log.info("local backend: metadata in %s, media in %s", data_dir / DATABASE_FILE, media)

    def _release(self) -> None:
        with _open_dirs_lock:
            _open_dirs.discard(self.data_dir)

    def close(self) -> None:
        if self._closed:
            return
        super().close()
        self._release()
        if self._temporary:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _flag(options: Mapping[str, Any], name: str, default: bool) -> bool:
    value = options.get(name, default)
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    return bool(value)


def create(options: Mapping[str, Any], services: BackendServices) -> LocalBackend:
    """Backend factory registered as ``local``."""
    temporary = _flag(options, "temporary", False)
    where = options.get("data_dir") or services.data_dir
    if temporary or where is None:
        if not temporary:
            log.warning("the local backend has no data directory: using a temporary one, deleted at close")
        return LocalBackend(Path(tempfile.mkdtemp(prefix="tams-local-")), services, options, temporary=True)
    return LocalBackend(Path(where).resolve(), services, options, temporary=False)


create.self_contained_options = {"temporary": True, "durable": False}  # type: ignore[attr-defined]
