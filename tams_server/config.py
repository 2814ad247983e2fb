"""Server settings: defaults, then a TOML config file, then ``TAMS_*`` environment variables,
then command-line options (each overrides the one before)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 4010
    backend: str = "memory"
    spec: str | None = None  # None: our own spec in spec/
    public_url: str | None = None  # None: derived from each request's Host header
    media_url_lifetime: int = 3600  # seconds a signed media URL stays valid
    media_secret: str | None = None  # None: a random secret per process
    backend_options: dict[str, Any] = field(default_factory=dict)

    def update(self, values: dict[str, Any], source: str) -> None:
        known = {f.name: f for f in fields(self)}
        for key, value in values.items():
            if value is None:
                continue
            if key not in known:
                raise ValueError(f"{source}: unknown setting {key!r}")
            if known[key].type == "int":
                value = int(value)
            setattr(self, key, value)


ENV_PREFIX = "TAMS_"


def from_environment(environ: dict[str, str] | None = None) -> dict[str, Any]:
    environ = dict(os.environ if environ is None else environ)
    names = {f.name for f in fields(Settings)} - {"backend_options"}
    return {n: environ[ENV_PREFIX + n.upper()] for n in names if ENV_PREFIX + n.upper() in environ}


def load(config_file: str | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    settings = Settings()
    if config_file:
        with Path(config_file).open("rb") as f:
            settings.update(tomllib.load(f), config_file)
    settings.update(from_environment(), "environment")
    settings.update(overrides or {}, "command line")
    return settings
