"""The conformance suite (``contract_tests``) run as its users run it, in separate processes.

* In process, through the pytest plugin: 8.2 on every backend the server's registry knows, 7.0 on
  memory (all with ``TAMS_TEST_ALL_SPECS=1``); every operation must be "passed".
* Against a real ``tams-server`` process over HTTP, through the ``tams-conformance`` command: the
  full run for 8.2 (version taken from the server) and 7.0 (the official spec as oracle when it is
  here) with the store's inventory unchanged afterwards, a read-only run (the server's access log
  must show only GET and HEAD), a failing run (exit 1, a JSON report) and the same failure declared
  as a known divergence (exit 0, xfail), and targets that cannot be tested (exit 2, one sentence).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import backend_options

import backends
import contract_tests
from contract_tests import preflight
from contract_tests.errors import CannotTest
from contract_tests.target import Credentials, remote
from tools import server_process

SHARED = Path(__file__).resolve().parents[2] / "shared"
OFFICIAL_SPECS = {
    "7.0": SHARED / "tams-spec/api/TimeAddressableMediaStore.yaml",
    "8.2": SHARED / "tams-spec-8.2/api/TimeAddressableMediaStore.yaml",
}
OFFICIAL_SPEC = OFFICIAL_SPECS["7.0"]
EVERY_COMBINATION = os.environ.get("TAMS_TEST_ALL_SPECS", "") not in ("", "0")
SUITE_DIR = Path(contract_tests.__file__).resolve().parent / "tests"
TOKEN = "tams_contract-suite-token"
RUN_TIMEOUT_S = 600
LONG = os.environ.get("TAMS_TEST_LONG", "") not in ("", "0")
# The default run keeps within its time budget with fewer examples; the fault proof shows what the
# suite finds at its default budget, and TAMS_TEST_LONG=1 runs these at it too.
IN_PROCESS_BUDGET = "1" if LONG else "0.5"
REMOTE_BUDGET = "1" if LONG else "0.3"
# How many operations may stay "not reached" on our server in process (none: each one is walked).
MAX_NOT_REACHED = {"7.0": 0, "8.2": 0}


def _env() -> dict[str, str]:
    """The environment without any TAMS_* setting that could point the suite or server elsewhere,
    and with this checkout importable (``-p contract_tests.plugin`` is loaded before collection)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
    root = str(Path(contract_tests.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), root) if p)
    return env


def _spec_args(option: str, version: str = "7.0") -> list[str]:
    """The official spec of ``version`` as the oracle when it is here, else our own of that version."""
    official = OFFICIAL_SPECS[version]
    if official.is_file():
        return [option, str(official)]
    return ["--tams-version" if option == "--tams-spec" else "--api-version", version]


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


def _failures(path: Path, each: int = 4000) -> str:
    """What each failed or erred test of a JUnit report said (a run's tail shows only its summary)."""
    if not path.is_file():
        return f"(no report at {path})"
    found = []
    for case in ET.parse(path).getroot().iter("testcase"):
        for problem in [*case.findall("failure"), *case.findall("error")]:
            text = (problem.get("message") or "") + "\n" + (problem.text or "")
            found.append(f"--- {case.get('name')}\n{text.strip()[-each:]}")
    return "\n".join(found)


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


# --------------------------------------------------------------------------- a real server process


