"""8.1 ``/service`` timeouts: ``min_object_timeout`` and ``min_presigned_url_timeout``."""

from __future__ import annotations

from contract_tests.checks_v8.common import (
    get_json,
    timestamp_ns,
)
from contract_tests.errors import ContractFailure
from contract_tests.suite import Context
from contract_tests.timeline import ts_to_ns

# --------------------------------------------------------------------------- 9. /service timeouts


def service_timeouts(ctx: Context) -> None:
    """8.1 /service (ADR-0044): ``min_object_timeout`` is present and at least ``300:0``;
    ``min_presigned_url_timeout``, when present, is at least ``30:0`` and at most
    ``min_object_timeout``. GET only."""
    api, check = ctx.api, "service"
    operation = "GET /service"
    service = get_json(api, "/service", check)
    if "min_object_timeout" not in service:
        raise ContractFailure(f"no min_object_timeout (required since 8.1): {service}", operation, check)
    objects = timestamp_ns(service["min_object_timeout"], operation, "min_object_timeout", check)
    if objects < ts_to_ns("300:0"):
        raise ContractFailure(
            f"min_object_timeout is {service['min_object_timeout']}, less than 300:0",
            operation,
            check,
            "the spec's service.json: min_object_timeout MUST be 300:0 or greater",
        )
    if "min_presigned_url_timeout" in service:
        urls = timestamp_ns(service["min_presigned_url_timeout"], operation, "min_presigned_url_timeout", check)
        cite = "the spec's service.json: min_presigned_url_timeout MUST be 30:0 or more and at most min_object_timeout"
        if urls < ts_to_ns("30:0"):
            raise ContractFailure(
                f"min_presigned_url_timeout is {service['min_presigned_url_timeout']}, less than 30:0",
                operation,
                check,
                cite,
            )
        if urls > objects:
            raise ContractFailure(
                f"min_presigned_url_timeout {service['min_presigned_url_timeout']} exceeds min_object_timeout"
                f" {service['min_object_timeout']}",
                operation,
                check,
                cite,
            )
