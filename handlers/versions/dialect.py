"""The rules of the newest API version, which every older version's dialect adjusts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from backends import events
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
