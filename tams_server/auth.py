"""Authentication and authorisation: who is calling, and may they do this?

TAMS 7.0 has no anonymous access. A caller proves who they are with HTTP basic, a bearer token,
or the ``access_token`` query parameter. Tokens are static API tokens from the credential store,
or JWTs verified offline against a configured public key or JWKS file. Scopes decide what a
caller may do: ``read`` (GET/HEAD), ``write`` (PUT/POST), ``delete`` (DELETE) and ``admin``
(service settings and webhooks); ``tams-api/read`` and so on are accepted too.

Secrets are stored hashed (scrypt for passwords, SHA-256 for random API tokens) and compared in
constant time; none is ever logged.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jwt

SCOPES = ("read", "write", "delete", "admin")
SCOPE_PREFIX = "tams-api/"
TOKEN_PREFIX = "tams_"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]


class AuthError(Exception):
    """401 (who are you?) or 403 (not allowed), with a summary safe to return."""

    def __init__(self, status: int, summary: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(summary)
        self.status = status
        self.summary = summary
        self.headers = headers or {}


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


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _password_hash(password: str, salt: bytes) -> str:
    return hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT).hex()


class CredentialStore:
    """Named credentials with scopes, kept in ``credentials.json`` (only hashes) or in memory."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        if path is not None and path.exists():
            self._entries = json.loads(path.read_text())["credentials"]
        self._verified: dict[str, Principal] = {}  # basic-auth results, so scrypt runs once per secret

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
            self._verified.clear()
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
            self._save()

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

    def check_password(self, name: str, password: str) -> Principal | None:
        cache_key = hashlib.sha256(f"{name}\0{password}".encode()).hexdigest()
        if cache_key in self._verified:
            return self._verified[cache_key]
        for entry in self._entries:
            if entry["kind"] == "password" and entry["name"] == name:
                candidate = _password_hash(password, bytes.fromhex(entry["salt"]))
                if hmac.compare_digest(candidate, entry["hash"]):
                    principal = Principal(name, frozenset(entry["scopes"]))
                    if len(self._verified) > 1024:
                        self._verified.clear()
                    self._verified[cache_key] = principal
                    return principal
        return None


@dataclass(frozen=True)
class JwtSettings:
    public_key: str | None = None  # path of a PEM public key
    jwks: str | None = None  # path of a JWKS file
    issuer: str | None = None
    audience: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256", "EdDSA")
    leeway_s: int = 30


class JwtVerifier:
    def __init__(self, settings: JwtSettings) -> None:
        self.settings = settings
        self._key: Any = None
        self._jwks: jwt.PyJWKSet | None = None
        if settings.public_key:
            self._key = Path(settings.public_key).read_text()
        if settings.jwks:
            self._jwks = jwt.PyJWKSet.from_json(Path(settings.jwks).read_text())

    @staticmethod
    def looks_like_jwt(token: str) -> bool:
        return token.count(".") == 2 and not token.startswith(TOKEN_PREFIX)

    def _key_for(self, token: str) -> Any:
        if self._jwks is not None:
            kid = jwt.get_unverified_header(token).get("kid")
            for key in self._jwks.keys:
                if kid is None or key.key_id == kid:
                    return key.key
            raise jwt.InvalidTokenError("no key in the JWKS matches the token's kid")
        return self._key

    def check(self, token: str) -> Principal | None:
        try:
            claims = jwt.decode(
                token,
                self._key_for(token),
                algorithms=list(self.settings.algorithms),
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_s,
                options={"require": ["exp", "sub"], "verify_aud": self.settings.audience is not None},
            )
        except jwt.InvalidTokenError:
            return None
        raw = claims.get("scope", claims.get("scp", []))
        scopes = raw.split() if isinstance(raw, str) else list(raw)
        return Principal(str(claims.get("client_id") or claims["sub"]), normalise_scopes(scopes))


class Authenticator:
    """Finds the principal of an ASGI request, and checks it has the scope the request needs."""

    def __init__(self, store: CredentialStore, jwt_verifier: JwtVerifier | None = None) -> None:
        self.store = store
        self.jwt = jwt_verifier

    def _from_token(self, token: str) -> Principal | None:
        if self.jwt is not None and JwtVerifier.looks_like_jwt(token):
            return self.jwt.check(token)
        return self.store.check_token(token)

    def _from_basic(self, value: str) -> Principal | None:
        try:
            name, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return self.store.check_password(name, password)

    async def authenticate(self, scope: dict[str, Any]) -> Principal:
        """The caller, or AuthError(401). Removes ``access_token`` from the query so no log shows it."""
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        url_tokens = [v for k, v in query if k == "access_token"]
        if url_tokens:
            scope["query_string"] = urlencode([(k, v) for k, v in query if k != "access_token"]).encode("latin-1")
        kind, _, credential = authorization.partition(" ")
        principal = None
        if kind.lower() == "bearer" and credential:
            principal = self._from_token(credential.strip())
        elif kind.lower() == "basic" and credential:
            principal = self._from_basic(credential.strip())
        elif url_tokens:
            principal = self._from_token(url_tokens[0])
        elif not authorization:
            raise AuthError(401, "credentials are required: HTTP basic, a bearer token, or access_token")
        if principal is None:
            raise AuthError(401, "the credentials are not valid")
        return principal

    def authorise(self, principal: Principal, method: str, path: str) -> None:
        needed = required_scope(method, path)
        if needed not in principal.scopes:
            raise AuthError(403, f"{principal.name} lacks the {needed} scope this request needs")
