"""The service resource of the tabular store: service info (kept in ``meta``) and storage backends."""

from __future__ import annotations

import json
from typing import Any

from backends import base, rules
from backends.base import Json
from backends.tabular.core import TabularCore, _Effects
from backends.tabular.engine import ROW_ID, Transaction, col
from backends.tabular.tables import META, _changes


class ServiceMixin(TabularCore):
    """``/service`` and ``/service/storage-backends``."""

    def _meta(self, tx: Transaction, key: str) -> tuple[str | None, Any]:
        rows = self._rows(tx, META, col("key") == key, row_ids=True)
        return (rows[0]["value"], rows[0][ROW_ID]) if rows else (None, None)

    def _set_meta(self, tx: Transaction, key: str, value: str) -> None:
        _, row_id = self._meta(tx, key)
        if row_id is None:
            tx.insert(META.name, META.rows([{"key": key, "value": value}]))
        else:
            tx.update(META.name, _changes(META, [row_id], [{"value": value}]))

    def service_info(self) -> Json:
        stored = self._read(lambda tx: self._meta(tx, "service")[0])
        return rules.service_info(json.loads(stored or "{}"), self._policy, self._url_lifetime)

    def update_service_info(self, changes: Json) -> None:
        def body(tx: Transaction, fx: _Effects) -> None:
            service = json.loads(self._meta(tx, "service")[0] or "{}")
            service.update({k: v for k, v in changes.items() if k in ("name", "description")})
            self._set_meta(tx, "service", json.dumps(service))

        with self._locks.session() as held:
            held.catalog()
            self._write(body)

    def readiness(self) -> dict[str, str | None]:
        def read_meta() -> None:
            self._read(lambda tx: self._meta(tx, "service"))

        return {"database": base.failure(read_meta), **super().readiness()}

    def storage_backends(self) -> list[Json]:
        return [s.info.to_json() for s in self._stores.values()]
