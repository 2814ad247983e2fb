"""The conformance suite (``contract_tests``) run as its users run it, in separate processes.

* In process, on every backend the server's registry knows, through the pytest plugin.
* Against a real ``tams-server`` process over HTTP, through the ``tams-conformance`` command,
  with the official spec as oracle: the full run, a read-only run (the server's access log must
  show only GET and HEAD), a failing run (non-zero exit) and the same failure declared as a known
  divergence (exit 0, reported as xfail).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import backend_options

import backends
import contract_tests

OFFICIAL_SPEC = Path(__file__).resolve().parents[2] / "shared/tams-spec/api/TimeAddressableMediaStore.yaml"
SUITE_DIR = Path(contract_tests.__file__).resolve().parent / "tests"
TOKEN = "tams_contract-suite-token"
RUN_TIMEOUT_S = 600


def _env() -> dict[str, str]:
    """The environment without any TAMS_* setting that could point the suite or server elsewhere,
    and with this checkout importable (``-p contract_tests.plugin`` is loaded before collection)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
    root = str(Path(contract_tests.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), root) if p)
    return env


def _spec_args(option: str) -> list[str]:
    return [option, str(OFFICIAL_SPEC)] if OFFICIAL_SPEC.is_file() else []


def _conformance_command() -> list[str]:
    script = shutil.which("tams-conformance")
    return [script] if script else [sys.executable, "-m", "contract_tests.cli"]


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    print(f"{' '.join(command[:3])} ... took {time.monotonic() - started:.1f} s (exit {done.returncode})")
    return done


def _junit(path: Path) -> tuple[dict[str, int], list[str]]:
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    return counts, [case.get("name", "") for case in suite.iter("testcase")]


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    return (done.stdout[-6000:] + "\n" + done.stderr[-3000:]).strip()


# --------------------------------------------------------------------------- in process, every backend


def _real_service_options() -> list[str]:
    """``--tams-backend-options`` for backends given real services by ``TAMS_TEST_<NAME>_OPTIONS``
    (e.g. a VAST cluster); without those variables, every backend runs self-contained."""
    chosen = {
        name: backend_options(name)
        for name in backends.available()
        if os.environ.get(f"TAMS_TEST_{name.upper()}_OPTIONS")
    }
    return ["--tams-backend-options", json.dumps(chosen)] if chosen else []


def test_the_suite_passes_in_process_on_every_backend(tmp_path: Path) -> None:
    report = tmp_path / "in-process.xml"
    done = _run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(SUITE_DIR),
            "-c",
            str(SUITE_DIR / "pytest.ini"),
            "--rootdir",
            str(SUITE_DIR),
            "-q",
            "--junitxml",
            str(report),
            *_spec_args("--tams-spec"),
            *_real_service_options(),
        ],
        tmp_path,
    )
    assert done.returncode == 0, _tail(done)
    counts, names = _junit(report)
    assert counts["failures"] == counts["errors"] == 0
    for backend in backends.available():
        ran = [n for n in names if f"[{backend}" in n]
        assert len(ran) > 70, f"backend {backend}: only {len(ran)} tests ran"
    assert "TAMS conformance by operation" in done.stdout
    assert re.search(r"operations: 74 passed, 0 failed", done.stdout), _tail(done)


