"""/healthz and /readyz: no credentials, any Host, no store data; readiness follows the store."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from starlette.testclient import TestClient

from backends.base import BackendServices
from backends.memory import MemoryBackend
from backends.tabular.objects import s3_stores
from backends.tabular.vast_engine import VastEngine
from backends.vast import VastBackend
from tams_server import health
from tams_server.app import create_app
from tests.conftest import ADMIN_HEADERS, ADMIN_TOKEN, app_settings, backend_settings
from tools import server_process


@pytest.fixture(scope="module", params=["memory", "local", "vast"])
def app(request: pytest.FixtureRequest) -> Iterator[Any]:
    built = create_app(app_settings(**backend_settings(request.param), trusted_hosts=["tams.example"]))
    with TestClient(built, base_url="http://tams.example") as client:
        yield client


@pytest.fixture(scope="module")
def services() -> BackendServices:
    return create_app(app_settings()).services


def test_probes_answer_without_credentials_for_any_host(app: TestClient) -> None:
    for path in ("/healthz", "/readyz"):
        for host in ("tams.example", "10.1.2.3:4010"):  # orchestrators address pods by IP
            response = app.get(path, headers={"Host": host})
            assert response.status_code == 200, (path, host, response.text)
            assert response.headers["cache-control"] == "no-store"
    assert app.get("/healthz").json() == {"status": "ok"}
    ready = app.get("/readyz").json()
    assert ready["status"] == "ready"
    assert all(state == "ok" for state in ready["checks"].values())
    assert any(part.startswith("storage:") for part in ready["checks"])
    # The API itself still refuses a Host it does not serve.
    assert app.get("/flows", headers={"Host": "10.1.2.3:4010", **ADMIN_HEADERS}).status_code == 400


def test_tabular_stores_check_their_database(app: TestClient) -> None:
    checks = app.get("/readyz").json()["checks"]
    backend = app.app.backend  # type: ignore[attr-defined]
    assert ("database" in checks) == (type(backend) is not MemoryBackend)


def test_probes_take_get_and_head_only(app: TestClient) -> None:
    assert app.head("/readyz").status_code == 200
    assert app.head("/readyz").content == b""
    refused = app.post("/healthz")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD"
    assert set(refused.json()) == {"type", "summary", "time"}


def test_a_local_media_directory_that_goes_away_is_not_ready(tmp_path: Path) -> None:
    built = create_app(app_settings(backend="local", backend_options={"data_dir": str(tmp_path / "store")}))
    with TestClient(built) as client:
        [media] = [p for p in (tmp_path / "store").iterdir() if p.is_dir()]
        media.rename(tmp_path / "elsewhere")
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json() == {"status": "unavailable", "checks": {"database": "ok", "storage:local": "unavailable"}}
        assert str(tmp_path) not in answer.text  # reasons go to the log, not to anyone who asks
        (tmp_path / "elsewhere").rename(media)
        assert client.get("/readyz").status_code == 200


class _SlowBackend(MemoryBackend):
    """Readiness that waits until released, counting its calls."""

    def __init__(self, services: BackendServices) -> None:
        from backends.objectstore import MemoryObjectStore, StorageBackendInfo

        info = StorageBackendInfo(id=str(uuid.uuid4()), label="mem", store_product="memory", default_storage=True)
        super().__init__([MemoryObjectStore(info, services.signer)], services)
        self.calls = 0
        self.release = threading.Event()

    def readiness(self) -> dict[str, str | None]:
        self.calls += 1
        self.release.wait(5)
        return {"slow": None}


def test_a_hanging_check_answers_not_ready_in_time_and_probes_share_one_check(services: BackendServices) -> None:
    backend = _SlowBackend(services)
    readiness = health.Readiness(backend, timeout_s=0.3)

    async def probe_three_times() -> list[Any]:
        return await asyncio.gather(*(readiness.response() for _ in range(3)))

    started = time.monotonic()
    answers = asyncio.run(probe_three_times())
    assert time.monotonic() - started < 2
    assert [a.status_code for a in answers] == [503, 503, 503]
    assert backend.calls == 1  # three probes, one check in flight
    backend.release.set()


# --- a real S3 endpoint that stops and comes back ---------------------------------------------


class MotoProcess:
    """moto's S3 server in a process of its own, so that it can be stopped under a running server."""

    def __init__(self) -> None:
        self.port = server_process.free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.TransportError):
                httpx.get(self.endpoint_url, timeout=1)
                return
            if time.monotonic() > deadline:
                raise RuntimeError("moto did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def create_bucket(self, bucket: str) -> None:
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=bucket)


@pytest.fixture
def moto() -> Iterator[MotoProcess]:
    server = MotoProcess()
    server.start()
    yield server
    server.stop()


def _storage(moto: MotoProcess, bucket: str) -> list[dict[str, Any]]:
    return [
        {
            "label": "s3-media",
            "bucket": bucket,
            "endpoint_url": moto.endpoint_url,
            "access_key": "test",
            "secret_key": "test",
            "create_bucket": True,
            "default": True,
        }
    ]


def _until(check: Any, timeout_s: float = 15) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_readyz_follows_the_s3_store_of_a_running_local_server(moto: MotoProcess, tmp_path: Path) -> None:
    bucket = "tams-ready"
    env = {
        **os.environ,
        "TAMS_ADMIN_TOKEN": ADMIN_TOKEN,
        "TAMS_DATA_DIR": str(tmp_path),
        "TAMS_BACKEND_OPTIONS": json.dumps({"storage": _storage(moto, bucket)}),
    }
    with server_process.running(["--log-level", "warning"], env, ready_path="/healthz") as url:

        def state() -> tuple[int, dict[str, Any]]:
            answer = httpx.get(url + "/readyz", timeout=10)
            return answer.status_code, answer.json()

        assert state() == (200, {"status": "ready", "checks": {"database": "ok", "storage:s3-media": "ok"}})
        moto.stop()
        assert _until(lambda: state()[0] == 503)
        assert state()[1]["checks"] == {"database": "ok", "storage:s3-media": "unavailable"}
        assert httpx.get(url + "/healthz").status_code == 200  # the process still serves
        assert httpx.get(url + "/flows", headers=ADMIN_HEADERS).status_code == 200  # and its metadata
        moto.start()  # back, empty (moto keeps buckets in memory): the operator restores the bucket
        assert state()[0] == 503
        moto.create_bucket(bucket)
        assert _until(lambda: state()[0] == 200)


def test_vast_readiness_follows_its_s3_store(moto: MotoProcess, services: BackendServices) -> None:
    from backends.tabular.vast_double import VastDouble

    cluster = VastDouble(buckets=["tams"])
    engine = VastEngine(cluster.session, "tams", "ready", description="VAST DB double")
    stores = s3_stores({"storage": _storage(moto, "tams-vast-ready")}, engine, services)
    backend = VastBackend(engine, stores, services)
    try:
        assert backend.readiness() == {"database": None, "storage:s3-media": None}
        moto.stop()
        found = backend.readiness()
        assert found["database"] is None
        assert found["storage:s3-media"] is not None and "does not answer" in found["storage:s3-media"]
        moto.start()
        moto.create_bucket("tams-vast-ready")
        assert _until(lambda: backend.readiness() == {"database": None, "storage:s3-media": None})
    finally:
        backend.close()
