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

    # --- media objects and segments (8.x shapes; older versions drop what they do not know) ---
    # Whether labels the store minted for unlabelled uncontrolled URLs are shown (backends.media_objects).
    shows_minted_labels = True

    def object(self, doc: Json) -> Json:
        """``GET /objects/{id}``: the stored object as this version shows it."""
        return doc

    def segment(self, doc: Json) -> Json:
        """One segment of ``GET /flows/{id}/segments`` as this version shows it."""
        return doc

    def storage(self, doc: Json) -> Json:
        """The answer of ``POST /flows/{id}/storage`` as this version shows it."""
        return doc
