"""What the 8.x checks share: operation templates, bodies, and readers of dates and timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from contract_tests.api import Api, describe
from contract_tests.errors import ContractFailure
from contract_tests.suite import Listing
from contract_tests.timeline import ts_to_ns

WEBHOOKS = "/service/webhooks"
WEBHOOK = "/service/webhooks/{webhookId}"
PROFILES = "/service/profiles"
PROFILE = "/service/profiles/{profileId}"
FLOW = "/flows/{flowId}"
SEGMENTS = "/flows/{flowId}/segments"
STORAGE = "POST /flows/{flowId}/storage"
OBJECT = "/objects/{objectId}"
INSTANCES = "/objects/{objectId}/instances"

LABEL_PREFIX = "tams-conformance"

_TIMESTAMP = re.compile(r"^-?(0|[1-9][0-9]*):(0|[1-9][0-9]{0,8})$")
_DATETIME = re.compile(
    r"^(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(?:\.(\d{1,9})\d*)?(Z|z|[+-]\d\d:\d\d)$",
)


# --------------------------------------------------------------------------- helpers


def get_json(api: Api, path: str, check: str, params: Any = None, why: str = "") -> Any:
    return api.json(api.expect(api.get(path, params=params), [200], check, why), check)


def op(method: str, template: str) -> str:
    return f"{method} {template}"


def contains(actual: Any, expected: Any) -> bool:
    """``actual`` holds everything ``expected`` says (dicts may hold more: defaults the server fills in)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in expected.items())
    return bool(actual == expected)


def instant(text: Any, operation: str | None, what: str) -> tuple[datetime, int]:
    """An RFC 3339 date-time as (UTC second, nanoseconds), comparable to others."""
    match = _DATETIME.match(text) if isinstance(text, str) else None
    if match is None:
        raise ContractFailure(f"{what} is {text!r}, not an RFC 3339 date-time", operation, "shape")
    day, clock, fraction, zone = match.groups()
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}{zone}").astimezone(UTC)
    except ValueError:
        raise ContractFailure(f"{what} is {text!r}, not an RFC 3339 date-time", operation, "shape") from None
    return moment, int((fraction or "0").ljust(9, "0"))


def timestamp_ns(text: Any, operation: str, what: str, check: str) -> int:
    if not isinstance(text, str) or not _TIMESTAMP.match(text):
        raise ContractFailure(f"{what} is {text!r}, not a TAMS timestamp", operation, check)
    return ts_to_ns(text)


def ids_of(items: list[Any]) -> list[Any]:
    return [item.get("id") if isinstance(item, dict) else item for item in items]


def reverse_header(api: Api, listing: Listing, reverse: bool, check: str) -> None:
    """``X-Paging-Reverse-Order`` (declared, optional) is right on every page that has it."""
    for page in listing.pages:
        value = page.headers.get("x-paging-reverse-order")
        if value is not None and value.lower() != str(reverse).lower():
            raise ContractFailure(
                f"X-Paging-Reverse-Order is {value!r}, reverse_order was {reverse}: {describe(page, 200)}",
                api.operation_of(page),
                "paging",
            )


def tag_selects(tags: dict[str, Any], name: str, raw: str) -> bool:
    """Whether ``tags`` pass one 8.x tag filter (``tag.{n}`` any-of, list-valued; ``tag_exists.{n}``)."""
    if name.startswith("tag_exists."):
        return (name[len("tag_exists.") :] in tags) == (raw == "true")
    value = tags.get(name[len("tag.") :])
    wanted = set(raw.split(","))
    if value is None:
        return False
    values = value if isinstance(value, list) else [value]
    return bool(wanted & set(values))
