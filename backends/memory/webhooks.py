"""Webhook registrations of the in-memory store."""

from __future__ import annotations

from backends import events
from backends.base import Json, Page, PageRequest, WebhookQuery
from backends.errors import NotFound
from backends.memory.core import MemoryCore


class WebhooksMixin(MemoryCore):
    """``/service/webhooks``."""

    # --- webhooks ------------------------------------------------------------------------------
    def _webhook(self, webhook_id: str) -> Json:
        try:
            return self._webhooks[webhook_id]
        except KeyError:
            raise NotFound(f"webhook {webhook_id} not found") from None

    def all_webhooks(self) -> list[Json]:
        with self._lock:
            return [dict(w) for w in self._webhooks.values()]

    def list_webhooks(self, query: WebhookQuery, page: PageRequest) -> Page[Json]:
        with self._lock:
            return events.list_page([dict(w) for w in self._webhooks.values()], query, page)

    def get_webhook(self, webhook_id: str) -> Json:
        with self._lock:
            return dict(self._webhook(webhook_id))

    def create_webhook(self, webhook: Json) -> Json:
        webhook = events.new_registration(webhook)
        with self._lock:
            self._webhooks[webhook["id"]] = webhook
            return dict(webhook)

    def replace_webhook(self, webhook_id: str, webhook: Json) -> Json:
        with self._lock:
            webhook = events.replaced_registration(self._webhook(webhook_id), webhook)
            self._webhooks[webhook_id] = webhook
            return dict(webhook)

    def delete_webhook(self, webhook_id: str) -> None:
        with self._lock:
            self._webhook(webhook_id)
            del self._webhooks[webhook_id]

    def upsert_webhook_by_identity(self, webhook: Json) -> Json | None:
        with self._lock:
            write = events.write_by_identity(list(self._webhooks.values()), webhook)
            for webhook_id in write.deleted:
                del self._webhooks[webhook_id]
            stored = write.stored
            if stored is None:
                return None
            self._webhooks[stored["id"]] = stored
            return dict(stored)

    def set_webhook_status(self, webhook_id: str, status: str, error: Json | None = None) -> bool:
        with self._lock:
            current = self._webhooks.get(webhook_id)
            changed = None if current is None else events.server_status(current, status, error)
            if changed is None:
                return False
            self._webhooks[webhook_id] = changed
            return True
