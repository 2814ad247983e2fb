"""The TAMS store over tables: every backend operation, written against ``engine`` only.

It behaves exactly like the in-memory reference backend (``backends.memory``) and shares its
rules (``backends.rules``, ``backends.events``, ``backends.deletion``); what differs is where the
state lives. Nothing here names a database: the ``local`` backend runs it on SQLite, and a VAST DB
engine runs it unchanged.

:class:`TabularBackend` composes one mixin per resource around the shared core:

* ``core``: units of work (transactions, retries, events after commit), small reads, paging;
* ``tables``: the tables (``TABLES``) and the rows several resources share (flows, sources);
* ``service``: service info and storage backends;
* ``sources``, ``flows``: their documents, views, collections and events;
* ``segments``: listing, registration with the overlap check, deletion of covered segments, and
  the predicates over time keys they are selected by;
* ``objects``: storage allocation, objects and the segments referencing them, reclamation, S3
  stores;
* ``deletions``: deletion requests and the background worker's chunks;
* ``webhooks``: webhook registrations;
* ``profiles``: flow profiles (TAMS 8.x).
"""

from __future__ import annotations

from backends.tabular.deletions import DeletionsMixin
from backends.tabular.export import ExportMixin
from backends.tabular.flows import FlowsMixin
from backends.tabular.objects import ObjectsMixin, new_storage_id, s3_stores
from backends.tabular.profiles import ProfilesMixin
from backends.tabular.segments import SegmentsMixin
from backends.tabular.service import ServiceMixin
from backends.tabular.sources import SourcesMixin
from backends.tabular.tables import persistent_value
from backends.tabular.webhooks import WebhooksMixin

# Imported from here by the backends that build a TabularBackend (``local``, ``vast``).
__all__ = ["TabularBackend", "new_storage_id", "persistent_value", "s3_stores"]


class TabularBackend(
    ServiceMixin,
    SourcesMixin,
    FlowsMixin,
    SegmentsMixin,
    ObjectsMixin,
    DeletionsMixin,
    WebhooksMixin,
    ProfilesMixin,
    ExportMixin,
):
    """A TAMS store whose state lives in the tables of ``engine``; media in ``stores``."""

    # --- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._closed:
            return
        self._worker.start()
        self.resume_deletions()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._worker.close()
        self._locks.close()
        for object_store in self._stores.values():
            close = getattr(object_store, "close", None)
            if callable(close):
                close()
        if self._owns_engine:
            self._engine.close()
