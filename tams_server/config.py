"""Server settings: defaults, then a TOML config file, then ``TAMS_*`` environment variables,
then command-line options (each overrides the one before)."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from backends.base import StorePolicy


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 4010
    backend: str = "local"  # metadata in SQLite and media on disk, under data_dir
    # API versions served, each under /v{version} ("7.0", "8.2"); None: every version in spec/.
    versions: list[str] | None = None
    # The version also served at the root "/"; None: the newest served.
    default_version: str | None = None
    # One spec file to serve alone (its info.version decides the version); None: ours, per version.
    spec: str | None = None
    # Per version, a spec file to serve instead of ours (e.g. the official one): {"8.2": "path"}.
    specs: dict[str, str] = field(default_factory=dict)
    public_url: str | None = None  # None: derived from each request's Host header
    # Host names (optionally host:port) requests may be addressed to; others get 400. None: any
    # (the server warns at start-up when it listens beyond loopback with neither this nor public_url).
    trusted_hosts: list[str] | None = None
    media_url_lifetime: int = 3600  # seconds a signed media URL stays valid
    media_secret: str | None = None  # None: a random secret per process
    backend_options: dict[str, Any] = field(default_factory=dict)
    # Where the server keeps its state (credentials; the local backend's data). None: memory only.
    data_dir: str | None = "tams-data"
    # Authentication. The admin credentials are created at start-up when missing.
    insecure_no_auth: bool = False  # development only: every request is allowed
    admin_user: str | None = None
    admin_password: str | None = None
    admin_token: str | None = None
    jwt_public_key: str | None = None  # PEM file
    jwt_jwks: str | None = None  # JWKS file
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # Webhooks: allow receivers on loopback/private addresses (off: SSRF guard).
    webhooks_allow_private: bool = False
    # Limits (see README "Limits"). Bodies of API requests (JSON) and of media uploads, in bytes.
    max_body_bytes: int = 8 * 2**20
    max_string_bytes: int = 64 * 2**10  # any one string in a JSON body
    max_media_bytes: int = 4 * 2**30
    # Slow clients: the request line and headers must arrive within header_timeout_s; each chunk of a
    # body within body_idle_timeout_s; a whole JSON body within body_timeout_s.
    header_timeout_s: float = 10.0
    body_idle_timeout_s: float = 30.0
    body_timeout_s: float = 60.0
    max_connections: int = 4096  # open at once; more are answered 503
    # Failed credentials: after auth_failure_limit failures in auth_failure_window_s from one client
    # (or against one user name), further attempts get 429 with Retry-After until the window passes.
    auth_failure_limit: int = 20
    auth_failure_window_s: float = 60.0
    password_check_concurrency: int = 1  # password hashes computed at once (off the event loop)
    # Webhook receivers: at most this much of a response is read, and one delivery attempt ends after
    # webhook_attempt_timeout_s whatever the receiver does.
    webhook_response_limit_bytes: int = 64 * 2**10
    webhook_attempt_timeout_s: float = 10.0
    # Background work (see backends.base.StorePolicy, whose defaults these are).
    async_delete_threshold: int = StorePolicy.async_delete_threshold  # larger deletes answer 202
    delete_chunk: int = StorePolicy.delete_chunk  # segments per step of a background delete
    object_grace_s: float = StorePolicy.unreferenced_grace_s  # unreferenced objects keep bytes this long
    unregistered_object_ttl_s: float = StorePolicy.unregistered_ttl_s  # never registered: reclaimed after
    # Operations (see README "Run it like a service"). API documentation (<base>/openapi.json,
    # <base>/ui/) carries no store data: served without credentials unless docs_require_auth.
    docs_require_auth: bool = False
    # Prometheus text at /metrics, for credentials with the "metrics" scope (admin has every scope).
    metrics: bool = True
    # "text": uvicorn's access lines; "json": one JSON object per log line, one per request.
    log_format: str = "text"

    def update(self, values: dict[str, Any], source: str) -> None:
        known = {f.name: f for f in fields(self)}
        for key, value in values.items():
            if value is None:
                continue
            if key not in known:
                raise ValueError(f"{source}: unknown setting {key!r}")
            setattr(self, key, _convert(known[key].type, value))


def _convert(kind: Any, value: Any) -> Any:
    """Values from the environment arrive as strings: give them the setting's type."""
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind.startswith("list[str]") and isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if kind == "bool" and isinstance(value, str):
        if value.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ValueError(f"not a boolean: {value!r}")
        return value.lower() in ("1", "true", "yes", "on")
    return value


ENV_PREFIX = "TAMS_"


def from_environment(environ: dict[str, str] | None = None) -> dict[str, Any]:
    environ = dict(os.environ if environ is None else environ)
    names = {f.name for f in fields(Settings)} - {"backend_options", "specs"}
    found: dict[str, Any] = {n: environ[ENV_PREFIX + n.upper()] for n in names if ENV_PREFIX + n.upper() in environ}
    if environ.get("TAMS_BACKEND_OPTIONS"):  # JSON: handy where a config file is awkward (containers)
        try:
            found["backend_options"] = json.loads(environ["TAMS_BACKEND_OPTIONS"])
        except ValueError as exc:
            raise ValueError(f"TAMS_BACKEND_OPTIONS is not JSON: {exc}") from None
        if not isinstance(found["backend_options"], dict):
            raise ValueError("TAMS_BACKEND_OPTIONS must be a JSON object")
    return found


def load(config_file: str | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    settings = Settings()
    if config_file:
        with Path(config_file).open("rb") as f:
            settings.update(tomllib.load(f), config_file)
    settings.update(from_environment(), "environment")
    settings.update(overrides or {}, "command line")
    return settings
