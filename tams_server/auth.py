"""Authentication and authorisation: who is calling, and may they do this?

TAMS 7.0 has no anonymous access. A caller proves who they are with HTTP basic, a bearer token,
or the ``access_token`` query parameter. Tokens are static API tokens from the credential store,
or JWTs verified offline against a configured public key or JWKS file. Scopes decide what a
caller may do: ``read`` (GET/HEAD), ``write`` (PUT/POST), ``delete`` (DELETE) and ``admin``
(service settings and webhooks); ``tams-api/read`` and so on are accepted too.

Secrets are stored hashed (scrypt for passwords, SHA-256 for random API tokens) and compared in
constant time; none is ever logged. Passwords are checked in worker threads (scrypt costs tens of
ms), unknown user names at the same cost as known ones, and wrong passwords are throttled per client
and per user name (429); a bad JWT of any kind is a 401.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jwt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from tams_server import metrics
from tams_server.throttle import FailureThrottle, client_key

log = logging.getLogger(__name__)

# "metrics": read /metrics only (for a Prometheus scraper); admin credentials get every scope.
SCOPES = ("read", "write", "delete", "admin", "metrics")
SCOPE_PREFIX = "tams-api/"
TOKEN_PREFIX = "tams_"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
# Unknown user names are checked against this (same cost as a real check; never matches).
_DUMMY_SALT = secrets.token_bytes(16)
_NO_HASH = "-"
# Successful password checks are remembered this long, so a client sending basic credentials with
# every request pays scrypt about once a minute, not per request.
VERIFIED_TTL_S = 60.0
VERIFIED_MAX = 1024
_clock = time.monotonic  # a module attribute, so tests can move time

# Where a request's ``access_token`` is kept once taken out of its query (the scope key).
URL_TOKEN = "tams.access_token"


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]


class AuthError(Exception):
    """401 (who are you?) or 403 (not allowed), with a summary safe to return; ``reason`` (one of
    ``metrics.AUTH_REASONS``) is what ``tams_auth_failures_total`` counts it as."""

    def __init__(
        self, status: int, summary: str, headers: dict[str, str] | None = None, reason: str = "missing_scope"
    ) -> None:
        super().__init__(summary)
        self.status = status
        self.summary = summary
        self.headers = headers or {}
        self.reason = reason


def normalise_scopes(raw: Iterable[str]) -> frozenset[str]:
    """Accept ``read`` as well as ``tams-api/read``; ignore scopes we do not know."""
    names = (s[len(SCOPE_PREFIX) :] if s.startswith(SCOPE_PREFIX) else s for s in raw)
    return frozenset(n for n in names if n in SCOPES)


def required_scope(method: str, path: str) -> str:
    """The scope a request needs; ``path`` is below the API version's base path."""
    path = path.rstrip("/")
    webhooks = path == "/service/webhooks" or path.startswith("/service/webhooks/")
    if webhooks or (path == "/service" and method == "POST"):
        return "admin"
    if method == "POST" and path.startswith("/service/profiles/"):
        # Profiles are store-wide house formats that can never be changed or removed: admin only.
        return "admin"
    return {"GET": "read", "HEAD": "read", "PUT": "write", "POST": "write", "DELETE": "delete"}.get(method, "admin")


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # settings from the environment may hold surrogates


def _token_hash(token: str) -> str:
    return hashlib.sha256(_utf8(token)).hexdigest()


def _password_hash(password: str, salt: bytes) -> str:
    return hashlib.scrypt(_utf8(password), salt=salt, **_SCRYPT).hex()


