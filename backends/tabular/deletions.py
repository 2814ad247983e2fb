"""Deletion requests of the tabular store: starting one, the chunks the background worker deletes
(``backends.deletion``), their listing, and resuming those a stop interrupted."""

from __future__ import annotations

import json

from backends import deletion, events
from backends.base import Json
from backends.errors import NotFound
from backends.tabular.core import TabularCore, _Effects, log
from backends.tabular.engine import ALL, ROW_ID, Order, Transaction, col
from backends.tabular.tables import DELETE_REQUESTS, _changes
from backends.timerange import TimeRange


class DeletionsMixin(TabularCore):
    """``/flow-delete-requests`` and the ``backends.deletion`` worker's side of the store."""

    def _start_deletion(
        self,
        tx: Transaction,
        fx: _Effects,
        flow: Json,
        timerange: TimeRange,
        object_id: str | None,
        delete_flow: bool,
    ) -> Json:
        request = deletion.new_request(flow["id"], timerange, object_id, delete_flow)
        self._insert_request(tx, request)
        if delete_flow:
            self._flow_event(tx, fx, events.FLOW_DELETED, flow, {"flow_id": flow["id"]})
        fx.after.append(deletion.count_created)  # after the commit: a retried transaction counts once
        fx.after.append(lambda: self._worker.submit(request["id"]))
        return deletion.request_view(request)

    def _insert_request(self, tx: Transaction, request: Json) -> None:
        rows = tx.select(DELETE_REQUESTS.name, ["seq"], order=[Order("seq", True)], limit=1).to_pylist()
        seq = rows[0]["seq"] + 1 if rows else 0
        row = {"id": request["id"], "seq": seq, "status": request["status"], "doc": json.dumps(request)}
        tx.insert(DELETE_REQUESTS.name, DELETE_REQUESTS.rows([row]))

    def load_delete_request(self, request_id: str) -> Json:
        rows = self._read(lambda tx: self._rows(tx, DELETE_REQUESTS, col("id") == request_id, columns=["doc"]))
        if not rows:
            raise KeyError(request_id)
        return json.loads(rows[0]["doc"])

    def save_delete_request(self, request: Json) -> None:
        def body(tx: Transaction, fx: _Effects) -> None:
            rows = self._rows(tx, DELETE_REQUESTS, col("id") == request["id"], row_ids=True, columns=[])
            if not rows:
                self._insert_request(tx, request)
                return
            changes = {"status": request["status"], "doc": json.dumps(request)}
            tx.update(DELETE_REQUESTS.name, _changes(DELETE_REQUESTS, [rows[0][ROW_ID]], [changes]))

        with self._locks.session() as held:
            held.requests()
            self._write(body)

    def delete_chunk(self, request: Json, limit: int) -> TimeRange:
        flow_id = request["flow_id"]

        def body(tx: Transaction, fx: _Effects) -> TimeRange:
            record = self._flow_or_none(tx, flow_id)
            if record is None:
                return TimeRange.never()
            remaining = TimeRange.parse(request["timerange_remaining"])
            return self._delete_covered(tx, fx, record, remaining, request.get("object_id"), limit)

        with self._locks.session() as held:
            held.flows([flow_id]).all_objects()
            return self._write(body)

    def finish_flow_delete(self, request: Json) -> None:
        flow_id = request["flow_id"]
        with self._locks.session() as held:
            held.catalog()
            collectors = self._read(lambda tx: self._collectors_of(tx, [flow_id]).get(flow_id, set()))
            held.flows([flow_id, *collectors]).all_objects()

            def body(tx: Transaction, fx: _Effects) -> None:
                record = self._flow_or_none(tx, flow_id)
                if record is not None:
                    self._remove_flow(tx, fx, record, announce=False)

            self._write(body)

    def list_delete_requests(self) -> list[Json]:
        def body(tx: Transaction, fx: _Effects) -> list[Json]:
            rows = self._rows(tx, DELETE_REQUESTS, ALL, row_ids=True, order=[Order("seq")])
            requests = [(r[ROW_ID], json.loads(r["doc"])) for r in rows]
            tx.delete(DELETE_REQUESTS.name, [row_id for row_id, r in requests if deletion.expired(r)])
            return [deletion.request_view(r) for _, r in requests if not deletion.expired(r)]

        with self._locks.session() as held:
            held.requests()
            return self._write(body)

    def get_delete_request(self, request_id: str) -> Json:
        rows = self._read(lambda tx: self._rows(tx, DELETE_REQUESTS, col("id") == request_id, columns=["doc"]))
        request = json.loads(rows[0]["doc"]) if rows else None
        if request is None or deletion.expired(request):
            raise NotFound(f"deletion request {request_id} not found")
        return deletion.request_view(request)

    def resume_deletions(self) -> list[str]:
        """Queue the deletion requests a stop interrupted (status created or started)."""
        where = col("status").isin(["created", "started"])
        rows = self._read(lambda tx: self._rows(tx, DELETE_REQUESTS, where, columns=["id"], order=[Order("seq")]))
        for row in rows:
            log.info("resuming deletion request %s", row["id"])
            self._worker.submit(row["id"])
        return [r["id"] for r in rows]
