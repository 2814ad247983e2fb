"""One target's TAMS API as the suite sees it: every response is checked as it arrives.

``Api`` wraps an ``httpx.Client`` (a Starlette ``TestClient`` for an in-process app, a plain client
for a URL). Each response to a TAMS operation is validated against the oracle spec with
openapi-core, HEAD responses must have no body, and the operation is counted for the report.
In read-only mode anything but GET and HEAD is refused before it is sent.
"""

from __future__ import annotations

import itertools
import socket
import ssl
from collections import Counter
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx

from contract_tests.errors import CITES, ContractFailure, ContractWarning, ReadOnlyViolation
from contract_tests.spec import Spec

NO_BODY: Any = object()
SAFE_METHODS = frozenset({"GET", "HEAD"})
Params = list[tuple[str, str]] | dict[str, Any] | None


def describe(response: httpx.Response, limit: int = 400) -> str:
    request = response.request
    text = response.text if response.content else ""
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text) - limit} more chars)"
    return f"{request.method} {request.url} -> {response.status_code} {text}".rstrip()


def status_class(status: int) -> str:
    """How a response counts towards its operation's verdict (see ``verdicts``)."""
    if 200 <= status < 300:
        return "2xx"
    if status == 404:
        return "404"
    if status in (405, 501):
        return "unsupported"
    return "other"