class Server:
    """A real server serving every version, 8.2 at the root and 7.0 at ``/v7.0``."""

    def __init__(self, root: str, log: Path) -> None:
        self.root = root
        self.url = f"{root}/v7.0"  # the 7.0 API, for the tests written for it
        self.log = log

    def at(self, version: str) -> str:
        return self.root if version == "8.2" else f"{self.root}/v{version}"

    def requests_since(self, offset: int) -> list[str]:
        """Methods of the requests in the access log written after ``offset`` bytes."""
        text = self.log.read_bytes()[offset:].decode(errors="replace")
        return re.findall(r'"(GET|HEAD|PUT|POST|DELETE|PATCH|OPTIONS) [^"]* HTTP/1\.[01]"', text)

    def log_since(self, offset: int) -> str:
        return self.log.read_bytes()[offset:].decode(errors="replace")

    def log_size(self) -> int:
        return self.log.stat().st_size

    def inventory(self) -> dict[str, Any]:
        """What the store holds, as the API lists it: flows, sources, webhooks (every version's
        registrations), deletion requests and storage backends."""
        listed: dict[str, Any] = {}
        with httpx.Client(base_url=self.root, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
            for path in (
                "/flows",
                "/sources",
                "/service/webhooks",
                "/flow-delete-requests",
                "/service/storage-backends",
            ):
                items, url = [], f"{path}?limit=1000"
                while url:
                    response = api.get(url)
                    assert response.status_code == 200, response.text
                    items += response.json()
                    key = response.headers.get("x-paging-nextkey")
                    url = f"{path}?limit=1000&page={key}" if key else ""
                listed[path] = sorted(json.dumps(item, sort_keys=True) for item in items)
        return listed


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("conformance-server")
    log = work / "server.log"
    env = {
        **_env(),
        "TAMS_ADMIN_TOKEN": TOKEN,
        "TAMS_DATA_DIR": str(work / "data"),
        # The suite registers receivers on a closed loopback port only: let it, to check webhooks.
        "TAMS_WEBHOOKS_ALLOW_PRIVATE": "true",
    }
    with server_process.running(["--log-level", "info"], env, log=log, cwd=work) as url:
        yield Server(url, log)


@pytest.mark.parametrize(
    "version",
    [
        "8.2",
        pytest.param(
            "7.0",
            marks=pytest.mark.skipif(
                not EVERY_COMBINATION,
                reason="7.0 over HTTP runs in the read-only, failing and divergence runs (the full run: "
                "TAMS_TEST_ALL_SPECS=1); in process it runs on memory",
            ),
        ),
    ],
)
def test_tams_conformance_passes_against_a_real_server(version: str, server: Server, tmp_path: Path) -> None:
    """The full run over HTTP, as a user runs it: 8.2 with the version taken from the server's
    ``/service`` (our spec), 7.0 with the official spec when it is here. Nothing is left behind."""
    report = tmp_path / "report.xml"
    before = server.inventory()
    command = [*_conformance_command(), "--url", server.at(version), "--token", TOKEN, "--junitxml", str(report)]
    # Fewer examples over HTTP: the in-process runs check our server's behaviour; this run is about
    # the tool as a user runs it (pre-flight, versions, verdicts, report, cleanup).
    command += ["--budget", REMOTE_BUDGET]
    done = _run(command + (_spec_args("--spec", version) if version == "7.0" else []), tmp_path)
    assert done.returncode == 0, _tail(done)
    counts, names = _junit(report)
    assert counts["failures"] == counts["errors"] == 0
    assert counts["tests"] > 80
    assert all("[remote" in n for n in names)
    assert f"tested as TAMS {version}" in done.stdout
    # Progress (one line per test), then the verdicts; a JSON report beside the JUnit file.
    assert "test_differential_against_reference[remote] PASSED" in done.stdout
    assert "TAMS conformance by operation" in done.stdout
    assert re.search(r"^PUT /flows/\{flowId\}\s+passed\s", done.stdout, re.M), _tail(done)
    results = json.loads(report.with_suffix(".json").read_text())
    assert results["exit_code"] == 0
    assert results["targets"]["remote"]["operations"]["PUT /flows/{flowId}"]["verdict"] == "passed"
    # Everything the suite created is gone again (profiles excepted: 8.2 has no way to delete one).
    assert server.inventory() == before


def _cannot_test(command: list[str], cwd: Path) -> str:
    """Run a command that must stop before testing: exit 2 and one sentence on stderr."""
    done = _run(command, cwd)
    assert done.returncode == 2, _tail(done)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ERROR: cannot test "), _tail(done)
    assert "Traceback" not in done.stdout + done.stderr
    return lines[0]


def _preflight_sentence(url: str, token: str | None = TOKEN) -> str:
    """What the pre-flight says of ``url`` (the sentence ``tams-conformance`` prints before exit 2)."""
    credentials = Credentials(token=token)
    target = remote(url, credentials, timeout=5)
    try:
        preflight.run(target.http, credentials.given)
    except CannotTest as exc:
        return str(exc)
    finally:
        target.close()
    raise AssertionError(f"the pre-flight accepted {url}")


def test_a_target_that_cannot_be_tested_gets_one_sentence_and_exit_code_2(server: Server, tmp_path: Path) -> None:
    # As a user sees it: the command stops with one sentence and exit code 2.
    wrong_token = _cannot_test([*_conformance_command(), "--url", server.root, "--token", "not-valid"], tmp_path)
    assert "refused the credentials" in wrong_token
    # The other cases, by the same pre-flight.
    assert "needs credentials" in _preflight_sentence(server.root, None)
    assert f"use --url {server.root}/v7.0" in _preflight_sentence(f"{server.root}/v7.0/flows")
    assert "cannot connect" in _preflight_sentence(f"http://127.0.0.1:{server_process.free_port()}")
    (tmp_path / "index.html").write_text("<html>not TAMS</html>")
    port = server_process.free_port()
    other = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert "not a TAMS API" in _preflight_sentence(f"http://127.0.0.1:{port}")
    finally:
        other.terminate()
        other.wait(timeout=10)


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
    allocated = api.post(f"/flows/{flow_id}/storage", json={"limit": segments})
    assert allocated.status_code == 201, allocated.text
    objects = [o["object_id"] for o in allocated.json()["media_objects"]]
    bulk = [{"object_id": o, "timerange": f"[{i}:0_{i + 1}:0)"} for i, o in enumerate(objects)]
    assert api.post(f"/flows/{flow_id}/segments", json=bulk).status_code == 201
    return flow_id


def _segments(api: httpx.Client, flow_id: str) -> Any:
    """A flow's segments without get_urls (presigned URLs change with the time they are made)."""
    return api.get(f"/flows/{flow_id}/segments", params={"accept_get_urls": ""}).json()


def test_read_only_mode_sends_only_get_and_head(server: Server, tmp_path: Path) -> None:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        existing = [_existing_flow(api, 40), _existing_flow(api, 3)]
        before = {f: _segments(api, f) for f in existing}
    offset = server.log_size()
    command = [*_conformance_command(), "--url", server.url, "--token", TOKEN, "--read-only"]
    done = _run([*command, "--junitxml", str(tmp_path / "ro.xml"), "-q"], tmp_path)
    assert done.returncode == 0, _tail(done)
    time.sleep(0.2)  # let the access log catch up
    methods = server.requests_since(offset)
    assert len(methods) > 50, f"only {len(methods)} requests seen in the server log"
    assert set(methods) <= {"GET", "HEAD"}, sorted(set(methods))
    assert re.search(r"^PUT /flows/\{flowId\}\s+not reached", done.stdout, re.M), _tail(done)
    # The flows already in the store were read (their segment timelines checked) and left as they were.
    for flow_id in existing:
        assert f"/flows/{flow_id}/segments?reverse_order=true" in server.log_since(offset)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        assert {f: _segments(api, f) for f in existing} == before
        for flow_id in existing:
            assert api.delete(f"/flows/{flow_id}").status_code == 204


def _spec_without_201_for_flow_put(tmp_path: Path) -> Path:
    """Our 7.0 spec, altered so that a correct server fails it: PUT /flows/{flowId} declares no 201."""
    import yaml

    import spec

    folder = tmp_path / "altered-spec"
    shutil.copytree(spec.spec_path("7.0").parent, folder)
    path = folder / spec.SPEC_FILE_NAME
    document = yaml.safe_load(path.read_text())
    responses = document["paths"]["/flows/{flowId}"]["put"]["responses"]
    responses["200"] = responses.pop("201")
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_failures_exit_non_zero_and_known_divergences_turn_them_into_xfails(server: Server, tmp_path: Path) -> None:
    altered = _spec_without_201_for_flow_put(tmp_path)
    failing = [
        *_conformance_command(),
        "--url",
        server.url,
        "--token",
        TOKEN,
        "--spec",
        str(altered),
        "-k",
        "segment_timeline",
        "--no-shrink",
    ]
    done = _run([*failing, "--junitxml", str(tmp_path / "fail.xml"), "-q"], tmp_path)
    assert done.returncode == 1, _tail(done)
    assert re.search(r"^PUT /flows/\{flowId\}\s+FAILED", done.stdout, re.M), _tail(done)
    # The failure says what it breaks, and stays short (no whole bodies on one line).
    assert re.search(r"^\s+breaks: the spec's response declaration", done.stdout, re.M), _tail(done)
    results = json.loads((tmp_path / "fail.json").read_text())
    flow_put = results["targets"]["remote"]["operations"]["PUT /flows/{flowId}"]
    assert flow_put["verdict"] == "FAILED" and results["exit_code"] == 1
    assert "201" in flow_put["first_failure"] and len(flow_put["first_failure"]) <= 160

    divergences = tmp_path / "divergences.toml"
    divergences.write_text(
        '[[divergence]]\noperation = "PUT /flows/{flowId}"\nreason = "this deployment answers 201 on creation"\n'
    )
    done = _run(
        [*failing, "--divergences", str(divergences), "--junitxml", str(tmp_path / "xfail.xml"), "-q"], tmp_path
    )
    assert done.returncode == 0, _tail(done)
    assert "known divergence: this deployment answers 201 on creation" in done.stdout
    assert re.search(r"^PUT /flows/\{flowId\}\s+xfail", done.stdout, re.M), _tail(done)


def _in_process_backends(version: str) -> list[str]:
    """The newest version on every backend; 7.0 on the first (every one with TAMS_TEST_ALL_SPECS=1):
    the backends store one superset, and the versions differ above them."""
    names = list(backends.available())
    return names if version == "8.2" or EVERY_COMBINATION else names[:1]


class Background:
    """A command started now and collected later, so that the in-process runs of both versions
    use the second core while the tests against a real server run."""

    def __init__(self, command: list[str], cwd: Path) -> None:
        self.command = command
        self.out = (cwd / "stdout").open("w+")
        self.err = (cwd / "stderr").open("w+")
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, cwd=cwd, env=_env(), stdout=self.out, stderr=self.err, text=True)

    def result(self) -> subprocess.CompletedProcess[str]:
        code = self.process.wait(timeout=RUN_TIMEOUT_S)
        print(f"{' '.join(self.command[:3])} ... took {time.monotonic() - self.started:.1f} s (exit {code})")
        self.out.seek(0)
        self.err.seek(0)
        return subprocess.CompletedProcess(self.command, code, self.out.read(), self.err.read())


