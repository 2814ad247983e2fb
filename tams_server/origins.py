"""Which hosts a request may name, and which browser pages may make it write.

URLs the server hands out (signed media URLs, paging links, webhook payloads) are built from
``public_url`` or else from the request's ``Host``. So that a client cannot choose the host other
clients and webhook receivers are sent to, ``trusted_hosts`` lists the hosts this server answers
for; a request naming another host is refused.

A browser that holds basic credentials for the API will send them with requests any web page makes
(cross-site request forgery). Browsers name the page's origin in ``Origin`` on such writes: a write
whose ``Origin`` is not this server's own is refused, and only requests without ``Origin`` (scripts
and tools) may leave out ``Content-Type`` on a JSON body.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.types import Scope

WRITES = frozenset({"POST", "PUT", "DELETE", "PATCH"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return value.decode("latin-1")
    return None


def _split_host(host: str) -> tuple[str, str]:
    """("name", "port") of a Host value; IPv6 literals keep their brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]", rest.removeprefix(":")
    name, _, port = host.partition(":")
    return name, port


class HostPolicy:
    """``trusted_hosts`` entries are ``name`` (any port), ``name:port`` or ``*.domain``; the host of
    ``public_url`` is always trusted. With neither given every host is accepted."""

    def __init__(self, trusted_hosts: list[str] | None, public_url: str | None) -> None:
        entries = [h.strip().lower() for h in trusted_hosts or [] if h.strip()]
        self.public_origin: str | None = None
        if public_url:
            parts = urlsplit(public_url)
            self.public_origin = f"{parts.scheme}://{parts.netloc}".lower()
            if trusted_hosts is not None:
                entries.append(parts.netloc.lower())
        self.checking = trusted_hosts is not None
        self._entries = [_split_host(e) for e in entries]

    def host_allowed(self, host: str | None) -> bool:
        if not self.checking:
            return True
        if not host:
            return False
        name, port = _split_host(host)
        for want_name, want_port in self._entries:
            if want_port and want_port != port:
                continue
            if want_name == name or (want_name.startswith("*.") and name.endswith(want_name[1:])):
                return True
        return False

    def write_allowed(self, scope: Scope) -> bool:
        """A write from a browser page must come from this server's own origin."""
        if scope["method"] not in WRITES:
            return True
        origin = header(scope, b"origin")
        if origin is None:
            return header(scope, b"sec-fetch-site") not in ("cross-site", "same-site")
        origin = origin.strip().lower()
        if origin == self.public_origin:
            return True
        parts = urlsplit(origin)
        host = header(scope, b"host")
        return bool(parts.netloc) and host is not None and parts.netloc == host.strip().lower()


def is_loopback_interface(host: str) -> bool:
    """Whether listening on ``host`` keeps the server to this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