class CredentialStore:
    """Named credentials with scopes, kept in ``credentials.json`` (only hashes) or in memory."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        if path is not None and path.exists():
            self._entries = json.loads(path.read_text())["credentials"]
        # Recent successful password checks, keyed by an HMAC under a per-process secret: the keys
        # are useless to anyone who reads them (unlike a plain hash of name and password).
        self._verified: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()
        self._verified_secret = secrets.token_bytes(32)
        self._verified_lock = threading.Lock()  # password checks run in worker threads
        self._generation = 0  # bumped by every change of the credentials

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[dict[str, Any]]:
        return [{k: e[k] for k in ("name", "kind", "scopes", "created")} for e in self._entries]

    def add_password(self, name: str, password: str, scopes: Iterable[str]) -> None:
        salt = secrets.token_bytes(16)
        entry = {"name": name, "kind": "password", "salt": salt.hex(), "hash": _password_hash(password, salt)}
        self._add(entry, scopes)

    def add_token(self, name: str, scopes: Iterable[str], token: str | None = None) -> str:
        """Store a token's hash; returns the token, which is shown this once only."""
        token = token or new_token()
        self._add({"name": name, "kind": "token", "hash": _token_hash(token)}, scopes)
        return token

    def remove(self, name: str) -> bool:
        with self._lock:
            kept = [e for e in self._entries if e["name"] != name]
            removed = len(kept) != len(self._entries)
            self._entries = kept
            self._forget_verified()
            self._save()
            return removed

    def _add(self, entry: dict[str, Any], scopes: Iterable[str]) -> None:
        scopes = sorted(normalise_scopes(scopes))
        if not scopes:
            raise ValueError(f"give at least one of the scopes {', '.join(SCOPES)}")
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with self._lock:
            if any(e["name"] == entry["name"] and e["kind"] == entry["kind"] for e in self._entries):
                raise ValueError(f"a {entry['kind']} credential named {entry['name']!r} exists already")
            self._entries.append({**entry, "scopes": scopes, "created": stamp})
            self._forget_verified()
            self._save()

    def _forget_verified(self) -> None:
        with self._verified_lock:
            self._verified.clear()
            self._generation += 1

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"credentials": self._entries}, f, indent=2)
        os.replace(temporary, self.path)

    def check_token(self, token: str) -> Principal | None:
        digest = _token_hash(token)
        found = None
        for entry in self._entries:  # every entry is compared, so timing does not say which matched
            if entry["kind"] == "token" and hmac.compare_digest(entry["hash"], digest):
                found = entry
        return Principal(found["name"], frozenset(found["scopes"])) if found else None

    def _verified_key(self, name: str, password: str) -> bytes:
        return hmac.new(self._verified_secret, _utf8(f"{name}\0{password}"), hashlib.sha256).digest()

    def verified_password(self, name: str, password: str) -> Principal | None:
        """The principal when this name and password were verified in the last VERIFIED_TTL_S (fast)."""
        key = self._verified_key(name, password)
        with self._verified_lock:
            found = self._verified.get(key)
            if found is not None and found[1] <= _clock():
                del self._verified[key]
                found = None
        return found[0] if found else None

    def check_password(self, name: str, password: str) -> Principal | None:
        """Runs scrypt (tens of ms: call it off the event loop) unless recently verified. An unknown
        name costs the same as a known one, so timing does not tell which names exist."""
        found = self.verified_password(name, password)
        if found is not None:
            return found
        with self._verified_lock:
            generation = self._generation
        entry = next((e for e in self._entries if e["kind"] == "password" and e["name"] == name), None)
        salt, expected = (bytes.fromhex(entry["salt"]), entry["hash"]) if entry else (_DUMMY_SALT, _NO_HASH)
        candidate = _password_hash(password, salt)
        if entry is None or not hmac.compare_digest(candidate, expected):
            return None
        principal = Principal(name, frozenset(entry["scopes"]))
        key = self._verified_key(name, password)
        with self._verified_lock:
            if generation == self._generation:  # else the credentials changed while scrypt ran
                self._verified[key] = (principal, _clock() + VERIFIED_TTL_S)
                self._verified.move_to_end(key)
                while len(self._verified) > VERIFIED_MAX:
                    self._verified.popitem(last=False)
        return principal


@dataclass(frozen=True)
class JwtSettings:
    public_key: str | None = None  # path of a PEM public key
    jwks: str | None = None  # path of a JWKS file
    issuer: str | None = None
    audience: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256", "EdDSA")
    leeway_s: int = 30


# The curve each ECDSA algorithm signs with.
_EC_CURVES = {"ES256": "secp256r1", "ES256K": "secp256k1", "ES384": "secp384r1", "ES512": "secp521r1"}


def _suits(key: Any, algorithm: str) -> bool:
    """Whether ``key`` can verify ``algorithm`` at all (PyJWT raises, not refuses, on a mismatch)."""
    if algorithm.startswith(("RS", "PS")):
        return isinstance(key, rsa.RSAPublicKey)
    if algorithm.startswith("ES"):
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == _EC_CURVES.get(algorithm)
    if algorithm == "EdDSA":
        return isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey))
    return False  # HMAC and "none" are never accepted with public keys


_PUBLIC_KEYS = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)


def _public(key: Any) -> Any:
    private = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)
    return key.public_key() if isinstance(key, private) else key