# --------------------------------------------------------------------------- a real server process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real server serving every version, 8.2 at the root: the 7.0 suite runs at ``url`` (``/v7.0``)."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def requests_since(self, offset: int) -> list[str]:
        """Methods of the requests in the access log written after ``offset`` bytes."""
        text = self.log.read_bytes()[offset:].decode(errors="replace")
        return re.findall(r'"(GET|HEAD|PUT|POST|DELETE|PATCH|OPTIONS) [^"]* HTTP/1\.[01]"', text)

    def log_since(self, offset: int) -> str:
        return self.log.read_bytes()[offset:].decode(errors="replace")

    def log_size(self) -> int:
        return self.log.stat().st_size


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = _free_port()
    work = tmp_path_factory.mktemp("conformance-server")
    log = work / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tams_server.cli", "--port", str(port), "--log-level", "info"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**_env(), "TAMS_ADMIN_TOKEN": TOKEN, "TAMS_DATA_DIR": str(work / "data")},
            cwd=work,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/service", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"tams-server did not start:\n{log.read_text(errors='replace')[-3000:]}")
                time.sleep(0.1)
        yield Server(f"{url}/v7.0", log)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_tams_conformance_passes_against_a_real_server(server: Server, tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    command = [*_conformance_command(), "--url", server.url, "--token", TOKEN, "--junitxml", str(report)]
    done = _run(command + _spec_args("--spec"), tmp_path)
    assert done.returncode == 0, _tail(done)
    counts, names = _junit(report)
    assert counts["failures"] == counts["errors"] == 0
    assert counts["tests"] > 80
    assert all("[remote" in n for n in names)
    # Progress (one line per test), then the per-operation table.
    assert "test_differential_against_reference[remote] PASSED" in done.stdout
    assert "TAMS conformance by operation" in done.stdout
    assert re.search(r"^PUT /flows/\{flowId\}\s+passed\s+\d+\s+0\s+0\s+0", done.stdout, re.M), _tail(done)
    # Everything the suite created is gone again: flows, their sources, webhook registrations.
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        assert api.get("/flows").json() == []
        assert api.get("/sources").json() == []
        assert api.get("/service/webhooks").json() == []


def _existing_flow(api: httpx.Client, segments: int) -> str:
    """A flow with segments, as a live store would hold (not made by the suite)."""
    flow_id, source_id = str(uuid.uuid4()), str(uuid.uuid4())
    body = {
        "id": flow_id,
        "source_id": source_id,
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "container": "video/mp2t",
        "essence_parameters": {"frame_width": 1280, "frame_height": 720},
    }
    assert api.put(f"/flows/{flow_id}", json=body).status_code == 201
    bulk = [{"object_id": str(uuid.uuid4()), "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(segments)]
    assert api.post(f"/flows/{flow_id}/segments", json=bulk).status_code == 201
    return flow_id


def test_read_only_mode_sends_only_get_and_head(server: Server, tmp_path: Path) -> None:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        existing = [_existing_flow(api, 40), _existing_flow(api, 3)]
        before = {f: api.get(f"/flows/{f}/segments").json() for f in existing}
    offset = server.log_size()
    command = [*_conformance_command(), "--url", server.url, "--token", TOKEN, "--read-only"]
    done = _run([*command, "--junitxml", str(tmp_path / "ro.xml"), "-q"], tmp_path)
    assert done.returncode == 0, _tail(done)
    time.sleep(0.2)  # let the access log catch up
    methods = server.requests_since(offset)
    assert len(methods) > 50, f"only {len(methods)} requests seen in the server log"
    assert set(methods) <= {"GET", "HEAD"}, sorted(set(methods))
    assert re.search(r"^PUT /flows/\{flowId\}\s+skipped", done.stdout, re.M), _tail(done)
    # The flows already in the store were read (their segment timelines checked) and left as they were.
    for flow_id in existing:
        assert f"/flows/{flow_id}/segments?reverse_order=true" in server.log_since(offset)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        assert {f: api.get(f"/flows/{f}/segments").json() for f in existing} == before
        for flow_id in existing:
            assert api.delete(f"/flows/{flow_id}").status_code == 204


def test_failures_exit_non_zero_and_known_divergences_turn_them_into_xfails(server: Server, tmp_path: Path) -> None:
    wrong = [*_conformance_command(), "--url", server.url, "--token", "not-a-valid-token", "-k", "segment_timeline"]
    done = _run([*wrong, "--junitxml", str(tmp_path / "fail.xml"), "-q"], tmp_path)
    assert done.returncode == 1, _tail(done)
    assert re.search(r"^PUT /flows/\{flowId\}\s+FAILED", done.stdout, re.M), _tail(done)

    divergences = tmp_path / "divergences.toml"
    divergences.write_text(
        '[[divergence]]\noperation = "PUT /flows/{flowId}"\nreason = "this deployment refuses our token"\n'
    )
    done = _run([*wrong, "--divergences", str(divergences), "--junitxml", str(tmp_path / "xfail.xml"), "-q"], tmp_path)
    assert done.returncode == 0, _tail(done)
    assert "known divergence: this deployment refuses our token" in done.stdout
    assert re.search(r"^PUT /flows/\{flowId\}\s+xfail", done.stdout, re.M), _tail(done)
