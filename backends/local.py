"""The ``local`` backend: a persistent store on one machine, with no service to run.

Metadata lives in a SQLite file (``<data_dir>/tams.sqlite``, WAL mode) through the tabular TAMS
store, and media bytes in a directory (``<data_dir>/media``) that this server serves at signed, expiring URLs
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

One process at a time: the backend holds an exclusive lock on ``<data_dir>/tams.lock`` while open,
so a second server on the same directory stops at start-up with a clear message.

Upgrade: servers before 8.x kept the tables in DuckDB (``tams.duckdb``). Such a directory is
migrated when it is first opened: every table, row and column is copied into a new SQLite file
(written aside, then renamed into place, so an interrupted migration starts again), and the DuckDB
file is kept, renamed ``tams.duckdb.migrated``, for the operator to delete.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from backends.base import BackendServices
from backends.localstore import LocalObjectStore
from backends.objectstore import StorageBackendInfo
from backends.tabular.engine import EngineError, TableSpec
from backends.tabular.sqlite_engine import SQLiteEngine
from backends.tabular.store import TabularBackend, new_storage_id, persistent_value, s3_stores

log = logging.getLogger("tams_server.local")

DATABASE_FILE = "tams.sqlite"
LOCK_FILE = "tams.lock"
LEGACY_DATABASE_FILE = "tams.duckdb"  # before 8.x: migrated to DATABASE_FILE on first opening
MIGRATED_SUFFIX = ".migrated"
MEDIA_DIR = "media"


_open_dirs: set[Path] = set()
_open_dirs_lock = threading.Lock()


class LocalBackend(TabularBackend):
    """The tabular store on SQLite and a media directory under ``data_dir``."""

    reads_block = False  # SQLite reads (WAL snapshots, page cache): called on the event loop

    def __init__(self, data_dir: Path, services: BackendServices, options: Mapping[str, Any], temporary: bool) -> None:
        self.data_dir = data_dir
        self._temporary = temporary
        data_dir.mkdir(parents=True, exist_ok=True)
        with _open_dirs_lock:
            # Two backends of one process on one directory would each group their own commits: refuse.
            if data_dir in _open_dirs:
                raise RuntimeError(f"the local backend at {data_dir} is already open in this process")
            _open_dirs.add(data_dir)
        self._lock_fd: int | None = None
        try:
            self._lock_fd = _lock_directory(data_dir)
            migrate_legacy(data_dir)
            engine = SQLiteEngine(data_dir / DATABASE_FILE)
        except (EngineError, OSError) as exc:
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
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # and with it the lock
            self._lock_fd = None
        with _open_dirs_lock:
            _open_dirs.discard(self.data_dir)

    def close(self) -> None:
        if self._closed:
            return
        super().close()
        self._release()
        if self._temporary:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _lock_directory(data_dir: Path) -> int:
    """An open descriptor holding the directory's exclusive lock (OSError when another process has it)."""
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def migrate_legacy(data_dir: Path) -> None:
    """Copy a DuckDB store (before 8.x) into a new SQLite file, once; keep the DuckDB file aside.

    The copy is written to a ``.partial`` file, synced and renamed into place: a crash leaves either
    no SQLite file (the next opening starts again) or a complete one.
    """
    legacy = data_dir / LEGACY_DATABASE_FILE
    database = data_dir / DATABASE_FILE
    if not legacy.exists():
        return
    if not database.exists():
        from backends.tabular.duckdb_engine import DuckDBEngine  # only for the upgrade

        partial = data_dir / (DATABASE_FILE + ".partial")
        for leftover in (partial, *(partial.with_name(partial.name + x) for x in ("-wal", "-shm"))):
            leftover.unlink(missing_ok=True)
        log.info("migrating %s to %s", legacy, database)
        source = DuckDBEngine(legacy)
        try:
            target = SQLiteEngine(partial)
            try:
                tables = source.columns()
                target.ensure_tables(TableSpec(name, source.arrow_schema(name)) for name in tables)
                with target.transaction(write=True) as tx:
                    for name in tables:
                        for batch in source.batches(name):
                            tx.insert(name, pa.Table.from_batches([batch]))
                target.checkpoint()
            finally:
                target.close()
        finally:
            source.close()
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.replace(partial, database)
    # The SQLite file exists only once complete: the DuckDB one is migrated (perhaps by an opening
    # that stopped before this rename).
    for path in (legacy, legacy.with_name(legacy.name + ".wal")):
        if path.exists():
            os.replace(path, path.with_name(path.name + MIGRATED_SUFFIX))
    _fsync_directory(data_dir)
    log.warning(
        "the DuckDB store was migrated to %s; %s%s is kept (delete it when you no longer need it)",
        database,
        legacy,
        MIGRATED_SUFFIX,
    )


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
