"""The rules of the newest API version, which every older version's dialect adjusts."""

from __future__ import annotations

from dataclasses import dataclass

from backends.base import Json


@dataclass(frozen=True)
class Dialect:
    version: str

    def service(self, info: Json) -> Json:
        """``GET /service``: the stored service information, as this version shows it."""
        return {**info, "api_version": self.version}
