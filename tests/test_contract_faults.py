"""Proof that the conformance suite finds bugs: each deliberate fault must make it fail.

The faults live here and nowhere else: each is an in-process monkeypatch of server internals,
applied only while its context manager is open and only to requests served by the target's own
backend (the oracle, a second in-process app in the same interpreter, stays correct). No setting,
option or environment variable of the server can switch them on.

For each fault the suite runs in its usual order (properties checked by brute force, the stateful
differential model, schemathesis fuzzing) until the first check fails; with ``TAMS_TEST_LONG=1`` the
differential model then runs alone, to show it finds every fault by itself too. The times are printed at the end of the
run (``tams contract faults`` sections) and recorded in the JUnit properties.

Beyond finding each fault:

* an operation that answers 404 to everything never gets the verdict ``passed`` (the verdicts are
  computed from what the checks sent, as the plugin computes them);
* a server that reports another ``api_version`` (8.1, 9.0) is still tested: the differential model
  runs on and finds a real fault;
* the 8.2 faults (``FAULTS_V8``: ``sort_by`` ignored, any-of tag filters read as one value, webhook
  DELETE by id ignored, ``min_object_timeout`` missing) are found by the 8.2 checks of
  ``contract_tests.checks_v8``, on an 8.2 target tested with the 8.2 spec.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import handlers._params
import spec as shipped_specs
import tams_server.app
from backends import rules
from backends.base import ListingOrder, TagFilter
from backends.memory import flows as memory_flows
from backends.memory import objects as memory_objects
from backends.memory import profiles as memory_profiles
from backends.memory import segments as memory_segments
from backends.timerange import TimeRange
from contract_tests import checks, checks_v8, differential, verdicts, walkthrough
from contract_tests import spec as contract_spec
from contract_tests.errors import ContractFailure
from contract_tests.errors import find as find_failure
from contract_tests.fuzz import Fuzzer
from contract_tests.suite import Context, SuiteConfig
from contract_tests.target import Target, in_process
from handlers.versions.dialect import Dialect
from tams_server import context

OFFICIAL_SPEC = Path(__file__).resolve().parents[2] / "shared/tams-spec/api/TimeAddressableMediaStore.yaml"
OFFICIAL_SPEC_V8 = Path(__file__).resolve().parents[2] / "shared/tams-spec-8.2/api/TimeAddressableMediaStore.yaml"
# Give up on a fault after this long (the suite must find each one well within it).
FAULT_BUDGET_S = 120.0
FOUND: dict[str, tuple[float, str, str]] = {}
LONG = os.environ.get("TAMS_TEST_LONG", "") not in ("", "0")  # the longer proofs
FOUND_BY_MODEL: dict[str, tuple[float, str, str]] = {}


# --------------------------------------------------------------------------- the faults


def _serving(backend: Any) -> bool:
    """Whether the request being handled is one for the faulty target's backend."""
    try:
        return context.backend() is backend
    except LookupError:
        return False


@contextlib.contextmanager
def _patched(owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Iterator[None]:
    """Replace ``owner.name`` by ``make(original)`` until the block ends."""
    own = name in vars(owner)
    original = vars(owner)[name] if own else getattr(owner, name)
    setattr(owner, name, make(getattr(owner, name)))
    try:
        yield
    finally:
        if own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)