class Api:
    def __init__(
        self,
        http: httpx.Client,
        *,
        name: str,
        spec: Spec | None = None,
        read_only: bool = False,
        media_http: httpx.Client | None = None,
        tap: Any = None,
        strict: bool = False,
    ) -> None:
        self.http = http
        self.name = name
        self.spec = spec
        self.read_only = read_only
        self.media_http = media_http or http
        self.base = urlsplit(str(http.base_url).rstrip("/"))
        self.strict = strict
        # Per operation, how many responses of each status class (``status_class``) it gave.
        self.hits: dict[str, Counter[str]] = {}
        self.warnings: list[ContractWarning] = []
        self.tap = tap  # in process: what the app really sent for HEAD (see target.HeadBodyTap)
        self._requests = itertools.count()

    # ------------------------------------------------------------------ requests

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Params = None,
        body: Any = NO_BODY,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        check: bool = True,
    ) -> httpx.Response:
        method = method.upper()
        if self.read_only and method not in SAFE_METHODS:
            raise ReadOnlyViolation(f"read-only mode: refusing to send {method} {url}")
        tap_key = None
        if self.tap is not None and method == "HEAD":
            tap_key = f"{id(self)}-{next(self._requests)}"
            headers = {**(headers or {}), self.tap.HEADER: tap_key}
        kwargs: dict[str, Any] = {"params": params, "headers": headers}
        if body is not NO_BODY:
            kwargs["json"] = body
        elif content is not None:
            kwargs["content"] = content
        if self._same_origin(url):
            response = self.http.request(method, url, **kwargs)
        else:
            response = self.media_http.request(method, url, **kwargs)
        sent = self.tap.body_bytes(tap_key) if tap_key else 0
        if sent:
            raise ContractFailure(
                f"the server sent a {sent}-byte body with its HEAD response: {describe(response)}",
                self.operation_of(response),
                "head-without-body",
            )
        self._check(response, check)
        return response

    def get(self, url: str, params: Params = None, **kw: Any) -> httpx.Response:
        return self.request("GET", url, params=params, **kw)

    def head(self, url: str, params: Params = None, **kw: Any) -> httpx.Response:
        return self.request("HEAD", url, params=params, **kw)

    def put(self, url: str, body: Any = NO_BODY, **kw: Any) -> httpx.Response:
        return self.request("PUT", url, body=body, **kw)

    def post(self, url: str, body: Any = NO_BODY, **kw: Any) -> httpx.Response:
        return self.request("POST", url, body=body, **kw)

    def delete(self, url: str, params: Params = None, **kw: Any) -> httpx.Response:
        return self.request("DELETE", url, params=params, **kw)

    def media(
        self, method: str, url: str, content: bytes | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """Move bytes at a put_url/get_url: not a TAMS operation, so not spec-checked.

        API credentials go only to URLs of the API's own origin (TAMS: same-origin rule).
        """
        if self.read_only and method.upper() not in SAFE_METHODS:
            raise ReadOnlyViolation(f"read-only mode: refusing to send {method} {url}")
        client = self.http if self._same_origin(url) else self.media_http
        return client.request(method, url, content=content, headers=headers)

    def _same_origin(self, url: str) -> bool:
        parts = urlsplit(url)
        return not parts.scheme or (parts.scheme, parts.netloc) == (self.base.scheme, self.base.netloc)

    # ------------------------------------------------------------------ checking

    def operation_of(self, response: httpx.Response) -> str | None:
        template = self._template(response.request)
        return None if template is None else f"{response.request.method.upper()} {template}"

    def _template(self, request: httpx.Request) -> str | None:
        if self.spec is None:
            return None
        raw = request.url.raw_path.decode("ascii").partition("?")[0]
        if (request.url.scheme, request.url.netloc.decode("ascii")) != (self.base.scheme, self.base.netloc):
            return None
        prefix = self.base.path.rstrip("/")
        if prefix:
            if not raw.startswith(prefix + "/") and raw != prefix:
                return None
            raw = raw[len(prefix) :] or "/"
        return self.spec.match(raw)

    def _check(self, response: httpx.Response, check: bool) -> None:
        template = self._template(response.request)
        if template is None:
            return  # media URLs and the like
        method = response.request.method.upper()
        operation = f"{method} {template}"
        self.hits.setdefault(operation, Counter())[status_class(response.status_code)] += 1
        if not check:
            return
        if response.status_code >= 500:
            raise ContractFailure(f"server error: {describe(response)}", operation, "server-error")
        if self.spec is None:
            return
        problems = []
        if self.spec.operation(method, template) is None:
            problems.append(f"the spec has no operation {operation}")
        else:
            problems.extend(self.spec.problems(method, template, response))
        if method == "HEAD" and response.content:
            raise ContractFailure(
                f"HEAD response has a body ({len(response.content)} bytes): {describe(response)}",
                operation,
                "head-without-body",
            )
        if response.status_code == 204 and response.content:
            problems.append(f"204 response has a body: {response.content[:200]!r}")
        if problems:
            raise ContractFailure(
                "response does not conform to the spec: " + "; ".join(problems) + f"\n  {describe(response)}",
                operation,
                "spec",
            )

    # ------------------------------------------------------------------ the wire

    def raw_head(self, path: str, timeout: float = 10.0) -> tuple[bytes, bytes]:
        """Send HEAD over a plain socket and return (status line and headers, bytes after them).

        HTTP clients discard a HEAD response's body, so only the wire shows one.
        """
        request = self.http.build_request("HEAD", path)
        auth = self.http.auth
        if auth is not None:
            request = next(auth.sync_auth_flow(request))
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        lines = [f"HEAD {url.raw_path.decode('ascii')} HTTP/1.1", f"Host: {url.netloc.decode('ascii')}"]
        lines += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() not in ("host", "connection")]
        lines += ["Connection: close", "", ""]
        with socket.create_connection((url.host, port), timeout=timeout) as raw:
            sock: socket.socket = raw
            if url.scheme == "https":
                sock = ssl.create_default_context().wrap_socket(raw, server_hostname=url.host)
            sock.sendall("\r\n".join(lines).encode("latin-1"))
            data = b""
            while len(data) < 1_000_000:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        return head, rest

    # ------------------------------------------------------------------ helpers

    def warn(self, message: str, operation: str | None, check: str, cite: str | None = None) -> None:
        """Record a departure from a recommendation; in strict mode it fails like a MUST."""
        warning = ContractWarning(message.splitlines()[0][:300], operation, check, cite or CITES.get(check, "the spec"))
        if self.strict:
            raise warning.failure()
        if warning not in self.warnings:
            self.warnings.append(warning)

    def expect(self, response: httpx.Response, statuses: Iterable[int], check: str, why: str = "") -> httpx.Response:
        """Fail (blaming the response's operation) unless its status is one of ``statuses``."""
        allowed = tuple(statuses)
        if response.status_code not in allowed:
            reason = f" ({why})" if why else ""
            expected = " or ".join(map(str, allowed))
            operation = self.operation_of(response)
            raise ContractFailure(
                f"expected {expected}{reason}, got {describe(response)}",
                operation,
                check,
                f"the spec: {operation or 'this operation'} answers {expected} to this request{reason}",
            )
        return response

    def json(self, response: httpx.Response, check: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ContractFailure(
                f"response body is not JSON: {describe(response)}", self.operation_of(response), check
            ) from None