def _load_public_key(path: str) -> Any:
    """A PEM public key (or certificate, SSH public key, or private key: its public half)."""
    data = Path(path).read_bytes()
    loaders = (
        serialization.load_pem_public_key,
        lambda d: x509.load_pem_x509_certificate(d).public_key(),
        serialization.load_ssh_public_key,
        lambda d: serialization.load_pem_private_key(d, password=None),
    )
    for loader in loaders:
        try:
            return _public(loader(data))
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
    raise ValueError(f"jwt_public_key {path}: not a PEM public key or certificate")


@dataclass(frozen=True)
class _VerifyingKey:
    key: Any
    kid: str | None = None  # None: tried for any kid
    alg: str | None = None  # the JWK's "alg": only tokens of this algorithm


def _load_jwks(path: str) -> list[_VerifyingKey]:
    """The usable signing keys of a JWKS file; others (encryption keys, unknown types) are skipped."""
    document = json.loads(Path(path).read_text())
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"jwt_jwks {path}: not a JWKS (no 'keys' list)")
    keys = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = _public(jwt.PyJWK(entry).key)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            log.warning("jwt_jwks %s: key %r skipped: %s", path, entry.get("kid"), exc)
            continue
        if not isinstance(key, _PUBLIC_KEYS):
            log.warning(
                "jwt_jwks %s: key %r skipped: not a public key (shared secrets are not accepted)",
                path,
                entry.get("kid"),
            )
            continue
        kid, alg = entry.get("kid"), entry.get("alg")
        keys.append(_VerifyingKey(key, kid if isinstance(kid, str) else None, alg if isinstance(alg, str) else None))
    if not keys:
        raise ValueError(f"jwt_jwks {path}: no usable signing key")
    return keys