@contextlib.contextmanager
def overlap_check_disabled(backend: Any) -> Iterator[None]:
    """Registering a segment no longer looks for segments it overlaps."""
    adding = contextvars.ContextVar("adding", default=False)

    def add_segment(original: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(*args: Any, **kwargs: Any) -> Any:
            token = adding.set(True)
            try:
                return original(*args, **kwargs)
            finally:
                adding.reset(token)

        return faulty

    def overlapping(original: Callable[..., Any]) -> Callable[..., Any]:
        return lambda segments, query: range(0) if adding.get() else original(segments, query)

    # Every module that looks ``_overlapping`` up (the memory backend's resources import it from its core).
    with (
        _patched(backend, "_add_segment", add_segment),
        _patched(memory_segments, "_overlapping", overlapping),
        _patched(memory_flows, "_overlapping", overlapping),
    ):
        yield


@contextlib.contextmanager
def exclusive_end_ignored(backend: Any) -> Iterator[None]:
    """The backend's time maths treats every segment end as inclusive (``[0:0_10:0)`` as ``[0:0_10:0]``)."""

    def segment_keys(original: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(timerange: TimeRange) -> Any:
            if _serving(backend) and timerange.end is not None:
                timerange = TimeRange(
                    timerange.start, timerange.end, include_start=timerange.include_start, include_end=True
                )
            return original(timerange)

        return faulty

    with _patched(memory_segments, "_segment_keys", segment_keys):
        yield


def _without_last_page(list_page: Callable[[Any], Any]) -> Any:
    """Call ``list_page(page_key)``; hide the next page when it is the last one."""
    result = list_page(None)
    if result.next_key is not None and list_page(result.next_key).next_key is None:
        result.next_key = None
    return result


@contextlib.contextmanager
def last_page_dropped(backend: Any) -> Iterator[None]:
    """A page followed only by the last page says it is the last one (so the last is never read)."""

    def list_segments(original: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(flow_id: str, query: Any, urls: Any, page: Any) -> Any:
            return _without_last_page(
                lambda key: original(flow_id, query, urls, page if key is None else dataclasses.replace(page, page=key))
            )

        return faulty

    def paged(original: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(items: Any, page: Any, key: Any) -> Any:
            if not _serving(backend):
                return original(items, page, key)
            return _without_last_page(
                lambda k: original(items, page if k is None else dataclasses.replace(page, page=k), key)
            )

        return faulty

    with (
        _patched(backend, "list_segments", list_segments),
        _patched(memory_objects, "_paged", paged),
        _patched(memory_profiles, "_paged", paged),
    ):
        yield


@contextlib.contextmanager
def reverse_order_ignored(backend: Any) -> Iterator[None]:
    """Segments always come in ascending order, whatever ``reverse_order`` says."""

    def list_segments(original: Callable[..., Any]) -> Callable[..., Any]:
        return lambda flow_id, query, urls, page: original(
            flow_id, dataclasses.replace(query, reverse_order=False), urls, page
        )

    with _patched(backend, "list_segments", list_segments):
        yield


@contextlib.contextmanager
def read_only_not_enforced(backend: Any) -> Iterator[None]:
    """``read_only`` flows accept every change."""

    def ensure_writable(original: Callable[..., Any]) -> Callable[..., Any]:
        return lambda flow: None if _serving(backend) else original(flow)

    with _patched(rules, "ensure_writable", ensure_writable):
        yield


@contextlib.contextmanager
def source_outlives_its_flows(backend: Any) -> Iterator[None]:
    """Deleting the last flow of a source leaves the source behind."""

    def leave_source(original: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(flow: dict[str, Any]) -> Any:
            remaining = backend._flows_of_source.get(flow["source_id"])
            if remaining == {flow["id"]}:
                remaining.discard(flow["id"])  # ...and the source stays
                return None
            return original(flow)

        return faulty

    with _patched(backend, "_leave_source", leave_source):
        yield


@contextlib.contextmanager
def empty_accept_get_urls_ignored(backend: Any) -> Iterator[None]:
    """``accept_get_urls=`` (empty: no URLs wanted) is read as if it were absent."""

    def csv(original: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(name: str) -> Any:
            value = original(name)
            return None if value == () and name == "accept_get_urls" and _serving(backend) else value

        return faulty

    with _patched(handlers._params, "_csv", csv):
        yield


@contextlib.contextmanager
def head_returns_a_body(backend: Any) -> Iterator[None]:
    """HEAD responses carry the body the GET would have."""

    def drop_body(original: Callable[..., Any]) -> Callable[..., Any]:
        return lambda send: send if _serving(backend) else original(send)

    with _patched(tams_server.app, "_drop_body", drop_body):
        yield


@contextlib.contextmanager
def page_key_on_an_empty_flow_crashes(backend: Any) -> Iterator[None]:
    """The real bug fixed in f0e4e42: a valid page key on a flow without segments gave a 500."""

    def resume(original: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(segments: Any, *args: Any, **kwargs: Any) -> Any:
            if _serving(backend) and not segments:
                raise TypeError("'NoneType' object is not subscriptable")
            return original(segments, *args, **kwargs)

        return faulty

    with _patched(memory_segments, "_resume", resume):
        yield


FAULTS: dict[str, Callable[[Any], contextlib.AbstractContextManager[None]]] = {
    "overlap check disabled": overlap_check_disabled,
    "inclusive/exclusive end ignored": exclusive_end_ignored,
    "last page dropped": last_page_dropped,
    "reverse_order ignored": reverse_order_ignored,
    "read_only not enforced": read_only_not_enforced,
    "source not deleted with its last flow": source_outlives_its_flows,
    "empty accept_get_urls= ignored": empty_accept_get_urls_ignored,
    "HEAD returning a body": head_returns_a_body,
    "page key on a flow without segments: 500": page_key_on_an_empty_flow_crashes,
}


@contextlib.contextmanager
def flow_tags_answer_404(backend: Any) -> Iterator[None]:
    """``GET /flows/{flowId}/tags`` answers 404 to everything (the route is as good as missing)."""
    from starlette.responses import JSONResponse

    route = re.compile(r"^(/v\d+\.\d+)?/flows/[^/]+/tags/?$")

    def call(original: Callable[..., Any]) -> Callable[..., Any]:
        async def faulty(self: Any, scope: Any, receive: Any, send: Any) -> None:
            if (
                self.backend is backend
                and scope.get("type") == "http"
                and scope.get("method") == "GET"
                and route.match(scope.get("path", ""))
            ):
                body = {"type": "NotFound", "summary": "not found", "time": "2024-01-01T00:00:00Z"}
                await JSONResponse(body, status_code=404)(scope, receive, send)
                return
            await original(self, scope, receive, send)

        return faulty

    with _patched(tams_server.app.TamsApp, "__call__", call):
        yield


@contextlib.contextmanager
def api_version_reported_as(backend: Any, version: str) -> Iterator[None]:
    """``/service`` says ``api_version`` is ``version`` (the API served is unchanged)."""

    def service(original: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(self: Any, info: Any) -> Any:
            shown = original(self, info)
            return {**shown, "api_version": version} if _serving(backend) else shown

        return faulty

    with _patched(Dialect, "service", service):
        yield


# 8.2 faults. ``FAULTS_V8`` gives for each the check of ``contract_tests.checks_v8`` that must find it.


@contextlib.contextmanager
def sort_by_ignored(backend: Any) -> Iterator[None]:
    """``/flows`` always lists by ``created`` (newest first), whatever ``sort_by`` says."""

    def list_flows(original: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(query: Any, page: Any) -> Any:
            order = ListingOrder("created", newest_first=True, reverse=query.order.reverse)
            return original(dataclasses.replace(query, order=order), page)

        return faulty

    with _patched(backend, "list_flows", list_flows):
        yield


@contextlib.contextmanager
def any_of_tags_ignored(backend: Any) -> Iterator[None]:
    """``tag.x=a,b`` selects only the value ``a,b`` (the list is not read as any-of)."""

    def tag_filter(original: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(prefix: str = "tag.", exists_prefix: str = "tag_exists.") -> Any:
            found = original(prefix, exists_prefix)
            if not _serving(backend):
                return found
            raw = dict(handlers._params.request.query_params.multi_items())
            equals = {name: frozenset([raw.get(prefix + name, "")]) for name in found.equals}
            return TagFilter(equals, found.exists)

        return faulty

    with _patched(handlers._params, "tag_filter", tag_filter):
        yield


@contextlib.contextmanager
def webhook_delete_ignored(backend: Any) -> Iterator[None]:
    """``DELETE /service/webhooks/{webhookId}`` answers 204 (404 when unknown) but keeps the webhook."""

    def delete_webhook(original: Callable[..., Any]) -> Callable[..., Any]:
        return lambda webhook_id: backend.get_webhook(webhook_id) and None

    with _patched(backend, "delete_webhook", delete_webhook):
        yield


@contextlib.contextmanager
def min_object_timeout_missing(backend: Any) -> Iterator[None]:
    """``/service`` has no ``min_object_timeout`` (required since 8.1)."""

    def service_info(original: Callable[..., Any]) -> Callable[..., Any]:
        return lambda: {k: v for k, v in original().items() if k != "min_object_timeout"}

    with _patched(backend, "service_info", service_info):
        yield


FAULTS_V8: dict[str, tuple[Callable[[Any], contextlib.AbstractContextManager[None]], Callable[[Context], None]]] = {
    "sort_by ignored on /flows": (sort_by_ignored, checks_v8.listing_order),
    "any-of tag filter read as one value": (any_of_tags_ignored, checks_v8.tag_filters),
    "webhook DELETE by id ignored": (webhook_delete_ignored, checks_v8.webhooks_by_id),
    "min_object_timeout missing from /service": (min_object_timeout_missing, checks_v8.service_timeouts),
}


# --------------------------------------------------------------------------- running the suite


def _oracle_spec() -> contract_spec.Spec:
    return contract_spec.load(str(OFFICIAL_SPEC) if OFFICIAL_SPEC.is_file() else None)


@pytest.fixture(scope="module")
def apps() -> Iterator[tuple[Target, Target]]:
    version = _oracle_spec().version
    target, oracle = in_process("memory", version=version), in_process("memory", name="oracle", version=version)
    yield target, oracle
    target.close()
    oracle.close()


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or not FOUND:
        return
    # Printed past output capture, so that every run shows the numbers.
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line("")
        for title, found in (
            ("time for the suite to find each", FOUND),
            ("time for the differential model alone", FOUND_BY_MODEL),
        ):
            reporter.write_sep("-", f"tams contract faults: {title}")
            for name, (seconds, check, detail) in found.items():
                reporter.write_line(f"{name:<40} {seconds:6.2f} s  by {check}: {detail}")


def suite_checks(ctx: Context, spec_path: str) -> list[tuple[str, Callable[[], None]]]:
    """The suite's checks in the order a run performs them."""
    fuzzer = Fuzzer(ctx, spec_path)

    def fuzz_all() -> None:
        try:
            for operation in ctx.api.spec.operations if ctx.api.spec else []:
                if fuzzer.skip_reason(operation.label) is None:
                    fuzzer.run_operation(operation.label)
        finally:
            fuzzer.cleanup()

    return [
        ("segment timeline", lambda: checks.segment_timeline(ctx)),
        ("listing filters", lambda: checks.listing_filters(ctx)),
        ("media round trip", lambda: checks.media_round_trip(ctx)),
        ("read_only", lambda: checks.read_only_enforced(ctx)),
        ("source lifecycle", lambda: checks.source_lifecycle(ctx)),
        ("differential model", lambda: differential.run(ctx, examples=15, steps=25)),
        ("schemathesis", fuzz_all),
    ]


@pytest.mark.parametrize("fault", list(FAULTS))
def test_the_suite_finds_the_fault(
    fault: str, apps: tuple[Target, Target], record_property: Callable[[str, Any], None]
) -> None:
    target, oracle = apps
    spec = _oracle_spec()
    config = SuiteConfig(shrink=False)
    ctx = Context(target.api(spec), config, lambda: oracle.api(None))
    found: tuple[float, str, ContractFailure] | None = None
    started = time.monotonic()
    with FAULTS[fault](target.backend):
        # The whole run again (new random cases) while the budget lasts: a fault only random cases
        # reach may take more than one run.
        while found is None and time.monotonic() - started < FAULT_BUDGET_S:
            for name, check in suite_checks(ctx, str(spec.path)):
                try:
                    check()
                except Exception as exc:
                    failure = find_failure(exc)
                    if failure is None:
                        raise
                    found = (time.monotonic() - started, name, failure)
                    break
                if time.monotonic() - started > FAULT_BUDGET_S:
                    break
    assert found is not None, f"the suite did not find the fault {fault!r} in {time.monotonic() - started:.1f} s"
    seconds, check, failure = found
    FOUND[fault] = (seconds, check, _first_line(failure))
    record_property("seconds_to_find", f"{seconds:.2f}")
    record_property("found_by", check)


@pytest.mark.skipif(
    not LONG,
    reason="the longer proof (the differential model alone finds each fault): TAMS_TEST_LONG=1",
)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_the_reference_model_alone_finds_the_fault(fault: str, apps: tuple[Target, Target]) -> None:
    """The stateful differential model by itself (no property check) also finds each fault."""
    target, oracle = apps
    ctx = Context(target.api(_oracle_spec()), SuiteConfig(shrink=False), lambda: oracle.api(None))
    started = time.monotonic()
    with FAULTS[fault](target.backend):
        while time.monotonic() - started < FAULT_BUDGET_S:
            try:
                differential.run(ctx, examples=15, steps=25)
            except Exception as exc:
                failure = find_failure(exc)
                if failure is None:
                    raise
                FOUND_BY_MODEL[fault] = (time.monotonic() - started, "differential model", _first_line(failure))
                return
    pytest.fail(f"the differential model did not find the fault {fault!r} in {FAULT_BUDGET_S} s")


def _first_line(failure: ContractFailure) -> str:
    return str(failure).splitlines()[0][:140]


def test_without_faults_the_same_checks_pass(apps: tuple[Target, Target]) -> None:
    """The control: the faults are off outside their context, so the target conforms again."""
    target, _ = apps
    ctx = Context(target.api(_oracle_spec()), SuiteConfig(budget=0.3))
    checks.segment_timeline(ctx)
    checks.source_lifecycle(ctx)
    checks.read_only_enforced(ctx)


# --------------------------------------------------------------------------- verdicts


def run_like_the_plugin(ctx: Context, steps: list[tuple[str, Callable[[], None]]]) -> verdicts.TargetRecord:
    """Run ``steps`` (check name, check) and record per operation what they got and which failed,
    as the plugin does for its tests (``plugin._tally``); fuzz steps are named ``fuzz <operation>``."""
    record = verdicts.TargetRecord()
    for name, check in steps:
        ctx.api.hits, ctx.api.warnings = {}, []
        label = name.removeprefix("fuzz ") if name.startswith("fuzz ") else None
        check_name = verdicts.FUZZ_CHECK if label else name
        failure = None
        try:
            check()
        except Exception as exc:
            failure = find_failure(exc)
            if failure is None:
                raise
        record.observe(check_name, ctx.api.hits, ctx.api.warnings)
        if failure is not None:
            if failure.operation is None and label:
                failure.operation = label
            record.failed(check_name, failure, str(failure), expected=False)
    return record


def every_check(ctx: Context, spec_path: str) -> list[tuple[str, Callable[[], None]]]:
    """What a run of the suite's own tests performs (one budget-scaled pass of each)."""
    steps = [(name, check) for name, check in suite_checks(ctx, spec_path) if name != "schemathesis"]
    steps.append(("every_operation_by_the_book", lambda: walkthrough.run(ctx)))
    fuzzer = Fuzzer(ctx, spec_path)
    for operation in ctx.api.spec.operations if ctx.api.spec else []:
        if fuzzer.skip_reason(operation.label) is None:
            steps.append((f"fuzz {operation.label}", lambda label=operation.label: fuzzer.run_operation(label)))
    steps.append(("fuzz cleanup", fuzzer.cleanup))
    return steps


def test_an_operation_that_answers_404_to_everything_is_not_passed(apps: tuple[Target, Target]) -> None:
    target, oracle = apps
    spec = _oracle_spec()
    ctx = Context(target.api(spec), SuiteConfig(budget=0.3, shrink=False), lambda: oracle.api(None))
    faulty = "GET /flows/{flowId}/tags"
    with flow_tags_answer_404(target.backend):
        record = run_like_the_plugin(ctx, every_check(ctx, str(spec.path)))
    got = record.operations.get(faulty, verdicts.OperationRecord())
    table = "\n".join(line for line, _ in verdicts.table_lines([op.label for op in spec.operations], record))
    assert got.verdict in (verdicts.FAILED, verdicts.NOT_IMPLEMENTED), f"{faulty} is {got.verdict!r}:\n{table}"
    # The rest was judged as usual: the fault did not take the run down with it.
    assert record.operations["PUT /flows/{flowId}"].verdict == verdicts.PASSED, table
    assert record.operations["GET /flows/{flowId}"].verdict == verdicts.PASSED, table
    # The control: without the fault, the walk through every operation passes it.
    walk = [("every_operation_by_the_book", lambda: walkthrough.run(ctx))]
    control = run_like_the_plugin(ctx, walk).operations.get(faulty, verdicts.OperationRecord())
    assert control.verdict == verdicts.PASSED, f"without the fault {faulty} is {control.verdict!r}"


# --------------------------------------------------------------------------- 8.2 targets


def _spec_v8() -> contract_spec.Spec:
    """The official 8.2 spec when present, else ours."""
    return contract_spec.load(str(OFFICIAL_SPEC_V8 if OFFICIAL_SPEC_V8.is_file() else shipped_specs.spec_path("8.2")))


@pytest.fixture(scope="module")
def apps_v8() -> Iterator[tuple[Target, Target]]:
    version = _spec_v8().version
    target, oracle = in_process("memory", version=version), in_process("memory", name="oracle", version=version)
    yield target, oracle
    target.close()
    oracle.close()


@pytest.mark.parametrize(
    "reported",
    ["8.1", pytest.param("9.0", marks=pytest.mark.skipif(not LONG, reason="another major version: TAMS_TEST_LONG=1"))],
)
def test_a_server_reporting_another_api_version_is_still_tested(
    reported: str, apps_v8: tuple[Target, Target], record_property: Callable[[str, Any], None]
) -> None:
    """The version a server reports is what the run says it tested against, not a reason to stop:
    the differential model runs on against the 8.2 reference and finds a real fault."""
    target, oracle = apps_v8
    spec = _spec_v8()
    started = time.monotonic()
    with api_version_reported_as(target.backend, reported), reverse_order_ignored(target.backend):
        # What the plugin's pre-flight reads from a server to test it by.
        seen = target.http.get("/service").json()["api_version"]
        assert seen == reported
        config = SuiteConfig(shrink=False, version=spec.version, server_version=seen)
        ctx = Context(target.api(spec), config, lambda: oracle.api(None))
        failure = None
        while failure is None and time.monotonic() - started < FAULT_BUDGET_S:
            try:
                differential.run(ctx, examples=15, steps=25)
            except Exception as exc:
                failure = find_failure(exc)
                if failure is None:
                    raise
    assert failure is not None, f"the differential model did not find reverse_order ignored in {FAULT_BUDGET_S} s"
    assert failure.operation == "GET /flows/{flowId}/segments", (
        f"with api_version {reported} the model stopped at {failure.operation}, not at the fault:\n{failure}"
    )
    record_property("seconds_to_find", f"{time.monotonic() - started:.2f}")


@pytest.mark.parametrize("fault", list(FAULTS_V8))
def test_the_v8_checks_find_the_fault(
    fault: str, apps_v8: tuple[Target, Target], record_property: Callable[[str, Any], None]
) -> None:
    make, check = FAULTS_V8[fault]
    target, oracle = apps_v8
    ctx = Context(target.api(_spec_v8()), SuiteConfig(shrink=False, version="8.2"), lambda: oracle.api(None))
    started = time.monotonic()
    failure = None
    with make(target.backend):
        try:
            check(ctx)
        except Exception as exc:
            failure = find_failure(exc)
            if failure is None:
                raise
    seconds = time.monotonic() - started
    assert failure is not None, f"{check.__name__} did not find the fault {fault!r} ({seconds:.1f} s)"
    FOUND[fault] = (seconds, check.__name__, _first_line(failure))
    record_property("seconds_to_find", f"{seconds:.2f}")
    record_property("found_by", check.__name__)


def test_without_faults_the_v8_checks_pass(apps_v8: tuple[Target, Target]) -> None:
    """The control of the 8.2 faults: each check that finds one passes on the same target without it."""
    target, oracle = apps_v8
    ctx = Context(target.api(_spec_v8()), SuiteConfig(budget=0.5, version="8.2"), lambda: oracle.api(None))
    for _, check in FAULTS_V8.values():
        check(ctx)
