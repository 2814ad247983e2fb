"""Webhook registrations of the tabular store, by id (cached in memory, reloaded after each change).

Rows the 7.0-era server wrote have no ``id`` (and their documents no ``id``/``status``): the store
mints them when it opens, in a write transaction, so they keep the same id from then on.
"""

from __future__ import annotations

import json
from typing import Any

from backends import events
from backends.base import Json, Page, PageRequest, WebhookQuery
from backends.errors import NotFound
from backends.tabular.core import TabularCore, _Effects
from backends.tabular.engine import ALL, ROW_ID, Order, Transaction, col
from backends.tabular.tables import WEBHOOKS, _changes


def _webhook_row(webhook: Json) -> Json:
    return {
        "id": webhook["id"],
        "url": webhook.get("url"),
        "api_key_name": webhook.get("api_key_name"),
        "api_key_value": webhook.get("api_key_value"),
        "doc": json.dumps(webhook),
    }


class WebhooksMixin(TabularCore):
    """``/service/webhooks``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._read(lambda tx: self._rows(tx, WEBHOOKS, col("id").isnull(), columns=["seq"])):
            self._give_webhooks_ids()

    def _load_webhooks(self) -> list[Json]:
        with self._webhooks_lock:
            if self._webhooks is None:
                rows = self._read(lambda tx: self._rows(tx, WEBHOOKS, ALL, columns=["seq", "doc"]))
                rows.sort(key=lambda r: r["seq"])  # oldest first (sorted here: not every engine orders)
                self._webhooks = [json.loads(r["doc"]) for r in rows]
            return self._webhooks

    def _give_webhooks_ids(self) -> None:
        """Mint ids (and the status ``created``) for registrations stored before ids existed."""

        def body(tx: Transaction, fx: _Effects) -> None:
            rows = self._rows(tx, WEBHOOKS, col("id").isnull(), row_ids=True, columns=["doc"])
            if rows:
                docs = [events.with_id(json.loads(r["doc"])) for r in rows]
                changes = [{"id": d["id"], "doc": json.dumps(d)} for d in docs]
                tx.update(WEBHOOKS.name, _changes(WEBHOOKS, [r[ROW_ID] for r in rows], changes))

        with self._locks.session() as held:
            held.catalog()
            self._write(body)

    def _changed_webhooks(self) -> None:
        with self._webhooks_lock:
            self._webhooks = None  # reloaded, in table order, on next use

    def _webhook_rows(self, tx: Transaction, webhook_id: str) -> list[Json]:
        return self._rows(tx, WEBHOOKS, col("id") == webhook_id, row_ids=True, columns=["doc"])

    def _change_webhooks(self, body: Any) -> Any:
        """Run a write on the webhooks table under the catalog lock; the cache is reloaded after."""
        with self._locks.session() as held:
            held.catalog()
            try:
                return self._write(body)
            finally:
                self._changed_webhooks()

    def all_webhooks(self) -> list[Json]:
        return [dict(w) for w in self._load_webhooks()]

    def list_webhooks(self, query: WebhookQuery, page: PageRequest) -> Page[Json]:
        return events.list_page(self.all_webhooks(), query, page)

    def get_webhook(self, webhook_id: str) -> Json:
        for webhook in self._load_webhooks():
            if webhook["id"] == webhook_id:
                return dict(webhook)
        raise NotFound(f"webhook {webhook_id} not found")

    def create_webhook(self, webhook: Json) -> Json:
        webhook = events.new_registration(webhook)

        def body(tx: Transaction, fx: _Effects) -> Json:
            last = tx.select(WEBHOOKS.name, ["seq"], order=[Order("seq", True)], limit=1).to_pylist()
            row = {**_webhook_row(webhook), "seq": last[0]["seq"] + 1 if last else 0}
            tx.insert(WEBHOOKS.name, WEBHOOKS.rows([row]))
            return webhook

        return dict(self._change_webhooks(body))

    def replace_webhook(self, webhook_id: str, webhook: Json) -> Json:
        def body(tx: Transaction, fx: _Effects) -> Json:
            rows = self._webhook_rows(tx, webhook_id)
            if not rows:
                raise NotFound(f"webhook {webhook_id} not found")
            replaced = events.replaced_registration(json.loads(rows[0]["doc"]), webhook)
            tx.update(WEBHOOKS.name, _changes(WEBHOOKS, [rows[0][ROW_ID]], [_webhook_row(replaced)]))
            return replaced

        return dict(self._change_webhooks(body))

    def delete_webhook(self, webhook_id: str) -> None:
        def body(tx: Transaction, fx: _Effects) -> None:
            rows = self._webhook_rows(tx, webhook_id)
            if not rows:
                raise NotFound(f"webhook {webhook_id} not found")
            tx.delete(WEBHOOKS.name, [r[ROW_ID] for r in rows])

        self._change_webhooks(body)

    def upsert_webhook_by_identity(self, webhook: Json) -> Json | None:
        """The 7.0 upsert: the identity's rows are read and written in one write transaction, under
        the catalog lock, so concurrent POSTs of one identity (any process) leave one registration."""

        def body(tx: Transaction, fx: _Effects) -> Json | None:
            rows = self._rows(tx, WEBHOOKS, ALL, row_ids=True, columns=["seq", "doc"])
            rows.sort(key=lambda r: r["seq"])  # oldest first
            docs = [json.loads(r["doc"]) for r in rows]
            write = events.write_by_identity(docs, webhook)
            row_of = {d["id"]: r[ROW_ID] for d, r in zip(docs, rows, strict=True)}
            if write.deleted:
                tx.delete(WEBHOOKS.name, [row_of[i] for i in write.deleted])
            if write.created is not None:
                seq = max((r["seq"] for r in rows), default=-1) + 1
                tx.insert(WEBHOOKS.name, WEBHOOKS.rows([{**_webhook_row(write.created), "seq": seq}]))
            if write.replaced is not None:
                changes = [_webhook_row(write.replaced)]
                tx.update(WEBHOOKS.name, _changes(WEBHOOKS, [row_of[write.replaced["id"]]], changes))
            return write.stored

        stored = self._change_webhooks(body)
        return None if stored is None else dict(stored)

    def set_webhook_status(self, webhook_id: str, status: str, error: Json | None = None) -> bool:
        cached = next((w for w in self._load_webhooks() if w["id"] == webhook_id), None)
        if cached is None or events.server_status(cached, status, error) is None:
            return False  # nothing to write (every change in this process reloads the cache)

        def body(tx: Transaction, fx: _Effects) -> bool:
            rows = self._webhook_rows(tx, webhook_id)
            changed = events.server_status(json.loads(rows[0]["doc"]), status, error) if rows else None
            if changed is None:
                return False
            tx.update(WEBHOOKS.name, _changes(WEBHOOKS, [rows[0][ROW_ID]], [{"doc": json.dumps(changed)}]))
            return True

        return bool(self._change_webhooks(body))
