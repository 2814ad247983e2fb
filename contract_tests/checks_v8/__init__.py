"""Checks of what TAMS 8.x added or changed since 7.0 (see the 8.0, 8.1 and 8.2 releases).

Each check is a function of a ``Context`` that raises ``ContractFailure`` on the first problem it
finds, blaming one operation and citing what it breaks; what the spec only recommends is recorded
with ``api.warn``. Each runs in one or a few scoped cases (``ctx.case()``): everything created
carries the case's tags, listings are filtered on them, and the janitor deletes flows and webhooks
at the end. Profiles cannot be deleted (8.2 has no DELETE for them): ``profiles`` creates exactly
one per run, with a fresh id and a label starting ``tams-conformance``.

Webhooks registered here point at a closed port on loopback, so no event ever reaches anyone.
Which version each check needs is said by the test that runs it (``test_conformance_v8``).
"""

from contract_tests.checks_v8.objects import init_segments, object_instances, presigned_uploads, unregistered_objects
from contract_tests.checks_v8.ordering import listing_order, paged_listings
from contract_tests.checks_v8.profiles import profiles
from contract_tests.checks_v8.service import service_timeouts
from contract_tests.checks_v8.tags import tag_filters
from contract_tests.checks_v8.webhooks import webhooks_by_id, webhooks_unavailable

__all__ = [
    "init_segments",
    "listing_order",
    "object_instances",
    "paged_listings",
    "presigned_uploads",
    "profiles",
    "service_timeouts",
    "tag_filters",
    "unregistered_objects",
    "webhooks_by_id",
    "webhooks_unavailable",
]