class InProcessRuns:
    """The suite in process, one run per version, each started once (see ``Background``)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.runs: dict[str, tuple[Background, Path]] = {}

    def start(self, version: str) -> tuple[Background, Path]:
        if version not in self.runs:
            work = self.tmp_path_factory.mktemp(f"in-process-{version}")
            command = [
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
                str(work / "in-process.xml"),
                "--tams-json-report",
                str(work / "in-process.json"),
                *[arg for name in _in_process_backends(version) for arg in ("--tams-backend", name)],
                "--tams-budget",
                IN_PROCESS_BUDGET,
                *_spec_args("--tams-spec", version),
                *_real_service_options(),
            ]
            self.runs[version] = (Background(command, work), work)
        return self.runs[version]


@pytest.fixture(scope="module", autouse=True)
def in_process_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessRuns]:
    """In one process, the selected versions' runs start when this module starts, so they use the
    second core while the tests against a real server run. Under pytest-xdist every worker runs
    this fixture but only one runs each version's test (and the other cores are busy anyway): there
    a run starts when its test asks for it."""
    runs = InProcessRuns(tmp_path_factory)
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        selected = {item.name for item in request.session.items}
        for version in ("8.2", "7.0"):
            if f"test_the_suite_passes_in_process_on_every_backend[{version}]" in selected:
                runs.start(version)
    yield runs
    for run, _ in runs.runs.values():
        if run.process.poll() is None:
            run.process.kill()


# Last in this module: the runs above have had the other tests' time to finish.
@pytest.mark.parametrize("version", ["8.2", "7.0"])
def test_the_suite_passes_in_process_on_every_backend(version: str, in_process_runs: InProcessRuns) -> None:
    run, work = in_process_runs.start(version)
    done = run.result()
    assert done.returncode == 0, _tail(done) + "\n" + _failures(work / "in-process.xml")
    counts, names = _junit(work / "in-process.xml")
    assert counts["failures"] == counts["errors"] == 0
    assert f"tested as TAMS {version}" in done.stdout
    results = json.loads((work / "in-process.json").read_text())
    assert results["exit_code"] == 0
    for backend in _in_process_backends(version):
        ran = [n for n in names if f"[{backend}" in n]
        assert len(ran) > 70, f"backend {backend}: only {len(ran)} tests ran"
        verdicts = results["targets"][backend]["verdicts"]
        # Our server must pass every operation some check exercised successfully: none failed,
        # none looked unimplemented, none was left to fuzzing alone.
        assert set(verdicts) <= {"passed", "not reached"}, (backend, verdicts)
        assert verdicts.get("not reached", 0) <= MAX_NOT_REACHED[version], (backend, verdicts)
