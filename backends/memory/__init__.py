"""The in-memory reference backend: small and obviously correct, the oracle for other backends.

:class:`MemoryBackend` composes one mixin per resource around the shared core:

* ``core``: the state, the one lock guarding it, the object record, segment overlap search, service
  info;
* ``sources``, ``flows``: their documents, views, collections and events;
* ``segments``: listing, registration with the overlap check, deletion of covered segments;
* ``objects``: storage allocation, objects and the segments referencing them, instances,
  reclamation;
* ``deletions``: deletion requests and the background worker's chunks;
* ``webhooks``: webhook registrations;
* ``profiles``: flow profiles (TAMS 8.x);
* ``export``: its tables for store reports (``backends.report``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from backends.base import BackendServices
from backends.memory.deletions import DeletionsMixin
from backends.memory.export import ExportMixin
from backends.memory.flows import FlowsMixin
from backends.memory.objects import ObjectsMixin
from backends.memory.profiles import ProfilesMixin
from backends.memory.segments import SegmentsMixin
from backends.memory.sources import SourcesMixin
from backends.memory.webhooks import WebhooksMixin
from backends.objectstore import MemoryObjectStore, StorageBackendInfo

__all__ = ["MemoryBackend", "create"]


class MemoryBackend(
    SourcesMixin,
    FlowsMixin,
    SegmentsMixin,
    ObjectsMixin,
    DeletionsMixin,
    WebhooksMixin,
    ProfilesMixin,
    ExportMixin,
):
    """The in-memory store: every operation atomic under one lock."""

    blocking = False  # it only computes: the server calls it on the event loop, without a thread hop

    # --- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._worker.start()

    def close(self) -> None:
        self._worker.close()


def create(options: Mapping[str, Any], services: BackendServices) -> MemoryBackend:
    """Backend factory registered as ``memory``."""
    label = str(options.get("storage_label", "memory"))
    info = StorageBackendInfo(id=str(uuid.uuid4()), label=label, store_product="memory", default_storage=True)
    return MemoryBackend([MemoryObjectStore(info, services.signer)], services)
