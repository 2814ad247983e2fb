"""Webhook registrations of the tabular store (cached in memory, reloaded after each change)."""

from __future__ import annotations

import json

from backends import events
from backends.base import Json
from backends.tabular.core import TabularCore, _Effects
from backends.tabular.engine import ALL, ROW_ID, Order, Transaction, col
from backends.tabular.tables import WEBHOOKS, _changes


class WebhooksMixin(TabularCore):
    """``/service/webhooks``."""

    def _load_webhooks(self) -> list[Json]:
        with self._webhooks_lock:
            if self._webhooks is None:
                rows = self._read(lambda tx: self._rows(tx, WEBHOOKS, ALL, columns=["doc"], order=[Order("seq")]))
                self._webhooks = [json.loads(r["doc"]) for r in rows]
            return self._webhooks

    def list_webhooks(self) -> list[Json]:
        return [dict(w) for w in self._load_webhooks()]

    def register_webhook(self, webhook: Json) -> bool:
        webhook = events.prepare_webhook(webhook)
        identity = events.identity(webhook)

        def body(tx: Transaction, fx: _Effects) -> bool:
            where = ALL
            for name, value in zip(events.IDENTITY, identity, strict=True):
                where &= col(name) == value  # == None is isnull
            rows = self._rows(tx, WEBHOOKS, where, row_ids=True, columns=["seq"])
            if not webhook["events"]:
                tx.delete(WEBHOOKS.name, [r[ROW_ID] for r in rows])
                return False
            if rows:
                tx.update(WEBHOOKS.name, _changes(WEBHOOKS, [rows[0][ROW_ID]], [{"doc": json.dumps(webhook)}]))
            else:
                last = tx.select(WEBHOOKS.name, ["seq"], order=[Order("seq", True)], limit=1).to_pylist()
                row = dict(zip(events.IDENTITY, identity, strict=True))
                row.update(seq=last[0]["seq"] + 1 if last else 0, doc=json.dumps(webhook))
                tx.insert(WEBHOOKS.name, WEBHOOKS.rows([row]))
            return True

        with self._locks.session() as held:
            held.catalog()
            registered = self._write(body)
            with self._webhooks_lock:
                self._webhooks = None  # reloaded, in table order, on next use
            return registered
