"""Media objects of the tabular store: storage allocation, where an object's bytes are, the count of
segments referencing each object (per flow and in all), reclamation, and the S3 stores a backend
is configured with."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from backends import media_objects as mo
from backends import rules
from backends.base import BackendServices, Json, Page, PageRequest, StorageRequest, TagFilter, UrlOptions
from backends.errors import BadRequest, NotFound
from backends.objectstore import ObjectStore, copy_object
from backends.tabular.core import TabularCore, _Effects
from backends.tabular.engine import ROW_ID, TableEngine, TableSpec, Transaction, col
from backends.tabular.locks import LockManager
from backends.tabular.tables import (
    FLOWS,
    OBJECT_FLOWS,
    OBJECTS,
    _changes,
    insert_rows,
    persistent_value,
    update_rows,
)

# ``kind`` of an object allocated but not registered yet (NULL: a row written before 8.x).
ALLOCATED = "allocated"


def _kind(row: Json) -> str | None:
    """media or init once registered; None while only allocated. A row from before 8.x (kind NULL)
    is a registered media object unless still allocated for a flow."""
    kind = row.get("kind")
    if kind == ALLOCATED:
        return None
    if kind is None:
        return None if row.get("allocated_for") is not None else mo.MEDIA
    return kind


def _facts(row: Json) -> mo.ObjectFacts | None:
    if _kind(row) != mo.MEDIA:
        return None
    return mo.ObjectFacts(row.get("object_timerange"), row.get("key_frame_count"), row.get("init_object_id"))


def _json_list(text: str | None) -> list[Any]:
    return [] if not text or text == "[]" else json.loads(text)  # most rows: spare the decoder


def _external(row: Json) -> list[Json]:
    return _json_list(row.get("external"))


def _controlled_ids(row: Json) -> list[str]:
    copies = _json_list(row.get("copies"))
    return ([row["storage_id"]] if row.get("storage_id") is not None else []) + copies


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

    def _object_urls(self, object_id: str, row: Json | None, options: UrlOptions) -> list[Json] | None:
        """Every instance of an object as ``get_urls``, filtered by ``options`` (``row``: its objects row)."""
        if options.accept_get_urls == ():
            return None
        controlled = []
        for storage_id in _controlled_ids(row) if row is not None else []:
            store = self._stores.get(storage_id)
            if store is not None:
                controlled.append(mo.controlled_url(store, object_id, options))
        return mo.instance_urls(controlled, _external(row) if row is not None else [], options)

    def _object_rows(self, tx: Transaction, object_ids: Iterable[str]) -> dict[str, Json]:
        """The objects rows of these objects and of their init objects, by id."""
        rows = {r["id"]: r for r in self._rows_in(tx, OBJECTS, "id", object_ids)}
        inits = {r["init_object_id"] for r in rows.values() if r.get("init_object_id")} - rows.keys()
        rows.update({r["id"]: r for r in self._rows_in(tx, OBJECTS, "id", inits)})
        return rows

    def _register(
        self,
        objects: dict[str, _ObjectState],
        references: dict[str, _ObjectState],
        object_id: str,
        posted: mo.PostedFacts,
        instances: list[Json],
        flow_id: str,
        clock: float,
    ) -> None:
        """A segment uses the object as media (and its init object): check, then count (``memory._add_segment``)."""
        state = objects.get(object_id)
        row = state.row if state is not None else {}
        if state is not None:
            mo.check_use(object_id, _kind(row), mo.MEDIA)
        facts = mo.register_facts(object_id, _facts(row) if state is not None else None, posted)
        external = mo.add_instances(object_id, _external(row), instances)
        init_id = facts.init_object_id
        init_state = objects.get(init_id) if init_id is not None else None
        if init_id is not None and init_state is not None:
            if init_state.row["allocated_for"] not in (None, flow_id):
                owner = init_state.row["allocated_for"]
                raise BadRequest(f"object {init_id} was allocated for flow {owner} and is not registered yet")
            mo.check_use(init_id, _kind(init_state.row), mo.INIT)
        if state is None:  # last: a segment with another fault gets that error
            mo.check_reachable(object_id, instances, flow_id)
        self._reference(objects, references, object_id, flow_id, clock)
        objects[object_id].row.update(
            kind=mo.MEDIA,
            object_timerange=facts.timerange,
            key_frame_count=facts.key_frame_count,
            init_object_id=init_id,
            external=json.dumps(external) if external else "[]",
        )
        if init_id is not None:
            self._reference(objects, references, init_id, flow_id, clock)
            objects[init_id].row["kind"] = mo.INIT

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
                "kind": None,
                "object_timerange": None,
                "key_frame_count": None,
                "init_object_id": None,
                "external": None,
                "copies": None,
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
        # A segment's init object loses the reference too.
        inits = [objects[i].row["init_object_id"] for i in object_ids if objects[i].row.get("init_object_id")]
        objects.update(self._object_states(tx, set(inits) - objects.keys()))
        object_ids = [*object_ids, *(i for i in inits if i in objects)]
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
                if not _controlled_ids(row):
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
                ids = [store.new_object_id() for _ in range(rules.allocation_size(request))]
            content_type = request.content_type or record.flow["container"]
            clock = time.time()
            rows = [
                {
                    "id": i,
                    "storage_id": info.id,
                    "allocated_for": flow_id,
                    "segments": 0,
                    "allocated_at": clock,
                    "kind": ALLOCATED,
                }
                for i in ids
            ]
            insert_rows(tx, OBJECTS, rows)
            return {"media_objects": [rules.media_object(store, i, content_type, request.presigned) for i in ids]}

        with self._locks.session() as held:
            held.flows([flow_id]).objects(request.object_ids or ())
            return self._write(body)

    def _registered_row(self, tx: Transaction, object_id: str, row_ids: bool = False) -> Json:
        rows = self._rows(tx, OBJECTS, col("id") == object_id, row_ids=row_ids)
        if not rows or _kind(rows[0]) is None:
            raise NotFound(f"object {object_id} not found")
        return rows[0]

    def get_object(
        self,
        object_id: str,
        page: PageRequest,
        urls: UrlOptions | None = None,
        flow_tags: TagFilter | None = None,
    ) -> tuple[Json, Page[str]]:
        options = urls or UrlOptions()

        def body(tx: Transaction) -> tuple[Json, Page[str]]:
            row = self._registered_row(tx, object_id)
            refs = self._rows(tx, OBJECT_FLOWS, col("object_id") == object_id, columns=["flow_id", "segments"])
            referencing = sorted(r["flow_id"] for r in refs if r["segments"] > 0)
            if flow_tags is not None and (flow_tags.equals or flow_tags.exists):
                docs = {r["id"]: json.loads(r["doc"]) for r in self._rows_in(tx, FLOWS, "id", referencing)}
                referencing = [f for f in referencing if f in docs and rules.matches_tags(docs[f], flow_tags)]
            flows = rules.paged(referencing, page, key=None)
            facts = _facts(row)
            init = None
            if facts is not None and facts.init_object_id is not None:
                init_rows = self._rows(tx, OBJECTS, col("id") == facts.init_object_id)
                init_urls = self._object_urls(facts.init_object_id, init_rows[0] if init_rows else None, options)
                init = mo.init_view(facts.init_object_id, init_urls, "id")
            result = mo.object_view(
                object_id,
                flows.items,
                row["first_referenced_by"],
                _kind(row),
                facts,
                self._object_urls(object_id, row, options),
                init,
            )
            return result, flows

        return self._read(body)

    def add_object_instance(self, object_id: str, body: Json) -> None:
        labels = [s.info.label for s in self._stores.values()]

        def write(tx: Transaction, fx: _Effects) -> None:
            row = self._registered_row(tx, object_id, row_ids=True)
            mo.check_instance_post(body, labels)
            if "url" in body:
                external = mo.add_instances(object_id, _external(row), [{"url": body["url"], "label": body["label"]}])
                tx.update(OBJECTS.name, _changes(OBJECTS, [row[ROW_ID]], [{"external": json.dumps(external)}]))
                return
            target = self._stores.get(body["storage_id"])
            if target is None:
                raise BadRequest(f"unknown storage_id {body['storage_id']}")
            held = _controlled_ids(row)
            mo.check_copy(object_id, target.info.id, [i for i in held if i in self._stores])
            sources = [self._stores[i] for i in held if i in self._stores]
            copy_object(sources[0], target, object_id)
            self._save_controlled(tx, row, [*held, target.info.id])

        with self._locks.session() as locks:
            locks.objects([object_id])
            self._write(write)

    def record_upload(self, object_id: str, size: int) -> None:
        def write(tx: Transaction, fx: _Effects) -> None:
            rows = self._rows(tx, OBJECTS, col("id") == object_id, row_ids=True)
            if rows and rows[0].get("size") != size:  # bytes are write-once: a size is set once
                tx.update(OBJECTS.name, _changes(OBJECTS, [rows[0][ROW_ID]], [{"size": size}]))

        with self._locks.session() as locks:
            locks.objects([object_id])
            self._write(write)

    def delete_object_instance(self, object_id: str, storage_id: str | None, label: str | None) -> None:
        mo.instance_to_remove(storage_id, label)
        deleted: list[str] = []

        def write(tx: Transaction, fx: _Effects) -> None:
            row = self._registered_row(tx, object_id, row_ids=True)
            held = _controlled_ids(row)
            external = _external(row)
            wanted = storage_id
            if label is not None:
                by_label = [i for i in held if i in self._stores and self._stores[i].info.label == label]
                wanted = by_label[0] if by_label else None
            if wanted is None:
                if not any(i["label"] == label for i in external):
                    raise BadRequest(f"object {object_id} has no instance labelled {label!r}")
                mo.check_not_last(len(held) + len(external), object_id)
                kept = [i for i in external if i["label"] != label]
                tx.update(OBJECTS.name, _changes(OBJECTS, [row[ROW_ID]], [{"external": json.dumps(kept)}]))
                return
            if wanted not in held:
                raise BadRequest(f"object {object_id} has no instance on storage {wanted}")
            mo.check_not_last(len(held) + len(external), object_id)
            self._save_controlled(tx, row, [i for i in held if i != wanted])
            deleted.append(wanted)

        with self._locks.session() as locks:
            locks.objects([object_id])
            self._write(write)
        for storage_id_gone in deleted:
            store = self._stores.get(storage_id_gone)
            if store is not None:
                store.delete(object_id)

    @staticmethod
    def _save_controlled(tx: Transaction, row: Json, controlled: list[str]) -> None:
        change = {"storage_id": controlled[0] if controlled else None, "copies": json.dumps(controlled[1:])}
        tx.update(OBJECTS.name, _changes(OBJECTS, [row[ROW_ID]], [change]))

    def object_store(self, storage_id: str) -> ObjectStore | None:
        return self._stores.get(storage_id)

    def reclaim_objects(self) -> int:
        """Forget objects past their grace period and delete their bytes."""
        clock = time.time()
        policy = self._policy
        unused = col("storage_id").notnull() & (col("segments") == 0)

        def doomed(tx: Transaction, rows: list[Json]) -> list[Json]:
            rows = [
                r
                for r in rows
                if _controlled_ids(r)
                and not r["segments"]
                and rules.reclaimable(
                    r["allocated_for"] is not None, r["allocated_at"], r["unreferenced_since"], clock, policy
                )
            ]
            if not rows:
                return rows
            namers = self._rows_in(
                tx, OBJECTS, "init_object_id", [r["id"] for r in rows], columns=["id", "init_object_id"]
            )
            spared = set(
                mo.spare_named_inits((r["id"] for r in rows), ((n["id"], n["init_object_id"]) for n in namers))
            )
            return [r for r in rows if r["id"] in spared]

        candidates = self._read(lambda tx: doomed(tx, self._rows(tx, OBJECTS, unused)))
        if not candidates:
            return 0
        with self._locks.session() as held:
            # Kept to the end of the block: the media are deleted after the commit, and another
            # server must not allocate one of these ids again before its bytes are gone.
            held.objects(r["id"] for r in candidates).keep_claims()

            def body(tx: Transaction, fx: _Effects) -> list[Json]:
                rows = doomed(tx, self._rows_in(tx, OBJECTS, "id", [r["id"] for r in candidates], unused, row_ids=True))
                tx.delete(OBJECTS.name, [r[ROW_ID] for r in rows])
                return rows

            gone = self._write(body)
            for row in gone:
                for storage_id in _controlled_ids(row):
                    store = self._stores.get(storage_id)
                    if store is not None:
                        store.delete(row["id"])
        return len(gone)


def _save_states(tx: Transaction, spec: TableSpec, states: Iterable[_ObjectState]) -> None:
    new = [s.row for s in states if s.new and s.dirty]
    changed = [s.row for s in states if not s.new and s.dirty]
    insert_rows(tx, spec, [{k: v for k, v in r.items() if k != ROW_ID} for r in new])
    if changed:
        # The columns a row is found by never change: not rewriting them spares their indexes.
        fixed = {*spec.lookup, *spec.order}
        columns = [n for n in spec.schema.names if n not in fixed and n in changed[0]]
        update_rows(tx, spec, [r[ROW_ID] for r in changed], changed, columns)


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
