"""What a webhook delivery needs from a registration: a receiver URL it can connect to and a key
header it can send.

Checked when a registration is created or replaced (400), and again before each delivery, for
registrations stored before these rules: a registration that breaks them must fail alone, with a
reason, and never reach the HTTP client (where it could raise anything).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from backends.base import Json
from backends.errors import BadRequest

MAX_URL_CHARS = 2048
MAX_HOST_CHARS = 253  # a DNS name (RFC 1035), without its final dot
MAX_LABEL_CHARS = 63
MAX_KEY_NAME_CHARS = 256
MAX_KEY_VALUE_CHARS = 4096  # one header of an 8 KiB header section, which most servers accept
# A header field name is an RFC 9110 token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A header value: visible ASCII, with spaces or tabs only between visible characters (h11 refuses
# leading and trailing whitespace, and obs-text is not text a receiver can be relied on to read).
_FIELD_VALUE = re.compile(r"([\x21-\x7e]([\t\x20-\x7e]*[\x21-\x7e])?)?")
_LABEL = re.compile(r"[a-z0-9_-]+")
_PORTS = {"http": 80, "https": 443}
# Headers that frame or route the request: the server sets them; a registration may not.
_RESERVED_HEADERS = frozenset(
    ("host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade")
)


@dataclass(frozen=True)
class ReceiverUrl:
    """A webhook URL's parts a delivery connects with: ``host`` is ASCII (IDNA) or an IP literal."""

    scheme: str
    host: str
    port: int


def _shown(url: str) -> str:
    return repr(url if len(url) <= 100 else url[:100] + "...")


def receiver_url(url: Any) -> ReceiverUrl:
    """Parse a webhook URL, or say what is wrong with it (400): an http(s) URL with a valid host and port."""
    if not isinstance(url, str) or not url:
        raise BadRequest("a webhook url must be a non-empty string")
    if len(url) > MAX_URL_CHARS:
        raise BadRequest(f"webhook url {_shown(url)} is longer than {MAX_URL_CHARS} characters")
    if any(c <= " " or c == "\x7f" for c in url):
        raise BadRequest(f"webhook url {_shown(url)} has spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port out of range or not a number, a bad IPv6 literal
        raise BadRequest(f"webhook url {_shown(url)} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"webhook url {_shown(url)} must be an http or https URL with a host")
    if port == 0:
        raise BadRequest(f"webhook url {_shown(url)} has port 0: a port is 1 to 65535")
    return ReceiverUrl(
        parts.scheme, _receiver_host(url, parts.hostname, "[" in parts.netloc), port or _PORTS[parts.scheme]
    )


def _receiver_host(url: str, host: str, bracketed: bool) -> str:
    try:
        if bracketed:
            return str(ipaddress.IPv6Address(host))
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        if bracketed:
            raise BadRequest(f"webhook url {_shown(url)} has an invalid IPv6 address") from None
    try:
        name = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise BadRequest(
            f"webhook url {_shown(url)} has a host name that is not a valid internationalised name"
        ) from None
    labels = name.removesuffix(".").split(".")
    if len(name.removesuffix(".")) > MAX_HOST_CHARS:
        raise BadRequest(f"webhook url {_shown(url)} has a host name longer than {MAX_HOST_CHARS} characters")
    if any(len(label) > MAX_LABEL_CHARS for label in labels):
        raise BadRequest(f"webhook url {_shown(url)} has a host name label longer than {MAX_LABEL_CHARS} characters")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise BadRequest(
            f"webhook url {_shown(url)} has an invalid host name: dot-separated labels of letters, digits, '-' or '_'"
        )
    return name


def check_key_header(webhook: Json) -> None:
    """``api_key_name`` must be a header name and ``api_key_value`` a header value (400). The
    summary never shows the value: it is a secret."""
    name, value = webhook.get("api_key_name"), webhook.get("api_key_value")
    if name is not None:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name) or len(name) > MAX_KEY_NAME_CHARS:
            raise BadRequest(
                f"api_key_name must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~, "
                f"at most {MAX_KEY_NAME_CHARS} characters)"
            )
        if name.lower() in _RESERVED_HEADERS:
            raise BadRequest(f"api_key_name cannot be {name}: the server sets that header")
    if value is not None and (
        not isinstance(value, str) or len(value) > MAX_KEY_VALUE_CHARS or not _FIELD_VALUE.fullmatch(value)
    ):
        raise BadRequest(
            "api_key_value must be an HTTP header value: visible ASCII characters, with spaces or tabs only "
            f"between them, no line breaks, at most {MAX_KEY_VALUE_CHARS} characters"
        )


def check_delivery_fields(webhook: Json) -> ReceiverUrl:
    """What a delivery to this registration needs: its URL (parsed) and a sendable key header (400)."""
    receiver = receiver_url(webhook.get("url"))
    check_key_header(webhook)
    return receiver
