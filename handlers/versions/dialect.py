"""The rules of the newest API version, which every older version's dialect adjusts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from backends import events
from backends.base import Json


@dataclass(frozen=True)
class Dialect:
    version: str

    def service(self, info: Json) -> Json:
        """``GET /service``: the stored service information, as this version shows it."""
        return {**info, "api_version": self.version}

    # --- webhooks ----------------------------------------------------------------------------
    # Whether a persistent delivery failure moves a registration made under this version to ``error``.
    webhook_error_status: ClassVar[bool] = True

    def webhook_request(self, body: Json) -> Json:
        """A registration body as this version's client sent it, marked with this version."""
        return events.registration_request(body, self.version)

    def webhook(self, webhook: Json) -> Json:
        """A stored registration as this version shows it."""
        return events.public_view(webhook)

    def event_payload(self, event_type: str, payload: Json) -> Json:
        """An event's payload as this version shows it (stored documents are the newest version's)."""
        return payload

    def webhook_event(self, webhook: Json, event: events.Event) -> Json:
        """The body delivered to a registration made under this version."""
        return events.body_for(webhook, event, self.event_payload)

    # --- media objects and segments (8.x shapes; older versions drop what they do not know) ---
    # Whether labels the store minted for unlabelled uncontrolled URLs are shown (backends.media_objects).
    shows_minted_labels: ClassVar[bool] = True

    def object(self, doc: Json) -> Json:
        """``GET /objects/{id}``: the stored object as this version shows it."""
        return doc

    def segment(self, doc: Json) -> Json:
        """One segment of ``GET /flows/{id}/segments`` as this version shows it."""
        return doc

    def storage(self, doc: Json) -> Json:
        """The answer of ``POST /flows/{id}/storage`` as this version shows it."""
        return doc
