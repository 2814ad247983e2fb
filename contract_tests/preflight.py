"""Pre-flight: before any test runs, make sure the target can be tested at all, and as which version.

Reachable, speaks TAMS (``GET /service`` answers a JSON object with ``api_version``), accepts the
credentials, and the base path is right. Otherwise ``CannotTest`` with one sentence saying what is
wrong (and, for a wrong base path, where the API seems to be); the run then exits with code 2.

The version to test as comes from the oracle spec when one is given, else from the server's
``api_version``: the nearest version the suite knows (8.0 and 8.1 are tested as 8.2, with the
checks of what came later skipped, and the run says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from contract_tests.errors import CannotTest
from contract_tests.suite import version_tuple

# Where TAMS servers commonly put their API, tried when the given base path is not one.
_COMMON_PREFIXES = ("", "/v8.2", "/v8.1", "/v8.0", "/v7.0", "/tams", "/api", "/tams/v8.2", "/tams/v7.0")


@dataclass
class Preflight:
    """What the pre-flight found: the server's ``/service`` body and what to tell the user."""

    service: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def api_version(self) -> str | None:
        version = self.service.get("api_version")
        return str(version) if version is not None else None


def nearest(version: str | None, known: list[str]) -> str:
    """The known version to test a server of ``version`` as: the newest of the same major, else
    the newest known one (versions are ``major.minor``)."""
    ordered = sorted(known, key=version_tuple)
    if version:
        major = version_tuple(version)[:1]
        same = [v for v in ordered if version_tuple(v)[:1] == major]
        if same:
            return same[-1]
    return ordered[-1]


def _looks_like_service(response: httpx.Response) -> bool:
    if response.status_code != 200:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "api_version" in body


def _describe_answer(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    return f"{response.status_code} ({kind})"


def run(client: httpx.Client, credentials_given: bool) -> Preflight:
    """Check the API at ``client``'s base URL (the client sends the credentials)."""
    base = str(client.base_url).rstrip("/")
    try:
        service = client.get(f"{base}/service")
    except httpx.ConnectError as exc:
        parts = urlsplit(base)
        raise CannotTest(f"cannot connect to {parts.netloc}: {_reason(exc)}; is the server running there?") from None
    except httpx.TimeoutException:
        raise CannotTest(f"{base}/service did not answer within {client.timeout.read} s (--timeout)") from None
    except httpx.HTTPError as exc:
        raise CannotTest(f"cannot reach {base}: {_reason(exc)}") from None
    if service.status_code in (401, 403):
        raise CannotTest(_refused(base, service, credentials_given))
    if not _looks_like_service(service):
        raise CannotTest(_not_tams(client, base, service))
    # /service may be open while the rest needs credentials: ask for a protected listing too.
    flows = client.get(f"{base}/flows", params={"limit": "1"})
    if flows.status_code in (401, 403):
        raise CannotTest(_refused(base, flows, credentials_given))
    return Preflight(service.json())


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.split("] ")[-1] if "] " in text else text


def _refused(base: str, response: httpx.Response, credentials_given: bool) -> str:
    path = urlsplit(str(response.request.url)).path
    if credentials_given:
        return (
            f"the server refused the credentials ({response.status_code} for GET {path}): "
            "check --token, or --user and --password"
        )
    return (
        f"the server needs credentials ({response.status_code} for GET {path}): give --token, or --user and --password"
    )


def _not_tams(client: httpx.Client, base: str, service: httpx.Response) -> str:
    """Why ``base`` is not a TAMS API, with the base path that is one when a probe finds it."""
    parts = urlsplit(base)
    given = parts.path.rstrip("/")
    tried = {given}
    # The given path's ancestors, then the common places, then those under the given path.
    candidates = [given.rsplit("/", i)[0] for i in range(1, given.count("/") + 1)]
    candidates += list(_COMMON_PREFIXES) + [given + p for p in _COMMON_PREFIXES if p]
    for prefix in candidates:
        if prefix in tried:
            continue
        tried.add(prefix)
        candidate = urlunsplit((parts.scheme, parts.netloc, prefix, "", ""))
        try:
            probe = client.get(f"{candidate}/service")
        except httpx.HTTPError:
            continue
        if _looks_like_service(probe):
            answer = _describe_answer(service)
            return f"no TAMS API here (GET {given}/service: {answer}), but at {candidate}: use --url {candidate}"
    return f"not a TAMS API: GET {given}/service gave {_describe_answer(service)}, not a JSON object with api_version"
