"""pytest plugin of the TAMS conformance suite: options, targets, divergences, the operation table.

Load it with ``-p contract_tests.plugin`` (``tams-conformance`` does) and collect the suite's tests
with ``--pyargs contract_tests.tests``. The target is chosen by options:

* ``--tams-url URL`` (+ ``--tams-token`` or ``--tams-user``/``--tams-password``): a running server;
* ``--tams-backend NAME`` (repeatable): an in-process tams-server app on that backend; with neither
  option, every backend the server's registry knows (``backends.available()``).

The version tested is the oracle spec's (``--tams-spec``), else ``--tams-version`` (a spec shipped
with tams-server), else, for a URL, the nearest version to the ``api_version`` the server reports
(see ``preflight``). A URL is pre-flighted before any test: when it cannot be tested the run stops
with one sentence (exit code 4 from pytest, 2 from ``tams-conformance``).

Every test id carries the target (``[memory]``, ``[remote]``), and at the end a table shows, per
target and operation, its verdict (see ``verdicts``), the checks that covered it and the first
failure; then the warnings; a JSON report (``--tams-json-report``) holds the same.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from contract_tests import divergences as divergence_file
from contract_tests import inprocess, preflight, verdicts
from contract_tests import spec as spec_module
from contract_tests.errors import CannotTest, ContractFailure
from contract_tests.errors import find as find_failure
from contract_tests.suite import Context, SuiteConfig, version_tuple
from contract_tests.target import Credentials, Target, in_process, remote

_OPERATIONS = pytest.StashKey[list[str]]()
_FAILURE = pytest.StashKey[ContractFailure]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tams-conformance", "TAMS conformance suite (contract_tests)")
    env = os.environ.get
    group.addoption("--tams-url", default=env("TAMS_URL"), help="test the TAMS server at this URL")
    group.addoption("--tams-token", default=env("TAMS_TOKEN"), help="bearer token for --tams-url")
    group.addoption("--tams-user", default=env("TAMS_USER"), help="basic-auth user for --tams-url")
    group.addoption("--tams-password", default=env("TAMS_PASSWORD"), help="basic-auth password for --tams-url")
    group.addoption(
        "--tams-backend",
        action="append",
        default=[],
        help="test an in-process tams-server on this backend (repeatable; default: every registered backend)",
    )
    group.addoption(
        "--tams-backend-options",
        default=None,
        help='JSON object of options per in-process backend, e.g. \'{"vast": {"endpoint": "..."}}\'',
    )
    group.addoption(
        "--tams-spec",
        default=None,
        help="oracle spec file (the official TimeAddressableMediaStore.yaml); default: the one shipped",
    )
    group.addoption(
        "--tams-version",
        default=None,
        help="test as this TAMS version (a spec shipped with tams-server); default: --tams-spec's, "
        "else the nearest to the server's api_version, else the newest",
    )
    group.addoption("--tams-strict", action="store_true", help="warnings (recommendations) fail like MUSTs")
    group.addoption("--tams-no-shrink", action="store_true", help="report failures as found, without shrinking")
    group.addoption(
        "--tams-shrink-budget", type=float, default=30.0, help="seconds to spend shrinking one failure (%(default)s)"
    )
    group.addoption("--tams-json-report", default=None, help="write the verdicts and warnings as JSON here")
    group.addoption("--tams-read-only", action="store_true", help="send only GET and HEAD (safe for production)")
    group.addoption("--tams-divergences", default=None, help="TOML file of known divergences (see README)")
    group.addoption("--tams-budget", type=float, default=1.0, help="scale every check's number of examples")
    group.addoption("--tams-thorough", "--thorough", action="store_true", help="run long (20x examples)")
    group.addoption("--tams-timeout", type=float, default=30.0, help="HTTP timeout in seconds")


def pytest_configure(config: pytest.Config) -> None:
    opt = config.getoption
    notes: list[str] = []
    server_version = None
    if opt("--tams-url"):
        found = _preflight(config)
        server_version = found.api_version
    spec_path = _choose_spec(config, server_version, notes)
    spec = spec_module.load(spec_path)
    if server_version and server_version != spec.version:
        notes.append(_version_note(server_version, spec.version))
    config.stash[_STATE] = _State(
        suite=SuiteConfig(
            budget=opt("--tams-budget"),
            thorough=opt("--tams-thorough"),
            read_only=opt("--tams-read-only"),
            remote=bool(opt("--tams-url")),
            shrink=not opt("--tams-no-shrink"),
            shrink_budget_s=opt("--tams-shrink-budget"),
            strict=opt("--tams-strict"),
            version=spec.version,
            server_version=server_version,
        ),
        divergences=divergence_file.load(opt("--tams-divergences")),
        spec_path=spec_path,
        notes=notes,
    )


def _version_note(server: str, tested: str) -> str:
    said = f"the server reports api_version {server}; it is tested as TAMS {tested}"
    if not spec_module.same_major(server, tested):
        return f"{said}, another major version: expect failures"
    if version_tuple(server) < version_tuple(tested):
        return f"{said}; checks of what came after {server} are skipped"
    return f"{said}; what came after {tested} is not checked"


def _credentials(config: pytest.Config) -> Credentials:
    opt = config.getoption
    return Credentials(opt("--tams-token"), opt("--tams-user"), opt("--tams-password"))


def _preflight(config: pytest.Config) -> preflight.Preflight:
    """Stop before any test, with one sentence, when the URL cannot be tested."""
    target = remote(config.getoption("--tams-url"), _credentials(config), config.getoption("--tams-timeout"))
    try:
        return preflight.run(target.http, target.credentials.given)
    except CannotTest as exc:
        raise pytest.UsageError(f"cannot test {target.base_url}: {exc}") from None
    finally:
        target.close()


def _choose_spec(config: pytest.Config, server_version: str | None, notes: list[str]) -> str | None:
    """The oracle spec file: given, or shipped for the chosen version (None: the newest shipped)."""
    given = config.getoption("--tams-spec")
    if given:
        return given
    known = spec_module.shipped_versions()
    wanted = config.getoption("--tams-version")
    if wanted:
        if wanted not in known:
            raise pytest.UsageError(f"--tams-version {wanted}: the suite knows TAMS {', '.join(known)}")
        return str(spec_module.shipped_spec(wanted))
    chosen = preflight.nearest(server_version, known)
    if server_version and chosen != server_version:
        notes.append(f"the suite knows TAMS {', '.join(known)}: {chosen} is the nearest to {server_version}")
    return str(spec_module.shipped_spec(chosen))


class _State:
    def __init__(
        self,
        suite: SuiteConfig,
        divergences: list[divergence_file.Divergence],
        spec_path: str | None,
        notes: list[str],
    ) -> None:
        self.suite = suite
        self.divergences = divergences
        self.spec_path = spec_path
        self.notes = notes
        self.records: dict[str, verdicts.TargetRecord] = defaultdict(verdicts.TargetRecord)
        self.targets: dict[str, Target] = {}
        self.service: dict[str, Any] = {}


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(_STATE, None)
    if state is None:
        return []
    spec = _spec(config)
    lines = [f"tams-conformance: testing as TAMS {spec.version} (oracle spec {spec.path})"]
    return lines + [f"tams-conformance: {note}" for note in state.notes]


_STATE = pytest.StashKey[_State]()


def _target_ids(config: pytest.Config) -> list[str]:
    ids = ["remote"] if config.getoption("--tams-url") else []
    backends = config.getoption("--tams-backend")
    if backends:
        ids += backends
    elif not ids:
        ids = inprocess.available_backends() if inprocess.server_available() else []
    return ids


def _spec(config: pytest.Config) -> spec_module.Spec:
    return spec_module.load(config.stash[_STATE].spec_path)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "tams_target" in metafunc.fixturenames:
        ids = _target_ids(metafunc.config)
        metafunc.parametrize("tams_target", ids, indirect=True, ids=ids, scope="session")
    if "tams_operation" in metafunc.fixturenames:
        labels = [op.label for op in _spec(metafunc.config).operations]
        metafunc.parametrize("tams_operation", labels, ids=labels)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[_STATE]
    for item in items:
        for d in state.divergences:
            if d.mode == "skip" and d.matches(item.name, _operation_param(item), None):
                item.add_marker(pytest.mark.skip(reason=f"known divergence: {d.reason}"))


def _operation_param(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("tams_operation") if callspec else None


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tams_spec(pytestconfig: pytest.Config) -> spec_module.Spec:
    return _spec(pytestconfig)


@pytest.fixture(scope="session")
def tams_config(pytestconfig: pytest.Config) -> SuiteConfig:
    return pytestconfig.stash[_STATE].suite


@pytest.fixture(scope="session")
def tams_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    config = request.config
    name = request.param
    if name == "remote":
        target = remote(config.getoption("--tams-url"), _credentials(config), config.getoption("--tams-timeout"))
    else:
        options = json.loads(config.getoption("--tams-backend-options") or "{}").get(name)
        target = in_process(name, options, version=_spec(config).version)
    state = config.stash[_STATE]
    state.targets[name] = target
    try:
        service = target.http.get("/service")
        state.service[name] = service.json() if service.status_code == 200 else {"status": service.status_code}
    except Exception as exc:  # the table header is informative only
        state.service[name] = {"error": repr(exc)}
    yield target
    target.close()


@pytest.fixture(scope="session")
def tams_oracle(pytestconfig: pytest.Config) -> Iterator[Target | None]:
    """The reference model: our in-memory backend, in process (None when tams-server is not installed)."""
    if not inprocess.server_available():
        yield None
        return
    oracle = in_process("memory", name="oracle", version=_spec(pytestconfig).version)
    yield oracle
    oracle.close()


@pytest.fixture
def tams_context(
    tams_target: Target, tams_spec: spec_module.Spec, tams_config: SuiteConfig, tams_oracle: Target | None
) -> Context:
    api = tams_target.api(tams_spec, read_only=tams_config.read_only, strict=tams_config.strict)
    factory = None if tams_oracle is None else (lambda: tams_oracle.api(None))
    return Context(api, tams_config, factory)


@pytest.fixture
def tams_writable(tams_config: SuiteConfig) -> None:
    if tams_config.read_only:
        pytest.skip("read-only mode: this check creates and deletes data")


@pytest.fixture(scope="session")
def tams_fuzzer(tams_target: Target, tams_spec: spec_module.Spec, tams_config: SuiteConfig) -> Iterator[Any]:
    from contract_tests.fuzz import Fuzzer

    ctx = Context(tams_target.api(tams_spec, read_only=tams_config.read_only, strict=tams_config.strict), tams_config)
    fuzzer = Fuzzer(ctx, str(tams_spec.path))
    yield fuzzer
    fuzzer.cleanup()


# --------------------------------------------------------------------------- outcomes and the table


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not _is_suite_item(item):
        return
    if call.when == "call" and call.excinfo is not None:
        failure = find_failure(call.excinfo.value)
        if failure is not None:
            item.stash[_FAILURE] = failure
            if report.failed:
                state = item.config.stash[_STATE]
                operation = failure.operation or _operation_param(item)
                found = divergence_file.find(state.divergences, item.name, operation, failure.check)
                if found is not None:
                    report.outcome = "skipped"
                    report.wasxfail = f"known divergence: {found.reason}"
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _tally(item, report)


def _is_suite_item(item: pytest.Item) -> bool:
    return "tams_target" in getattr(item, "fixturenames", ())


def _check_name(item: pytest.Item) -> str:
    name = getattr(item, "originalname", item.name).removeprefix("test_")
    return verdicts.FUZZ_CHECK if name == "fuzz_operation" else name


def _tally(item: pytest.Item, report: pytest.TestReport) -> None:
    state = item.config.stash[_STATE]
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("tams_target", "?") if callspec else "?"
    record = state.records[target]
    check = _check_name(item)
    funcargs = getattr(item, "funcargs", {})
    for source in (funcargs.get("tams_context"), funcargs.get("tams_fuzzer")):
        api = getattr(source, "api", None)
        if api is not None:
            record.observe(check, api.hits, api.warnings)
            api.hits, api.warnings = {}, []  # the fuzzer's Api lives for the session
    label = _operation_param(item)
    if label and report.skipped and not hasattr(report, "wasxfail"):
        record.op(label)  # listed, "not reached"
    if report.failed or hasattr(report, "wasxfail"):
        failure = item.stash.get(_FAILURE, None)
        if failure is not None and failure.operation is None and label:
            failure.operation = label
        record.failed(check, failure, str(report.longrepr or ""), expected=hasattr(report, "wasxfail"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None or not state.records:
        return
    if state.suite.strict and any(r.not_implemented() for r in state.records.values()) and exitstatus == 0:
        session.exitstatus = 1  # strict: an operation the server lacks fails the run
    path = session.config.getoption("--tams-json-report")
    if path:
        info = {
            name: {
                "base_url": state.targets[name].base_url if name in state.targets else None,
                "service": state.service.get(name, {}),
                "tested_as": state.suite.version,
                "notes": state.notes,
            }
            for name in state.records
        }
        verdicts.write_json(path, dict(state.records), info, int(session.exitstatus))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or not state.records:
        return
    spec = _spec(config)
    tr = terminalreporter
    tr.section("TAMS conformance by operation")
    tr.write_line(f"tested as TAMS {spec.version}; oracle spec: {spec.path}")
    for note in state.notes:
        tr.write_line(f"note: {note}")
    labels = [op.label for op in spec.operations]
    for target, record in sorted(state.records.items()):
        info = state.service.get(target, {})
        where = state.targets[target].base_url if target in state.targets else ""
        tr.write_line("")
        tr.write_line(
            f"target {target} {where}  service: {info.get('type', '?')} api_version {info.get('api_version', '?')}"
        )
        for line, verdict in verdicts.table_lines(labels, record):
            tr.write_line(
                line,
                red=verdict == verdicts.FAILED,
                green=verdict == verdicts.PASSED,
                yellow=verdict in (verdicts.NOT_IMPLEMENTED, verdicts.SCHEMA_ONLY, verdicts.NOT_REACHED),
            )
    warned = {t: verdicts.warning_lines(r) for t, r in state.records.items()}
    not_implemented = {t: r.not_implemented() for t, r in state.records.items()}
    if any(warned.values()) or any(not_implemented.values()):
        tr.section("TAMS conformance warnings (what the spec recommends; --strict makes them failures)")
        for target in sorted(warned):
            for label in not_implemented[target]:
                tr.write_line(f"{target}: {label}: answered only 404/405/501 (not implemented)", yellow=True)
            for line in warned[target]:
                tr.write_line(f"{target}: {line}", yellow=True)
