"""The rules of the newest API version, which every older version's dialect adjusts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backends.base import Json


@dataclass(frozen=True)
class Dialect:
    version: str

    def service(self, info: Json) -> Json:
        """``GET /service``: the stored service information, as this version shows it."""
        return {**info, "api_version": self.version}

    # --- tags ------------------------------------------------------------------------------
    def tag_values(self, raw: str) -> frozenset[str]:
        """The values a ``tag.{name}`` query value accepts: a comma-separated list, any-of."""
        return frozenset(raw.split(","))

    def tag(self, value: Any) -> Any:
        """One tag value as this version shows it (stored values are strings or lists of strings)."""
        return value

    def tags(self, tags: Json) -> Json:
        """A ``tags`` object as this version shows it."""
        return {name: self.tag(value) for name, value in tags.items()}

    # --- resources -------------------------------------------------------------------------
    def flow(self, flow: Json) -> Json:
        """A stored flow as this version shows it (every response and event body with flows)."""
        return self._with_tags(flow)

    def source(self, source: Json) -> Json:
        """A stored source as this version shows it."""
        return self._with_tags(source)

    def _with_tags(self, doc: Json) -> Json:
        if not doc.get("tags"):
            return doc
        return {**doc, "tags": self.tags(doc["tags"])}
