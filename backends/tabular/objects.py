"""Media objects of the tabular store: storage allocation, where an object's bytes are, the count of
segments referencing each object (per flow and in all), reclamation, and the S3 stores a backend
is configured with."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from backends import rules
from backends.base import BackendServices, Json, Page, PageRequest, StorageRequest
from backends.errors import BadRequest, NotFound
from backends.objectstore import ObjectStore
from backends.tabular.core import TabularCore, _Effects
from backends.tabular.engine import ROW_ID, TableEngine, TableSpec, Transaction, col
from backends.tabular.locks import LockManager
from backends.tabular.tables import OBJECT_FLOWS, OBJECTS, _changes, persistent_value


@dataclass
class _ObjectState:
    row: Json
    new: bool = False
    dirty: bool = False


class ObjectsMixin(TabularCore):
    """``/flows/{id}/storage``, ``/objects`` and the reference counts segment writes keep."""

    def _storage_ids(self, tx: Transaction, object_ids: Iterable[str]) -> dict[str, str | None]:
        rows = self._rows_in(tx, OBJECTS, "id", object_ids, columns=["id", "storage_id"])
        return {r["id"]: r["storage_id"] for r in rows}

    def _controlled_urls(self, segment: rules.Segment, storage_id: str | None) -> list[rules.ControlledUrl]:
        store = self._stores.get(storage_id) if storage_id is not None else None
        if store is None:
            return []
        url, presigned = store.download_url(segment.object_id)
        return [rules.ControlledUrl(url, presigned, store.info)]

    def _object_states(self, tx: Transaction, object_ids: Iterable[str]) -> dict[str, _ObjectState]:
        return {r["id"]: _ObjectState(r) for r in self._rows_in(tx, OBJECTS, "id", object_ids, row_ids=True)}

    def _flow_references(self, tx: Transaction, flow_id: str, object_ids: Iterable[str]) -> dict[str, _ObjectState]:
        rows = self._rows_in(tx, OBJECT_FLOWS, "object_id", object_ids, col("flow_id") == flow_id, row_ids=True)
        return {r["object_id"]: _ObjectState(r) for r in rows}

    @staticmethod
    def _reference(
        objects: dict[str, _ObjectState],
        references: dict[str, _ObjectState],
        object_id: str,
        flow_id: str,
        clock: float,
    ) -> None:
        """Count one more segment of ``flow_id`` on the object (``memory._add_segment``'s object half)."""
        state = objects.get(object_id)
        if state is None:
            row = {
                "id": object_id,
                "storage_id": None,
                "allocated_for": None,
                "first_referenced_by": None,
                "segments": 0,
                "allocated_at": clock,
                "unreferenced_since": None,
            }
            state = objects[object_id] = _ObjectState(row, new=True)
        elif state.row["allocated_for"] not in (None, flow_id):
            raise BadRequest(
                f"object {object_id} was allocated for flow {state.row['allocated_for']} and is not registered yet"
            )
        row = state.row
        row["allocated_for"] = None
        if not row["segments"]:
            row["first_referenced_by"] = flow_id
        row["segments"] += 1
        row["unreferenced_since"] = None
        state.dirty = True
        ref = references.get(object_id)
        if ref is None:
            ref = references[object_id] = _ObjectState(
                {"object_id": object_id, "flow_id": flow_id, "segments": 0}, new=True
            )
        ref.row["segments"] += 1
        ref.dirty = True

    def _save_objects(self, tx: Transaction, objects: dict[str, _ObjectState]) -> None:
        _save_states(tx, OBJECTS, objects.values())

    def _save_references(self, tx: Transaction, flow_id: str, references: dict[str, _ObjectState]) -> None:
        gone = [s.row[ROW_ID] for s in references.values() if s.row["segments"] <= 0 and not s.new]
        tx.delete(OBJECT_FLOWS.name, gone)
        _save_states(tx, OBJECT_FLOWS, [s for s in references.values() if s.row["segments"] > 0])

    def _drop_references(self, tx: Transaction, flow_id: str, object_ids: list[str]) -> None:
        """One segment of ``flow_id`` fewer per entry (``memory._drop_reference``)."""
        if not object_ids:
            return
        objects = self._object_states(tx, object_ids)
        references = self._flow_references(tx, flow_id, object_ids)
        clock = time.time()
        for object_id in object_ids:
            row = objects[object_id].row
            ref = references[object_id].row
            ref["segments"] -= 1
            references[object_id].dirty = True
            if ref["segments"] <= 0 and row["first_referenced_by"] == flow_id:
                row["first_referenced_by"] = None
            row["segments"] -= 1
            objects[object_id].dirty = True
        gone = []
        for state in objects.values():
            row = state.row
            if row["segments"] <= 0:
                if row["storage_id"] is None:
                    gone.append(row[ROW_ID])  # an external object nobody references is forgotten
                    state.dirty = False
                else:
                    row["unreferenced_since"] = clock
        tx.delete(OBJECTS.name, gone)
        self._save_objects(tx, objects)
        self._save_references(tx, flow_id, references)

    def allocate_storage(self, flow_id: str, request: StorageRequest) -> Json:
        def body(tx: Transaction, fx: _Effects) -> Json:
            record = self._flow(tx, flow_id)
            rules.check_storage_request(record.flow, request)
            info = rules.choose_storage([s.info for s in self._stores.values()], request.storage_id)
            store = self._stores[info.id]
            if request.object_ids is not None:
                ids = list(request.object_ids)
                existing = {r["id"] for r in self._rows_in(tx, OBJECTS, "id", ids, columns=["id"])}
                taken = [i for i in ids if i in existing]
                if taken or len(set(ids)) != len(ids):
                    raise BadRequest(f"object ids already exist or repeat: {', '.join(taken) or 'duplicates'}")
            else:
                ids = [store.new_object_id() for _ in range(request.limit or rules.DEFAULT_STORAGE_LIMIT)]
            content_type = record.flow["container"]
            clock = time.time()
            rows = [
                {"id": i, "storage_id": info.id, "allocated_for": flow_id, "segments": 0, "allocated_at": clock}
                for i in ids
            ]
            tx.insert(OBJECTS.name, OBJECTS.rows(rows))
            return {"media_objects": [{"object_id": i, "put_url": store.upload_url(i, content_type)} for i in ids]}

        with self._locks.session() as held:
            held.flows([flow_id]).objects(request.object_ids or ())
            return self._write(body)

    def get_object(self, object_id: str, page: PageRequest) -> tuple[Json, Page[str]]:
        def body(tx: Transaction) -> tuple[Json, Page[str]]:
            rows = self._rows(tx, OBJECTS, col("id") == object_id)
            if not rows:
                raise NotFound(f"object {object_id} not found")
            refs = self._rows(tx, OBJECT_FLOWS, col("object_id") == object_id, columns=["flow_id", "segments"])
            flows = rules.paged(sorted(r["flow_id"] for r in refs if r["segments"] > 0), page, key=None)
            result: Json = {"id": object_id, "referenced_by_flows": flows.items}
            if rows[0]["first_referenced_by"] is not None:
                result["first_referenced_by_flow"] = rows[0]["first_referenced_by"]
            return result, flows

        return self._read(body)

    def object_store(self, storage_id: str) -> ObjectStore | None:
        return self._stores.get(storage_id)

    def reclaim_objects(self) -> int:
        """Forget objects past their grace period and delete their bytes."""
        clock = time.time()
        policy = self._policy
        unused = col("storage_id").notnull() & (col("segments") == 0)

        def doomed(rows: list[Json]) -> list[Json]:
            return [
                r
                for r in rows
                if r["storage_id"] is not None
                and not r["segments"]
                and rules.reclaimable(
                    r["allocated_for"] is not None, r["allocated_at"], r["unreferenced_since"], clock, policy
                )
            ]

        candidates = doomed(self._read(lambda tx: self._rows(tx, OBJECTS, unused)))
        if not candidates:
            return 0
        with self._locks.session() as held:
            held.objects(r["id"] for r in candidates)

            def body(tx: Transaction, fx: _Effects) -> list[Json]:
                rows = doomed(self._rows_in(tx, OBJECTS, "id", [r["id"] for r in candidates], unused, row_ids=True))
                tx.delete(OBJECTS.name, [r[ROW_ID] for r in rows])
                return rows

            gone = self._write(body)
            for row in gone:
                store = self._stores.get(row["storage_id"])
                if store is not None:
                    store.delete(row["id"])
        return len(gone)


def _save_states(tx: Transaction, spec: TableSpec, states: Iterable[_ObjectState]) -> None:
    new = [s.row for s in states if s.new and s.dirty]
    changed = [s.row for s in states if not s.new and s.dirty]
    tx.insert(spec.name, spec.rows([{k: v for k, v in r.items() if k != ROW_ID} for r in new]))
    if changed:
        tx.update(spec.name, _changes(spec, [r[ROW_ID] for r in changed], changed))


def new_storage_id() -> str:
    return str(uuid.uuid4())


def s3_stores(
    options: Mapping[str, Any], engine: TableEngine, services: BackendServices, locks: LockManager | None = None
) -> list[ObjectStore]:
    """The S3 object stores ``options`` configure (``backends.s3store.parse_storage``), each checked
    reachable; a store keeps the id it was first given (in ``meta``, by label) unless configured.
    With ``locks``, the first id is chosen under the catalog lock (servers starting together agree)."""
    from backends.s3store import S3ObjectStore, parse_storage, storage_info

    stores: list[ObjectStore] = []
    for config in parse_storage(options, services.url_lifetime):
        storage_id = config.storage_id
        if not storage_id:
            with (locks or LockManager()).session() as held:
                held.catalog()
                storage_id = persistent_value(engine, f"s3_storage_id/{config.label}", new_storage_id)
        store = S3ObjectStore(storage_info(config, storage_id), config)
        store.check()
        stores.append(store)
    return stores
