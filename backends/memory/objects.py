"""Storage and objects of the in-memory store: allocation, the segments referencing an object,
instances (URLs, copies), and reclamation.
"""

from __future__ import annotations

import time
from collections import Counter

from backends import media_objects as mo
from backends import rules
from backends.base import Json, Page, PageRequest, StorageRequest, TagFilter, UrlOptions
from backends.errors import BadRequest, NotFound
from backends.memory.core import MemoryCore, _Object, _paged
from backends.objectstore import ObjectStore, copy_object


class ObjectsMixin(MemoryCore):
    """``/flows/{id}/storage``, ``/objects``, object references and reclamation."""

    # --- storage and objects -------------------------------------------------------------------
    def _object_urls(self, object_id: str, options: UrlOptions) -> list[Json] | None:
        """Every instance of an object as ``get_urls``, filtered by ``options``."""
        if options.accept_get_urls == ():
            return None  # the client wants no URLs: skip signing them
        record = self._objects.get(object_id)
        if record is None:
            return [] if options.accept_get_urls is None else mo.instance_urls([], [], options)
        controlled = []
        for storage_id in record.controlled_ids():
            controlled.append(mo.controlled_url(self._stores[storage_id], object_id, options))
        return mo.instance_urls(controlled, record.external, options)

    def _usable(self, object_id: str, flow_id: str, kind: str) -> _Object:
        """The object a segment of ``flow_id`` may use as ``kind`` (a new external one if unknown)."""
        record = self._objects.get(object_id)
        if record is None:
            return _Object(object_id, stores=())
        if record.allocated_for not in (None, flow_id):
            raise BadRequest(
                f"object {object_id} was allocated for flow {record.allocated_for} and is not registered yet"
            )
        mo.check_use(object_id, record.kind, kind)
        return record

    def _claim(self, record: _Object, object_id: str, flow_id: str) -> None:
        """One more segment of ``flow_id`` uses the object (as media or as init)."""
        if record.allocated_for is not None:
            self._allocations[record.allocated_for].discard(object_id)
            record.allocated_for = None
        references = record.references
        if references is None:
            record.first_referenced_by = flow_id
            record.references = flow_id
        elif isinstance(references, str):
            record.references = Counter((references, flow_id))
        else:
            references[flow_id] += 1
        record.unreferenced_since = None

    def _drop_reference(self, object_id: str, flow_id: str) -> None:
        """A segment of ``flow_id`` no longer uses the object, nor its init object."""
        record = self._objects[object_id]
        init_id = record.init_object_id
        self._release(object_id, record, flow_id)
        if init_id is not None and init_id in self._objects:
            self._release(init_id, self._objects[init_id], flow_id)

    def _release(self, object_id: str, record: _Object, flow_id: str) -> None:
        references = record.references
        if isinstance(references, Counter):
            references[flow_id] -= 1
            left = references[flow_id] > 0
            if not left:
                del references[flow_id]
            if not references:
                record.references = None
        else:  # its only segment
            left = False
            record.references = None
        if not left and record.first_referenced_by == flow_id:
            record.first_referenced_by = None
        if record.references is None:
            if not record.controlled_ids():
                del self._objects[object_id]  # an external object nobody references is forgotten
            else:
                record.unreferenced_since = time.time()

    def allocate_storage(self, flow_id: str, request: StorageRequest) -> Json:
        with self._lock:
            flow = self._flow(flow_id)
            rules.check_storage_request(flow, request)
            info = rules.choose_storage([s.info for s in self._stores.values()], request.storage_id)
            store = self._stores[info.id]
            if request.object_ids is not None:
                ids = list(request.object_ids)
                taken = [i for i in ids if i in self._objects]
                if taken or len(set(ids)) != len(ids):
                    raise BadRequest(f"object ids already exist or repeat: {', '.join(taken) or 'duplicates'}")
            else:
                ids = [store.new_object_id() for _ in range(rules.allocation_size(request))]
            content_type = request.content_type or flow["container"]
            # One tuple, flow id and time for the whole allocation: its records share them.
            stores, owner, clock = (info.id,), flow["id"], time.time()
            for object_id in ids:
                self._objects[object_id] = _Object(object_id, stores, allocated_for=owner, allocated_at=clock)
            self._allocations.setdefault(owner, set()).update(ids)
            return {"media_objects": [rules.media_object(store, i, content_type, request.presigned) for i in ids]}

    def _registered(self, object_id: str) -> _Object:
        """The object, once a segment has registered it (an allocated id alone is not found)."""
        record = self._objects.get(object_id)
        if record is None or record.kind is None:
            raise NotFound(f"object {object_id} not found")
        return record

    def get_object(
        self,
        object_id: str,
        page: PageRequest,
        urls: UrlOptions | None = None,
        flow_tags: TagFilter | None = None,
    ) -> tuple[Json, Page[str]]:
        options = urls or UrlOptions()
        with self._lock:
            record = self._registered(object_id)
            referencing = record.referencing_flows()
            if flow_tags is not None:
                referencing = [
                    f for f in referencing if f in self._flows and rules.matches_tags(self._flows[f], flow_tags)
                ]
            flows = _paged(referencing, page, key=None)
            init = None
            facts = record.facts
            if facts is not None and facts.init_object_id is not None:
                init = mo.init_view(facts.init_object_id, self._object_urls(facts.init_object_id, options), "id")
            body = mo.object_view(
                object_id,
                flows.items,
                record.first_referenced_by,
                record.kind,
                facts,
                self._object_urls(object_id, options),
                init,
            )
            return body, flows

    def add_object_instance(self, object_id: str, body: Json) -> None:
        with self._lock:
            record = self._registered(object_id)
            mo.check_instance_post(body, [s.info.label for s in self._stores.values()])
            if "url" in body:
                record.external = mo.add_instances(
                    object_id, record.external, [{"url": body["url"], "label": body["label"]}]
                )
                return
            target = self._stores.get(body["storage_id"])
            if target is None:
                raise BadRequest(f"unknown storage_id {body['storage_id']}")
            held = record.controlled_ids()
            mo.check_copy(object_id, target.info.id, held)
            sources = [self._stores[i] for i in held]
            copy_object(sources[0], target, object_id)
            record.stores += (target.info.id,)

    def delete_object_instance(self, object_id: str, storage_id: str | None, label: str | None) -> None:
        with self._lock:
            record = self._registered(object_id)
            mo.instance_to_remove(storage_id, label)
            held = record.controlled_ids()
            if label is not None:
                by_label = [i for i in held if self._stores[i].info.label == label]
                storage_id = by_label[0] if by_label else None
            if storage_id is None:
                if not any(i["label"] == label for i in record.external):
                    raise BadRequest(f"object {object_id} has no instance labelled {label!r}")
                mo.check_not_last(len(held) + len(record.external), object_id)
                record.external = [i for i in record.external if i["label"] != label]
                return
            if storage_id not in held:
                raise BadRequest(f"object {object_id} has no instance on storage {storage_id}")
            mo.check_not_last(len(held) + len(record.external), object_id)
            record.stores = tuple(i for i in record.stores if i != storage_id)
            self._stores[storage_id].delete(object_id)

    def record_upload(self, object_id: str, size: int) -> None:
        with self._lock:
            record = self._objects.get(object_id)
            if record is not None:
                record.size = size

    def object_store(self, storage_id: str) -> ObjectStore | None:
        return self._stores.get(storage_id)

    def reclaim_objects(self) -> int:
        """Forget objects past their grace period and delete their bytes."""
        clock = time.time()
        policy = self._policy
        with self._lock:
            doomed = [
                object_id
                for object_id, record in self._objects.items()
                if record.stores
                and record.references is None
                and rules.reclaimable(
                    record.allocated_for is not None, record.allocated_at, record.unreferenced_since, clock, policy
                )
            ]
            namers = ((i, r.init_object_id) for i, r in self._objects.items())
            doomed = mo.spare_named_inits(doomed, namers)
            for object_id in doomed:
                record = self._objects.pop(object_id)
                if record.allocated_for is not None:
                    self._allocations.get(record.allocated_for, set()).discard(object_id)
                for storage_id in record.controlled_ids():
                    self._stores[storage_id].delete(object_id)
            return len(doomed)
