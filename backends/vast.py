"""The ``vast`` backend: metadata in VAST DB tables, media in S3 buckets, for stores beyond one machine.

The TAMS logic is the tabular store (``backends.tabular.store``), the same code the ``local``
backend runs on DuckDB; here it runs on :class:`~backends.tabular.vast_engine.VastEngine`, and
segment bytes go to S3 (VAST S3, AWS, MinIO...) through presigned URLs. Any number of
``tams-server`` processes may serve the same bucket and schema: writers of one flow are serialised
between processes by claims in the ``tams_locks`` table (``backends.tabular.table_locks``).

Options (``backend_options`` in the config file, ``[backend_options]`` table):

``endpoint``, ``access_key``, ``secret_key``
    The VAST DB (tabular) endpoint and S3 keys (default: ``AWS_S3_ENDPOINT_URL``,
    ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, as the SDK reads them).
``bucket`` (required), ``schema`` (default ``tams``)
    Where the tables live. The bucket must exist (VMS creates it); schema and tables are created.
``data_endpoints``
    Several VIPs / DNS names to spread selects over (the SDK's ``SessionConfig.data_endpoints``).
``timeout``, ``ssl_verify``
    Seconds per RPC (default 60; connect 5), and TLS verification (bool or a CA bundle path).
``lock``
    ``table`` (default): locks shared by all processes on the schema (a write's claim costs one
    transaction more); ``process``: in-process locks only, for exactly one server per schema.
``lock_ttl``, ``lock_wait``
    Seconds a lock claim lives without renewal (60), and the longest wait for one (60; then 503).
``storage`` or ``s3_*``
    The S3 object stores: see ``backends.s3store.parse_storage``. At least one is required.
``emulate``
    ``true``: no cluster at all: an in-process VAST DB double and a moto S3 server on loopback
    (tests, demos; nothing survives the process). A string names a double shared by every backend
    of this process that gives the same name (several "servers" on one emulated cluster).
"""

from __future__ import annotations

import atexit
import logging
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from backends.base import BackendServices
from backends.s3store import MotoServer
from backends.tabular.locks import LockManager
from backends.tabular.store import TabularBackend, s3_stores
from backends.tabular.table_locks import TableLockManager
from backends.tabular.vast_engine import VastEngine

log = logging.getLogger("tams_server.vast")

OPTIONS = {
    "endpoint",
    "access_key",
    "secret_key",
    "bucket",
    "schema",
    "data_endpoints",
    "timeout",
    "ssl_verify",
    "lock",
    "lock_ttl",
    "lock_wait",
    "emulate",
    "storage",
}


class VastBackend(TabularBackend):
    """The tabular store on VAST DB with S3 object stores."""


def create(options: Mapping[str, Any], services: BackendServices) -> VastBackend:
    """Backend factory registered as ``vast``."""
    unknown = {k for k in options if k not in OPTIONS and not k.startswith("s3_")}
    if unknown:
        raise ValueError(f"unknown vast backend options: {', '.join(sorted(unknown))}")
    emulate = options.get("emulate")
    if emulate:
        if options.get("endpoint"):
            raise ValueError("the vast backend takes either 'endpoint' or 'emulate', not both")
        engine, options = _emulated(options, str(emulate) if isinstance(emulate, str) else None)
    else:
        engine = _engine(options)
    locks: LockManager | None = None
    try:
        lock_kind = options.get("lock", "table")
        if lock_kind == "table":
            locks = TableLockManager(
                engine, ttl=float(options.get("lock_ttl", 60)), wait=float(options.get("lock_wait", 60))
            )
        elif lock_kind == "process":
            locks = LockManager()
        else:
            raise ValueError(f"lock must be 'table' or 'process', not {lock_kind!r}")
        stores = s3_stores(options, engine, services, locks)
        if not stores:
            raise ValueError("the vast backend needs an S3 object store: set 'storage' or 's3_bucket'")
        backend = VastBackend(engine, stores, services, locks=locks)
    except BaseException:
        if locks is not None:
            locks.close()
        engine.close()
        raise
    log.info("vast backend: tables in %s, media in %s", engine.description, ", ".join(s.info.label for s in stores))
    return backend


def _engine(options: Mapping[str, Any]) -> VastEngine:
    bucket = options.get("bucket")
    if not bucket:
        raise ValueError("the vast backend needs 'bucket' (the VAST DB bucket holding the tables)")
    schema = str(options.get("schema", "tams"))
    endpoint = options.get("endpoint")
    data_endpoints = options.get("data_endpoints")
    if isinstance(data_endpoints, str):
        data_endpoints = [e.strip() for e in data_endpoints.split(",") if e.strip()]
    timeout = float(options.get("timeout", 60))
    verify = options.get("ssl_verify", True)

    def connect() -> Any:
        import vastdb
        from vastdb.config import SessionConfig

        config = SessionConfig(data_endpoints=list(data_endpoints) if data_endpoints else None)
        return vastdb.connect(
            access=options.get("access_key"),
            secret=options.get("secret_key"),
            endpoint=endpoint,
            ssl_verify=verify,
            timeout=(min(5.0, timeout), timeout),
            config=config,
        )

    where = endpoint or "$AWS_S3_ENDPOINT_URL"
    return VastEngine(connect, str(bucket), schema, description=f"VAST DB {where} {bucket}/{schema}")


# --- emulation: no cluster, for tests and demos ------------------------------------------------
_moto: MotoServer | None = None
_moto_lock = threading.Lock()
_clusters: dict[str, Any] = {}


def shared_moto() -> MotoServer:
    """One moto S3 server for every emulated backend of this process (stopped at exit)."""
    global _moto
    with _moto_lock:
        if _moto is None:
            _moto = MotoServer()
            atexit.register(_moto.stop)
        return _moto


def emulated_cluster(name: str) -> Any:
    """The emulated cluster (a ``VastDouble``) shared by every backend of this process with
    ``emulate = name``; made on first use. Tests use it to lay tables down before a backend opens them."""
    from backends.tabular.vast_double import VastDouble

    with _moto_lock:
        return _clusters.get(name) or _clusters.setdefault(name, VastDouble(buckets=["tams"]))


def _emulated(options: Mapping[str, Any], name: str | None) -> tuple[VastEngine, dict[str, Any]]:
    from backends.tabular.vast_double import VastDouble

    cluster = VastDouble(buckets=["tams"]) if name is None else emulated_cluster(name)
    moto = shared_moto()
    bucket = f"tams-{name or uuid.uuid4().hex[:16]}".lower()
    emulated = {k: v for k, v in options.items() if k not in ("storage",) and not k.startswith("s3_")}
    emulated["storage"] = [
        {
            "label": "emulated-s3",
            "bucket": bucket,
            "endpoint_url": moto.endpoint_url,
            "access_key": "test",
            "secret_key": "test",
            "create_bucket": True,
            "store_product": "moto (emulated S3)",
            "default": True,
        }
    ]
    engine = VastEngine(cluster.session, "tams", str(options.get("schema", "tams")), description="VAST DB double")
    engine.cluster = cluster  # type: ignore[attr-defined]
    return engine, emulated


create.self_contained_options = {"emulate": True}  # type: ignore[attr-defined]
