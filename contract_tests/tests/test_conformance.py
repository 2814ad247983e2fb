"""The TAMS conformance suite, in the order it runs.

1. Properties checked by brute force on what the suite registered (timeline, listings, media,
   read_only, sources, authentication, HEAD on the wire): quick, and they need no reference.
2. Stateful differential model checking against the reference (our in-memory backend).
3. Robustness: schemathesis-generated requests for every operation of the oracle spec.

Every response of the target is also validated against the oracle spec (openapi-core) as it
arrives, whatever the test.
"""

from __future__ import annotations

from typing import Any

import pytest

from contract_tests import checks, differential, walkthrough
from contract_tests.suite import Context
from contract_tests.target import Target

# --------------------------------------------------------------------------- 1. properties


def test_segment_timeline(tams_context: Context, tams_writable: None) -> None:
    checks.segment_timeline(tams_context)


def test_listing_filters_and_paging(tams_context: Context, tams_writable: None) -> None:
    checks.listing_filters(tams_context)


def test_media_round_trip(tams_context: Context, tams_writable: None) -> None:
    checks.media_round_trip(tams_context)


def test_read_only_flows_refuse_changes(tams_context: Context, tams_writable: None) -> None:
    checks.read_only_enforced(tams_context)


def test_sources_live_and_die_with_flows(tams_context: Context, tams_writable: None) -> None:
    checks.source_lifecycle(tams_context)


def test_every_operation_by_the_book(tams_context: Context, tams_writable: None) -> None:
    walkthrough.run(tams_context)


def test_existing_flows(tams_context: Context) -> None:
    """GET/HEAD only: properties of whatever the store already holds."""
    checks.observe_existing(tams_context)


def test_credentials_are_required(tams_context: Context, tams_target: Target) -> None:
    if not tams_target.credentials.given:
        pytest.skip("no credentials given: the server may be open on purpose")
    checks.credentials_required(tams_context, tams_target.http, tams_target.credentials.user)


def test_head_has_no_body_on_the_wire(tams_context: Context, tams_target: Target) -> None:
    if tams_target.kind != "remote":
        pytest.skip("in process every HEAD response is already inspected as the app sends it")
    checks.head_on_the_wire(tams_context)


# --------------------------------------------------------------------------- 2. the reference model


def test_differential_against_reference(tams_context: Context, tams_writable: None) -> None:
    if tams_context.oracle_factory is None:
        pytest.skip("the reference model needs tams-server installed (pip install tams-server)")
    differential.run(tams_context, examples=15, steps=25)


# --------------------------------------------------------------------------- 3. robustness


def test_fuzz_operation(tams_fuzzer: Any, tams_operation: str) -> None:
    reason = tams_fuzzer.skip_reason(tams_operation)
    if reason:
        pytest.skip(reason)
    tams_fuzzer.run_operation(tams_operation)
