"""pytest plugin of the TAMS conformance suite: options, targets, divergences, the operation table.

Load it with ``-p contract_tests.plugin`` (``tams-conformance`` does) and collect the suite's tests
with ``--pyargs contract_tests.tests``. The target is chosen by options:

* ``--tams-url URL`` (+ ``--tams-token`` or ``--tams-user``/``--tams-password``): a running server;
* ``--tams-backend NAME`` (repeatable): an in-process tams-server app on that backend; with neither
  option, every backend the server's registry knows (``backends.available()``).

Every test id carries the target (``[memory]``, ``[remote]``), and at the end a table shows, per
target and operation, how many tests that exercised it passed, failed or were skipped.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from contract_tests import divergences as divergence_file
from contract_tests import inprocess
from contract_tests import spec as spec_module
from contract_tests.errors import ContractFailure
from contract_tests.errors import find as find_failure
from contract_tests.suite import Context, SuiteConfig
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
    group.addoption("--tams-read-only", action="store_true", help="send only GET and HEAD (safe for production)")
    group.addoption("--tams-divergences", default=None, help="TOML file of known divergences (see README)")
    group.addoption("--tams-budget", type=float, default=1.0, help="scale every check's number of examples")
    group.addoption("--tams-thorough", "--thorough", action="store_true", help="run long (20x examples)")
    group.addoption("--tams-timeout", type=float, default=30.0, help="HTTP timeout in seconds")


def pytest_configure(config: pytest.Config) -> None:
    opt = config.getoption
    config.stash[_STATE] = _State(
        suite=SuiteConfig(
            budget=opt("--tams-budget"),
            thorough=opt("--tams-thorough"),
            read_only=opt("--tams-read-only"),
            remote=bool(opt("--tams-url")),
        ),
        divergences=divergence_file.load(opt("--tams-divergences")),
    )


class _State:
    def __init__(self, suite: SuiteConfig, divergences: list[divergence_file.Divergence]) -> None:
        self.suite = suite
        self.divergences = divergences
        self.table: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
        self.targets: dict[str, Target] = {}
        self.service: dict[str, Any] = {}
        self.started = time.monotonic()


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
    return spec_module.load(config.getoption("--tams-spec"))


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
        credentials = Credentials(
            config.getoption("--tams-token"), config.getoption("--tams-user"), config.getoption("--tams-password")
        )
        target = remote(config.getoption("--tams-url"), credentials, config.getoption("--tams-timeout"))
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
    api = tams_target.api(tams_spec, read_only=tams_config.read_only)
    factory = None if tams_oracle is None else (lambda: tams_oracle.api(None))
    return Context(api, tams_config, factory)


@pytest.fixture
def tams_writable(tams_config: SuiteConfig) -> None:
    if tams_config.read_only:
        pytest.skip("read-only mode: this check creates and deletes data")


@pytest.fixture(scope="session")
def tams_fuzzer(tams_target: Target, tams_spec: spec_module.Spec, tams_config: SuiteConfig) -> Iterator[Any]:
    from contract_tests.fuzz import Fuzzer

    ctx = Context(tams_target.api(tams_spec, read_only=tams_config.read_only), tams_config)
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


def _tally(item: pytest.Item, report: pytest.TestReport) -> None:
    state = item.config.stash[_STATE]
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("tams_target", "?") if callspec else "?"
    operations: set[str] = set()
    label = _operation_param(item)
    if label:
        operations.add(label)
    context = getattr(item, "funcargs", {}).get("tams_context")
    if context is not None:
        operations |= set(context.api.hits)
    failure = item.stash.get(_FAILURE, None)
    if hasattr(report, "wasxfail"):
        kind = "xfailed"
    elif report.failed:
        kind = "failed"
    elif report.skipped:
        kind = "skipped"
    else:
        kind = "passed"
    rows = state.table[target]
    if kind in ("failed", "xfailed"):
        blamed = failure.operation if failure is not None and failure.operation else UNBLAMED
        rows[blamed][kind] += 1
        # The other operations the test exercised worked as far as it went.
        for op in operations - {blamed}:
            rows[op]["passed"] += 1
        return
    for op in operations:
        rows[op][kind] += 1


UNBLAMED = "(not tied to one operation)"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or not state.table:
        return
    spec = _spec(config)
    tr = terminalreporter
    tr.section("TAMS conformance by operation")
    tr.write_line(f"oracle spec: {spec.path} (TAMS {spec.version})")
    for target, rows in sorted(state.table.items()):
        info = state.service.get(target, {})
        where = state.targets[target].base_url if target in state.targets else ""
        tr.write_line("")
        tr.write_line(
            f"target {target} {where}  service: {info.get('type', '?')} api_version {info.get('api_version', '?')}"
        )
        width = max(len(op.label) for op in spec.operations) + 2
        tr.write_line(f"{'operation':<{width}}{'result':<9}{'passed':>7}{'failed':>7}{'xfail':>7}{'skipped':>8}")
        totals: Counter[str] = Counter()
        labels = [op.label for op in spec.operations] + sorted(set(rows) - {op.label for op in spec.operations})
        for label in labels:
            counts = rows.get(label, Counter())
            if counts["failed"]:
                result = "FAILED"
            elif counts["passed"]:
                result = "passed"
            elif counts["xfailed"]:
                result = "xfail"
            else:
                result = "skipped"
            totals[result] += 1
            line = (
                f"{label:<{width}}{result:<9}{counts['passed']:>7}{counts['failed']:>7}"
                f"{counts['xfailed']:>7}{counts['skipped']:>8}"
            )
            tr.write_line(line, red=result == "FAILED", green=result == "passed", yellow=result in ("xfail", "skipped"))
        tr.write_line(
            f"operations: {totals['passed']} passed, {totals['FAILED']} failed, "
            f"{totals['xfail']} xfail, {totals['skipped']} skipped"
        )