class JwtVerifier:
    def __init__(self, settings: JwtSettings) -> None:
        self.settings = settings
        self._keys: list[_VerifyingKey] = []
        if settings.public_key:
            self._keys.append(_VerifyingKey(_load_public_key(settings.public_key)))
        if settings.jwks:
            self._keys += _load_jwks(settings.jwks)

    @staticmethod
    def looks_like_jwt(token: str) -> bool:
        return token.count(".") == 2 and not token.startswith(TOKEN_PREFIX)

    def check(self, token: str) -> Principal | None:
        """The token's principal, or None for any token that is not valid (never an exception)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        algorithm, kid = header.get("alg"), header.get("kid")
        if not isinstance(algorithm, str) or algorithm not in self.settings.algorithms:
            return None
        for candidate in self._keys:
            if candidate.kid is not None and kid is not None and candidate.kid != kid:
                continue
            if (candidate.alg is not None and candidate.alg != algorithm) or not _suits(candidate.key, algorithm):
                continue
            try:
                claims = jwt.decode(
                    token,
                    candidate.key,
                    algorithms=[algorithm],
                    audience=self.settings.audience,
                    issuer=self.settings.issuer,
                    leeway=self.settings.leeway_s,
                    options={"require": ["exp", "sub"], "verify_aud": self.settings.audience is not None},
                )
            except (jwt.PyJWTError, ValueError, TypeError):
                continue
            return _principal_of(claims)
        return None


def _principal_of(claims: dict[str, Any]) -> Principal | None:
    """The principal a verified JWT names, or None when its claims are not of the right types."""
    raw = claims.get("scope", claims.get("scp", []))
    if isinstance(raw, str):
        scopes = raw.split()
    elif isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        scopes = raw
    else:
        return None
    name = claims.get("client_id", claims.get("sub"))
    if not isinstance(name, str) or not name:
        return None
    return Principal(name, normalise_scopes(scopes))


class Authenticator:
    """Finds the principal of an ASGI request, and checks it has the scope the request needs.

    Tokens (SHA-256, JWT signatures) are checked on the event loop: they are fast. Passwords (scrypt,
    tens of ms) are checked in worker threads, at most ``password_concurrency`` at once, so a flood
    of basic-auth attempts never delays other requests. After ``failure_limit`` wrong passwords in
    ``failure_window_s`` from one client or for one user name, further basic-auth attempts from that
    client or for that name get 429 with Retry-After, without running scrypt. At most
    ``password_queue`` checks wait for a turn (from many clients at once); beyond, 503 with Retry-After.
    """

    def __init__(
        self,
        store: CredentialStore,
        jwt_verifier: JwtVerifier | None = None,
        *,
        failure_limit: int = 20,
        failure_window_s: float = 60.0,
        password_concurrency: int = 1,
        password_queue: int = 64,
    ) -> None:
        self.store = store
        self.jwt = jwt_verifier
        self.clients = FailureThrottle(failure_limit, failure_window_s)
        self.users = FailureThrottle(failure_limit, failure_window_s)  # a table of its own: see throttle.py
        self.password_concurrency = max(1, password_concurrency)
        # Password checks waiting for a turn, at most: beyond, 503 (each holds a connection meanwhile).
        self.password_queue = password_queue
        self._waiting = 0
        self._executor = ThreadPoolExecutor(self.password_concurrency, thread_name_prefix="tams-password")
        # One semaphore per event loop (an asyncio.Semaphore belongs to the loop it first waits on).
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def _from_token(self, token: str) -> Principal | None:
        if self.jwt is not None and JwtVerifier.looks_like_jwt(token):
            return self.jwt.check(token)
        return self.store.check_token(token)

    def _refuse_if_throttled(self, client: str | None, user: bytes) -> None:
        wait = self.users.retry_after(user)
        if client is not None:
            wait = max(wait, self.clients.retry_after(client))
        if wait > 0:
            raise AuthError(
                429,
                "too many wrong passwords from this client or for this user: try again later",
                {"Retry-After": str(math.ceil(wait))},
                reason="throttled",
            )

    async def _from_basic(self, value: str, client: str | None) -> Principal | None:
        try:
            name, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthError(401, "the credentials are not valid", reason="malformed") from None
        user = hashlib.blake2b(_utf8(name), digest_size=16).digest()  # names may be long: keep a digest
        self._refuse_if_throttled(client, user)
        principal = self.store.verified_password(name, password)
        if principal is not None:
            return principal
        loop = asyncio.get_running_loop()
        slots = self._slots.setdefault(loop, asyncio.Semaphore(self.password_concurrency))
        if self._waiting >= self.password_queue:
            raise AuthError(
                503,
                "too many password checks are waiting: try again shortly (or use a token)",
                {"Retry-After": "1"},
                reason="overloaded",
            )
        self._waiting += 1
        try:
            async with slots:
                self._refuse_if_throttled(client, user)  # failures may have piled up while this one waited
                principal = await loop.run_in_executor(self._executor, self.store.check_password, name, password)
        finally:
            self._waiting -= 1
        if principal is None:
            self.users.failed(user)
            if client is not None:
                self.clients.failed(client)
        return principal

    async def authenticate(self, scope: dict[str, Any]) -> Principal:
        """The caller, or AuthError(401, or 429 when throttled). Removes ``access_token`` from the
        query so no log shows it. Every refusal is counted (``tams_auth_failures_total``)."""
        try:
            return await self._authenticate(scope)
        except AuthError as exc:
            metrics.auth_failed(exc.reason)
            raise

    async def _authenticate(self, scope: dict[str, Any]) -> Principal:
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        raw_query = scope.get("query_string", b"")
        # Parsed only when it may hold access_token (even percent-encoded): most requests have none.
        may_hold = b"access_token" in raw_query or b"%" in raw_query
        query = parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True) if may_hold else []
        url_tokens = [v for k, v in query if k == "access_token"]
        if url_tokens:
            scope["query_string"] = urlencode([(k, v) for k, v in query if k != "access_token"]).encode("latin-1")
            scope[URL_TOKEN] = url_tokens[0]  # for the routes whose links must carry it on (HLS master playlists)
        kind, _, credential = authorization.partition(" ")
        principal = None
        refusal = "malformed"  # an Authorization we cannot read: an unknown scheme, no credential
        if kind.lower() == "bearer" and credential:
            principal, refusal = self._from_token(credential.strip()), "bad_token"
        elif kind.lower() == "basic" and credential:
            principal = await self._from_basic(credential.strip(), client_key(scope.get("client")))
            refusal = "bad_password"
        elif url_tokens:
            principal, refusal = self._from_token(url_tokens[0]), "bad_token"
        elif not authorization:
            raise AuthError(
                401, "credentials are required: HTTP basic, a bearer token, or access_token", reason="no_credentials"
            )
        if principal is None:
            raise AuthError(401, "the credentials are not valid", reason=refusal)
        return principal

    def authorise(self, principal: Principal, method: str, path: str) -> None:
        needed = required_scope(method, path)
        if needed not in principal.scopes:
            metrics.auth_failed("missing_scope")
            raise AuthError(403, f"{principal.name} lacks the {needed} scope this request needs")

    def authorise_any(self, principal: Principal, scopes: frozenset[str]) -> None:
        """403 (counted) unless ``principal`` has one of ``scopes`` (routes beside the API: /metrics...)."""
        if not scopes & principal.scopes:
            metrics.auth_failed("missing_scope")
            needed = " or ".join(sorted(scopes))
            raise AuthError(403, f"{principal.name} lacks the {needed} scope this request needs")
