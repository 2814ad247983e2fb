"""Proof that the conformance suite finds bugs: each deliberate fault must make it fail.

The faults live here and nowhere else: each is an in-process monkeypatch of server internals,
applied only while its context manager is open and only to requests served by the target's own
backend (the oracle, a second in-process app in the same interpreter, stays correct). No setting,
option or environment variable of the server can switch them on.

For each fault the suite runs in its usual order (properties checked by brute force, the stateful
differential model, schemathesis fuzzing) until the first check fails; then the differential model
runs alone, to show it finds every fault by itself too. The times are printed at the end of the
run (``tams contract faults`` sections) and recorded in the JUnit properties.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import handlers._params
import tams_server.app
from backends import rules
from backends.memory import flows as memory_flows
from backends.memory import objects as memory_objects
from backends.memory import profiles as memory_profiles
from backends.memory import segments as memory_segments
from contract_tests import checks, differential
from contract_tests import spec as contract_spec
from contract_tests.errors import ContractFailure
from contract_tests.errors import find as find_failure
from contract_tests.fuzz import Fuzzer
from contract_tests.suite import Context, SuiteConfig
from contract_tests.target import Target, in_process
from tams_server import context

OFFICIAL_SPEC = Path(__file__).resolve().parents[2] / "shared/tams-spec/api/TimeAddressableMediaStore.yaml"
# Give up on a fault after this long (the suite must find each one well within it).
FAULT_BUDGET_S = 120.0
FOUND: dict[str, tuple[float, str, str]] = {}
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

    def end_key(original: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(segment: rules.Segment) -> Any:
            key = original(segment)
            return (key[0], key[1], 0) if _serving(backend) and key[0] == 1 else key

        return faulty

    with _patched(rules.Segment, "end_key", end_key):
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
