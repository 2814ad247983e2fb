"""What every check gets: the target's API, the oracle, settings, the run's scope and a janitor.

Safety against a live store: everything the suite creates carries two tags, ``conformance_run``
(one value per run) and ``conformance_scope`` (one value per test case), listings are always
filtered on them, only ids the suite generated itself (fresh UUIDs) are written to, and the janitor
deletes what was created when a case ends.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, settings

from contract_tests import timeline
from contract_tests.api import Api, describe
from contract_tests.errors import ContractFailure

RUN_TAG = "conformance_run"
SCOPE_TAG = "conformance_scope"
# A closed port on the server's own loopback (discard): every URL the suite hands a server
# (webhook receivers, uncontrolled instances) points here, so nothing is ever sent anywhere.
CLOSED_LOOPBACK = "http://127.0.0.1:9/conformance"
_LINK = re.compile(r'^\s*<([^>]+)>\s*;\s*rel="?next"?\s*$')


@dataclass
class SuiteConfig:
    """How hard to try. ``budget`` scales every check's number of examples (1.0 = the default run).

    ``version`` is the TAMS version the target is tested as (the oracle spec's); ``server_version``
    what the target's ``/service`` reports (None when unknown). ``strict`` turns warnings into
    failures; ``shrink_budget_s`` bounds the time Hypothesis spends shrinking one failure.
    """

    budget: float = 1.0
    thorough: bool = False
    read_only: bool = False
    remote: bool = False
    shrink: bool = True
    shrink_budget_s: float = 30.0
    strict: bool = False
    version: str = "7.0"
    server_version: str | None = None
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    max_pages: int = 500
    delete_wait_s: float = 60.0

    def at_least(self, version: str) -> bool:
        """Whether the target is tested as ``version`` or later."""
        return version_tuple(self.version) >= version_tuple(version)

    @property
    def rules_version(self) -> str:
        """The version whose rules requests follow and answers are judged by: the version tested,
        or the older one of the same major the server reports (8.1 tested as 8.2), as in
        ``unsupported``: what came later is not asked of it. Requests valid for the older version
        are valid for the newer one too."""
        tested = version_tuple(self.version)
        server = self.server_version
        if server and version_tuple(server)[:1] == tested[:1] and version_tuple(server) < tested:
            return str(server)
        return str(self.version)

    def unsupported(self, version: str, feature: str) -> str | None:
        """Why ``feature`` (added in ``version``) is not checked on this target, or None when it is.

        A server that reports an older version of the same major (8.1 tested as 8.2) is not asked
        for what came later: that is said as a skip, not counted against it.
        """
        if not self.at_least(version):
            return f"{feature} came in TAMS {version}; the target is tested as {self.version}"
        if self.server_version and version_tuple(self.server_version) < version_tuple(version):
            return f"{feature} came in TAMS {version}; the server reports api_version {self.server_version}"
        return None

    def examples(self, default: int) -> int:
        factor = self.budget * (20 if self.thorough else 1)
        return max(1, round(default * factor))

    def settings(self, examples: int, steps: int | None = None) -> settings:
        phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if self.shrink else [])
        kwargs: dict[str, Any] = {}
        if steps is not None:
            kwargs["stateful_step_count"] = steps * (3 if self.thorough else 1)
        _bound_shrinking(self.shrink_budget_s)
        return settings(
            max_examples=self.examples(examples),
            deadline=None,
            database=None,
            phases=phases,
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
            print_blob=False,
            **kwargs,
        )


def version_tuple(version: str) -> tuple[int, ...]:
    """``"8.2"`` as ``(8, 2)`` (non-numeric parts count as 0)."""
    return tuple(int(part) if part.isdigit() else 0 for part in str(version).split("."))


def _bound_shrinking(seconds: float) -> None:
    """Hypothesis stops shrinking one failure after ``MAX_SHRINKING_SECONDS`` (300 s by default):
    against a remote store each shrink step costs requests, so the suite sets its own budget."""
    from hypothesis.internal.conjecture import engine

    if hasattr(engine, "MAX_SHRINKING_SECONDS"):
        engine.MAX_SHRINKING_SECONDS = max(1, int(seconds))


@dataclass
class Scope:
    """The tags that mark (and the filters that select) what one test case created."""

    run_id: str
    case_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def tags(self) -> dict[str, str]:
        return {RUN_TAG: self.run_id, SCOPE_TAG: self.case_id}

    @property
    def filters(self) -> list[tuple[str, str]]:
        return [(f"tag.{name}", value) for name, value in self.tags.items()]


class Janitor:
    """Deletes, at the end of a case, the flows the suite created (unlocking them first)."""

    def __init__(self, api: Api, wait_s: float = 60.0) -> None:
        self.api = api
        self.wait_s = wait_s
        self.flows: dict[str, None] = {}
        self.webhooks: list[dict[str, Any]] = []  # 7.0: identities (url, api_key_name, api_key_value)
        self.webhook_ids: list[str] = []  # 8.x: registrations by id
        self.problems: list[str] = []

    def flow(self, flow_id: str) -> None:
        self.flows[flow_id] = None

    def webhook(self, body: dict[str, Any], response: httpx.Response) -> None:
        """Remember a webhook POSTed with ``body``: by the id an 8.x server answered, else (7.0) by
        its identity, which a re-POST with ``events: []`` removes."""
        created = response.json() if response.status_code in (200, 201) and response.content else None
        if isinstance(created, dict) and isinstance(created.get("id"), str):
            self.webhook_ids.append(created["id"])
        elif response.status_code in (200, 201):
            self.webhooks.append({k: body[k] for k in ("url", "api_key_name", "api_key_value") if k in body})

    def cleanup(self) -> list[str]:
        if self.api.read_only:
            return []
        # Collections first refer to other flows: delete in reverse order of creation.
        for flow_id in reversed(list(self.flows)):
            with contextlib.suppress(httpx.HTTPError, ContractFailure):
                self._delete_flow(flow_id)
        for webhook_id in self.webhook_ids:
            with contextlib.suppress(httpx.HTTPError, ContractFailure):
                response = self.api.delete(f"/service/webhooks/{webhook_id}", check=False)
                if response.status_code not in (204, 404):
                    self.problems.append(f"cleanup could not delete webhook {webhook_id}: {describe(response)}")
        for hook in self.webhooks:
            with contextlib.suppress(httpx.HTTPError, ContractFailure):
                self.api.post("/service/webhooks", {**hook, "events": []}, check=False)
        self.flows.clear()
        self.webhooks.clear()
        self.webhook_ids.clear()
        problems, self.problems = self.problems, []
        return problems

    def _delete_flow(self, flow_id: str) -> None:
        response = self.api.delete(f"/flows/{flow_id}", check=False)
        if response.status_code == 403:
            self.api.put(f"/flows/{flow_id}/read_only", False, check=False)
            response = self.api.delete(f"/flows/{flow_id}", check=False)
        if response.status_code == 202:
            wait_for_deletion(self.api, response, self.wait_s, check=False)
        elif response.status_code not in (204, 404):
            self.problems.append(f"cleanup could not delete flow {flow_id}: {describe(response)}")


def wait_for_deletion(api: Api, response: httpx.Response, wait_s: float, check: bool = True) -> None:
    """Follow a 202's deletion request until it is done (fail on ``error`` or when it never ends)."""
    location = response.headers.get("location")
    body = response.json() if response.content else {}
    url = resolve(response, location) if location else None
    if url is None and isinstance(body, dict) and "id" in body:
        url = f"/flow-delete-requests/{body['id']}"
    if url is None:
        raise ContractFailure(
            f"202 without a Location or a deletion request id: {describe(response)}",
            api.operation_of(response),
            "deletion",
        )
    deadline = time.monotonic() + wait_s
    delay = 0.01
    first = True
    while True:
        status = api.get(url, check=check)
        if status.status_code == 404:
            if first:
                api.warn(
                    "the deletion request of a 202 was not found right after it (404)",
                    api.operation_of(response),
                    "deletion-request",
                    "the spec: a 202's deletion request tracks the delete until it is done",
                )
            return  # finished and already expired
        first = False
        api.expect(status, [200], "deletion")
        state = status.json().get("status")
        if state == "done":
            return
        if state == "error":
            raise ContractFailure(
                f"deletion request failed: {describe(status)}", api.operation_of(response), "deletion"
            )
        if time.monotonic() > deadline:
            raise ContractFailure(
                f"deletion request not done after {wait_s} s: {describe(status)}",
                api.operation_of(response),
                "deletion",
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def deleted(api: Api, response: httpx.Response, wait_s: float) -> bool:
    """True for a finished delete (204, or 202 then done); False for any other status."""
    if response.status_code == 204:
        return True
    if response.status_code == 202:
        wait_for_deletion(api, response, wait_s)
        return True
    return False


def loopback_url() -> str:
    """A fresh URL on ``CLOSED_LOOPBACK``."""
    return f"{CLOSED_LOOPBACK}/{uuid.uuid4()}"


def refused_receiver(api: Api, response: httpx.Response) -> bool:
    """Whether the server refused the suite's webhook receiver (on loopback) with 400: a server
    may refuse receivers on private addresses (an SSRF guard), and the suite sends nowhere else.
    Said as a warning: webhook registration then goes unchecked."""
    if response.status_code != 400:
        return False
    api.warn(
        "the server refused a webhook receiver on a loopback address (400), so webhook registration was not "
        "checked; allow loopback receivers while testing to check it",
        api.operation_of(response),
        "webhook-receiver",
        "the suite registers only receivers that cannot be reached (a closed loopback port)",
    )
    return True


# --------------------------------------------------------------------------- paging


def resolve(response: httpx.Response, reference: str) -> str:
    """A URL the server gave (``Link``, ``Location``) resolved against the request's own URL, as
    RFC 9110 resolves relative references (``/v8.2/flows?page=2`` keeps the origin, not the base)."""
    return str(response.request.url.join(reference))


def next_link(api: Api, response: httpx.Response, check: str) -> str | None:
    """The absolute URL of the next page (``Link: <...>; rel="next"``), or None."""
    link = response.headers.get("link")
    if link is None:
        return None
    for part in link.split(","):
        match = _LINK.match(part)
        if match:
            return resolve(response, match.group(1))
    if 'rel="next"' in link or "rel=next" in link:
        raise ContractFailure(f"unparseable Link header {link!r}", api.operation_of(response), check)
    return None


def page_key(api: Api, response: httpx.Response) -> str | None:
    """The next page's key: ``X-Paging-NextKey`` (optional), else the ``page`` of the next Link."""
    key = response.headers.get("x-paging-nextkey")
    if key is not None:
        return key
    url = next_link(api, response, "paging")
    return httpx.URL(url).params.get("page") if url else None


@dataclass
class Listing:
    items: list[Any]
    pages: list[httpx.Response]
    complete: bool = True  # False when ``stop_after`` pages were read and more remained


def list_all(
    api: Api,
    path: str,
    params: list[tuple[str, str]],
    check: str,
    limit: int | None = None,
    reverse: bool | None = None,
    max_pages: int = 500,
    first: httpx.Response | None = None,
    stop_after: int | None = None,
) -> Listing:
    """GET a paged listing and follow ``Link: rel="next"`` to its end, checking each page's headers.

    ``reverse``: for segment listings, the ``X-Paging-Reverse-Order`` value every page must have.
    """
    query = list(params) + ([("limit", str(limit))] if limit is not None else [])
    response = first if first is not None else api.get(path, params=query)
    items: list[Any] = []
    pages: list[httpx.Response] = []
    seen_keys: set[str] = set()
    while True:
        api.expect(response, [200], check)
        body = api.json(response, check)
        operation = api.operation_of(response)
        if not isinstance(body, list):
            raise ContractFailure(f"listing is not a JSON array: {describe(response)}", operation, check)
        check_page_headers(api, response, body, limit, reverse, check)
        pages.append(response)
        items.extend(body)
        url = next_link(api, response, check)
        key = response.headers.get("x-paging-nextkey")
        if url is not None and key is None:
            api.warn("a next page (Link) without X-Paging-NextKey", operation, "paging-headers")
        elif url is None and key is not None:
            # Both headers are optional; the key alone still names the next page.
            api.warn("X-Paging-NextKey without a Link to the next page", operation, "paging-headers")
            url = str(response.request.url.copy_set_param("page", key))
        if url is None:
            return Listing(items, pages)
        if stop_after is not None and len(pages) >= stop_after:
            return Listing(items, pages, complete=False)
        if (key or url) in seen_keys:
            raise ContractFailure(f"paging loops: page key {key or url!r} came back", operation, "paging")
        seen_keys.add(key or url)
        if len(pages) >= max_pages:
            raise ContractFailure(f"paging did not end after {max_pages} pages", operation, "paging")
        response = api.get(url)
        if len(pages) == 1 and key is not None:
            # The same next page through X-Paging-NextKey as the `page` parameter.
            by_key = api.get(path, params=[*query, ("page", key)])
            if by_key.status_code != response.status_code or _identities(by_key) != _identities(response):
                raise ContractFailure(
                    f"page={key!r} (X-Paging-NextKey) and the Link URL give different pages:\n"
                    f"  {describe(by_key, 300)}\n  {describe(response, 300)}",
                    operation,
                    "paging",
                )


def _identities(response: httpx.Response) -> Any:
    """What a page lists, without the values that change per request (signed URLs)."""
    try:
        body = response.json()
    except ValueError:
        return response.content
    if not isinstance(body, list):
        return body
    return [
        item.get("id", (item.get("object_id"), item.get("timerange"))) if isinstance(item, dict) else item
        for item in body
    ]


def check_page_headers(
    api: Api, response: httpx.Response, body: list[Any], limit: int | None, reverse: bool | None, check: str
) -> None:
    operation = api.operation_of(response)
    headers = response.headers

    def fail(message: str) -> None:
        raise ContractFailure(f"{message}\n  {describe(response, 200)}", operation, "paging")

    def absent(name: str) -> bool:
        # The spec declares the paging headers without requiring them: missing is a warning,
        # present and wrong a failure.
        if name in headers:
            return False
        api.warn(f"no {name} header on a page", operation, "paging-headers")
        return True

    if limit is not None and len(body) > limit:
        fail(f"{len(body)} items on a page with limit={limit}")
    if not absent("X-Paging-Limit"):
        raw_limit = headers["x-paging-limit"]
        if not raw_limit.isdigit() or int(raw_limit) < 1:
            fail(f"X-Paging-Limit {raw_limit!r} is not a positive integer")
        if len(body) > int(raw_limit):
            fail(f"{len(body)} items on a page whose X-Paging-Limit is {raw_limit}")
    if "x-paging-count" in headers and headers["x-paging-count"] != str(len(body)):
        fail(f"X-Paging-Count is {headers['x-paging-count']!r} for a page of {len(body)} items")
    if reverse is None:
        return
    # Segment listings: count, order flag and the page's timerange.
    absent("X-Paging-Count")
    if not absent("X-Paging-Reverse-Order"):
        order = headers["x-paging-reverse-order"]
        if order.lower() != str(reverse).lower():
            fail(f"X-Paging-Reverse-Order is {order!r}, reverse_order was {reverse}")
    if absent("X-Paging-Timerange"):
        return
    paging_range = headers["x-paging-timerange"]
    try:
        got = timeline.Range.parse(paging_range)
    except ValueError:
        fail(f"X-Paging-Timerange {paging_range!r} is not a TimeRange")
    want = timeline.extent([s["timerange"] for s in body])
    if got != want:
        fail(f"X-Paging-Timerange is {paging_range!r}, the page's segments span {want}")


def head_matches_get(api: Api, get: httpx.Response, check: str, volatile: bool = False) -> None:
    """HEAD of the same URL answers with the status and (paging) headers of ``get``.

    ``volatile``: the listing may change between the two requests (deletion requests expire on
    their own), so the headers must be the same ones, not hold the same values.
    """
    head = api.head(str(get.request.url))
    operation = api.operation_of(head)
    if head.status_code != get.status_code:
        raise ContractFailure(f"HEAD gave {head.status_code}, GET gave {describe(get, 200)}", operation, check)
    for name, value in get.headers.items():
        if not (name.lower().startswith("x-paging-") or name.lower() == "link"):
            continue
        if name not in head.headers or (not volatile and head.headers[name] != value):
            raise ContractFailure(
                f"HEAD header {name}: {head.headers.get(name)!r}, GET: {value!r}", operation, "head-matches-get"
            )


# --------------------------------------------------------------------------- the context


@dataclass
class Context:
    """What a check runs with. ``oracle`` is the in-process reference app (None when unavailable)."""

    api: Api
    config: SuiteConfig
    oracle_factory: Callable[[], Api] | None = None

    @contextlib.contextmanager
    def case(self, api: Api | None = None) -> Iterator[tuple[Scope, Janitor]]:
        """One test case: a fresh scope, and cleanup of what it created when it ends."""
        janitor = Janitor(api or self.api, self.config.delete_wait_s)
        try:
            yield Scope(self.config.run_id), janitor
        finally:
            janitor.cleanup()
