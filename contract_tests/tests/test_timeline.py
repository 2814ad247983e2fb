"""(2) Properties of the timeline and of listings, checked by brute force on what was registered."""

from __future__ import annotations

from contract_tests import checks
from contract_tests.suite import Context


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


def test_existing_flows_read_only(tams_context: Context) -> None:
    """GET/HEAD only: properties of whatever the store already holds."""
    checks.observe_existing(tams_context)
