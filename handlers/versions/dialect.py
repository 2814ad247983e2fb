"""The rules of the newest API version, which every older version's dialect adjusts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from backends import events
from backends.base import Json

VIDEO = "urn:x-nmos:format:video"


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

    def _with_tags(self, doc: Json) -> Json:
        if not doc.get("tags"):
            return doc
        return {**doc, "tags": self.tags(doc["tags"])}

    # --- flows -----------------------------------------------------------------------------
    def flow(self, doc: Json) -> Json:
        """A stored flow as this version shows it (every response and event body carrying a flow).

        A video flow stored without ``frame_rate`` and without ``vfr`` (written by the 7.0-only
        release, before 7.0 PUTs were stored with ``vfr: true``) is shown with ``vfr: true``, the
        only valid 8.x form of it.
        """
        doc = self._with_tags(doc)
        params = doc.get("essence_parameters")
        legacy = isinstance(params, dict) and "frame_rate" not in params and "vfr" not in params
        if doc.get("format") == VIDEO and legacy:
            return {**doc, "essence_parameters": {**params, "vfr": True}}
        return doc

    def flow_collection(self, items: list[Json]) -> list[Json]:
        """A flow's ``flow_collection`` (ordered) as this version shows it."""
        return items

    def flow_put(self, body: Json) -> Json:
        """A flow PUT body of this version, as the store (the newest version's superset) takes it."""
        return body

    # --- sources ---------------------------------------------------------------------------
    def source(self, doc: Json) -> Json:
        """A stored source as this version shows it."""
        return self._with_tags(doc)

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
        if isinstance(payload.get("flow"), dict):
            payload = {**payload, "flow": self.flow(payload["flow"])}
        if isinstance(payload.get("source"), dict):
            payload = {**payload, "source": self.source(payload["source"])}
        return payload

    def webhook_event(self, webhook: Json, event: events.Event) -> Json:
        """The body delivered to a registration made under this version."""
        return events.body_for(webhook, event, self.event_payload, self.shows_minted_labels)

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
