"""The TAMS 8.x behaviour checks (``contract_tests.checks_v8``), each skipped when the target is
tested as an earlier version than the feature's, or reports one (an 8.1 server tested as 8.2 is not
asked for what 8.2 added)."""

from __future__ import annotations

import pytest

from contract_tests import checks_v8
from contract_tests.suite import Context, SuiteConfig


def test_webhooks_by_id(tams_context: Context, tams_config: SuiteConfig, tams_writable: None) -> None:
    if reason := tams_config.unsupported("8.0", "webhooks by id"):
        pytest.skip(reason)
    if reason := checks_v8.webhooks_unavailable(tams_context):
        pytest.skip(reason)
    checks_v8.webhooks_by_id(tams_context)


def test_profiles(tams_context: Context, tams_config: SuiteConfig, tams_writable: None) -> None:
    if reason := tams_config.unsupported("8.2", "flow profiles"):
        pytest.skip(reason)
    checks_v8.profiles(tams_context)


def test_object_instances(tams_context: Context, tams_config: SuiteConfig, tams_writable: None) -> None:
    if reason := tams_config.unsupported("8.0", "object instances"):
        pytest.skip(reason)
    checks_v8.object_instances(tams_context)


def test_init_segments(tams_context: Context, tams_config: SuiteConfig, tams_writable: None) -> None:
    if reason := tams_config.unsupported("8.2", "init segments"):
        pytest.skip(reason)
    checks_v8.init_segments(tams_context)


def test_listing_order(tams_context: Context, tams_config: SuiteConfig, tams_writable: None) -> None:
    if reason := tams_config.unsupported("8.2", "sort_by / reverse_order of /flows and /sources"):
        pytest.skip(reason)
    checks_v8.listing_order(tams_context)


def test_tag_filters_any_of(tams_context: Context, tams_config: SuiteConfig, tams_writable: None) -> None:
    if reason := tams_config.unsupported("8.0", "any-of tag filters and list-valued tags"):
        pytest.skip(reason)
    checks_v8.tag_filters(tams_context)


def test_paged_service_listings(tams_context: Context, tams_config: SuiteConfig) -> None:
    """GET/HEAD only."""
    if reason := tams_config.unsupported("8.2", "paged storage backends and flow delete requests"):
        pytest.skip(reason)
    checks_v8.paged_listings(tams_context)


def test_presigned_or_plain_uploads(tams_context: Context, tams_config: SuiteConfig, tams_writable: None) -> None:
    if reason := tams_config.unsupported("8.2", "selectable presigned put_urls"):
        pytest.skip(reason)
    checks_v8.presigned_uploads(tams_context)


def test_service_timeouts(tams_context: Context, tams_config: SuiteConfig) -> None:
    """GET only."""
    if reason := tams_config.unsupported("8.1", "min_object_timeout"):
        pytest.skip(reason)
    checks_v8.service_timeouts(tams_context)


def test_unregistered_objects_are_404(tams_context: Context, tams_config: SuiteConfig, tams_writable: None) -> None:
    if reason := tams_config.unsupported("8.1", "404 for allocated but unregistered objects"):
        pytest.skip(reason)
    checks_v8.unregistered_objects(tams_context)
