"""The backend interface: what every TAMS store implements, in TAMS terms (no HTTP).

Resources travel as JSON-shaped dicts exactly as the TAMS schemas define them; queries and pages
as the small value types below. Errors are the exceptions of ``backends.errors``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from backends.errors import NotSupported
from backends.objectstore import ObjectStore, UrlSigner
from backends.timerange import TimeRange

if TYPE_CHECKING:
    from backends.events import EventSink

T = TypeVar("T")
Json = dict[str, Any]

SourceField = Literal["label", "description"]
FlowField = Literal[
    "label",
    "description",
    "read_only",
    "flow_collection",
    "max_bit_rate",
    "avg_bit_rate",
]


_actor: ContextVar[str | None] = ContextVar("tams_actor", default=None)


def current_actor() -> str | None:
    """The authenticated principal making the current change (None when auth is off)."""
    return _actor.get()


@contextmanager
def acting_as(principal: str | None) -> Iterator[None]:
    token = _actor.set(principal)
    try:
        yield
    finally:
        _actor.reset(token)


@dataclass(frozen=True)
class StorePolicy:
    """When work goes to the background, and how long unused media is kept."""

    # Deletes touching more segments than this answer 202 and run on in the background.
    async_delete_threshold: int = 1000
    delete_chunk: int = 500
    # An object nobody references any more keeps its bytes this long (a client may re-register it).
    unreferenced_grace_s: float = 3600.0
    # An object allocated but never registered is reclaimed after this long.
    unregistered_ttl_s: float = 86400.0
    # How long a finished deletion request stays listed.
    delete_request_ttl_s: float = 86400.0
    reclaim_interval_s: float = 60.0


@dataclass(frozen=True)
class BackendServices:
    """What the server hands a backend factory besides its own options."""

    signer: UrlSigner
    events: EventSink
    policy: StorePolicy = field(default_factory=StorePolicy)
    data_dir: Path | None = None
    url_lifetime: int = 3600  # seconds a media URL stays valid (signed here or presigned by S3)


@dataclass(frozen=True)
class PageRequest:
    """Which page the client asked for: ``page`` is the opaque cursor a previous page returned."""

    limit: int | None = None
    page: str | None = None


@dataclass
class Page(Generic[T]):
    """One page of a listing; ``next_key`` is None on the last page."""

    items: list[T]
    limit: int
    next_key: str | None = None


@dataclass
class SegmentPage(Page[Json]):
    """A page of segments, with the timerange the returned segments span (``()`` if none)."""

    timerange: TimeRange = field(default_factory=TimeRange.never)


@dataclass(frozen=True)
class TagFilter:
    """``tag.{name}=...`` (``equals``) and ``tag_exists.{name}=true|false`` (``exists``) filters.

    ``equals`` maps a tag name to the values it may have (any-of); how a query value becomes that
    set depends on the API version (see ``handlers.versions``).
    """

    equals: Mapping[str, frozenset[str]] = field(default_factory=dict)
    exists: Mapping[str, bool] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.equals or self.exists)


@dataclass(frozen=True)
class ListingOrder:
    """How a listing is sorted (ADR-0052): by the field ``key`` (missing values after the others,
    ties and missing values by ``id``); ``newest_first`` for date keys, ascending otherwise;
    ``reverse`` turns the whole order around."""

    key: str = "created"
    newest_first: bool = True
    reverse: bool = False


@dataclass(frozen=True)
class SourceQuery:
    label: str | None = None
    format: str | None = None
    tags: TagFilter = field(default_factory=TagFilter)
    # None: no filter; (): sources no source collects; else collected by any of these.
    collected_by_ids: tuple[str, ...] | None = None
    order: ListingOrder = field(default_factory=ListingOrder)


@dataclass(frozen=True)
class FlowQuery:
    source_id: str | None = None
    format: str | None = None
    codec: str | None = None
    label: str | None = None
    tags: TagFilter = field(default_factory=TagFilter)
    frame_width: int | None = None
    frame_height: int | None = None
    # None: no filter. An empty range selects flows without segments.
    timerange: TimeRange | None = None
    status: str | None = None
    profile_id: str | None = None
    init_segments: bool | None = None
    # None: no filter; (): flows no flow collects; else collected by any of these.
    collected_by_ids: tuple[str, ...] | None = None
    order: ListingOrder = field(default_factory=ListingOrder)


@dataclass(frozen=True)
class ProfileQuery:
    format: str | None = None
    codec: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class SegmentQuery:
    timerange: TimeRange = field(default_factory=TimeRange.eternity)
    object_id: str | None = None
    reverse_order: bool = False
    # 8.x: add each segment's object_timerange (its media object's own timerange).
    include_object_timerange: bool = False


@dataclass(frozen=True)
class WebhookQuery:
    """``GET /service/webhooks`` (8.0+): tag filters; sorted by ``url``, descending on request."""

    tags: TagFilter = field(default_factory=TagFilter)
    reverse_order: bool = False


@dataclass(frozen=True)
class UrlOptions:
    """How segment ``get_urls`` are filtered and shaped.

    ``accept_get_urls``: None for no label filter, an empty tuple for "no get_urls at all".
    ``accept_storage_ids``: None or empty for no storage filter.
    ``presigned``: None for both kinds.
    """

    accept_get_urls: tuple[str, ...] | None = None
    accept_storage_ids: tuple[str, ...] | None = None
    presigned: bool | None = None
    verbose_storage: bool = False
    # storage_backend_tag.{name} / storage_backend_tag_exists.{name}: on the storage backend's tags.
    storage_backend_tags: TagFilter = field(default_factory=TagFilter)
    # Labels the store minted for unlabelled uncontrolled URLs (see backends.media_objects): shown or not.
    show_minted_labels: bool = True
    # Event payloads: minted labels are shown and marked (media_objects.MINTED_MARK), and controlled
    # URLs carry their store's plain URL (media_objects.PLAIN_MARK), so each registration's
    # rendering (events.shape_segment) can hide the one and choose the other.
    for_events: bool = False


@dataclass(frozen=True)
class FailedSegment:
    object_id: str
    timerange: str | None
    summary: str


@dataclass(frozen=True)
class StorageRequest:
    """Body of ``POST /flows/{id}/storage``: ``limit`` and ``object_ids`` are exclusive."""

    limit: int | None = None
    object_ids: tuple[str, ...] | None = None
    storage_id: str | None = None
    # 8.x: the content type of init objects that differs from the flow container; None: the container.
    content_type: str | None = None
    # 8.x: presigned (True, the default) or plain (False) put URLs.
    presigned: bool = True


class Backend(abc.ABC):
    """A TAMS store. Implementations must be safe to call from several threads at once."""

    # Whether a call may wait (on disk, a network, a database): the server then calls it from a
    # worker thread. A store that only computes in memory is called on the event loop.
    blocking: bool = True
    # Whether reads may wait (None: as ``blocking``). An embedded database read from the page cache
    # takes microseconds, much less than a thread hop; its writes still wait for their sync.
    reads_block: bool | None = None

    def may_block(self, method: str) -> bool:
        """Whether an API request with this HTTP method may make a call that waits."""
        if method in ("GET", "HEAD") and self.reads_block is not None:
            return self.reads_block
        return self.blocking

    # --- service -------------------------------------------------------------------------
    @abc.abstractmethod
    def service_info(self) -> Json: ...

    @abc.abstractmethod
    def update_service_info(self, changes: Json) -> None: ...

    @abc.abstractmethod
    def storage_backends(self) -> list[Json]: ...

    # --- sources -------------------------------------------------------------------------
    @abc.abstractmethod
    def list_sources(self, query: SourceQuery, page: PageRequest) -> Page[Json]: ...

    @abc.abstractmethod
    def get_source(self, source_id: str) -> Json: ...

    @abc.abstractmethod
    def set_source_tag(self, source_id: str, name: str, value: str | list[str] | None) -> None:
        """Set a tag, or remove it when ``value`` is None (NotFound if it was not set)."""

    @abc.abstractmethod
    def set_source_field(self, source_id: str, name: SourceField, value: str | None) -> None:
        """Set or (with None) unset ``label`` or ``description``."""

    # --- flows ---------------------------------------------------------------------------
    @abc.abstractmethod
    def list_flows(self, query: FlowQuery, page: PageRequest) -> Page[Json]: ...

    @abc.abstractmethod
    def get_flow(
        self,
        flow_id: str,
        include_timerange: bool = False,
        timerange: TimeRange | None = None,
    ) -> Json: ...

    @abc.abstractmethod
    def put_flow(self, flow_id: str, flow: Json) -> tuple[Json, bool]:
        """Create or wholly replace a flow; returns the stored flow and whether it is new."""

    @abc.abstractmethod
    def delete_flow(self, flow_id: str) -> Json | None:
        """Delete a flow and its segments: None when done, else a deletion request."""

    @abc.abstractmethod
    def set_flow_tag(self, flow_id: str, name: str, value: str | list[str] | None) -> None: ...

    @abc.abstractmethod
    def set_flow_field(self, flow_id: str, name: FlowField, value: Any) -> None:
        """Set or (with None) unset one flow property that has its own sub-resource."""

    # --- segments ------------------------------------------------------------------------
    @abc.abstractmethod
    def list_segments(self, flow_id: str, query: SegmentQuery, urls: UrlOptions, page: PageRequest) -> SegmentPage: ...

    @abc.abstractmethod
    def add_segments(self, flow_id: str, segments: list[Json]) -> list[FailedSegment]:
        """Register segments one by one; those that break a rule are returned, the rest stored."""

    @abc.abstractmethod
    def delete_segments(self, flow_id: str, timerange: TimeRange, object_id: str | None) -> Json | None:
        """Delete segments wholly covered by ``timerange``: None when done, else a deletion request."""

    # --- media storage and objects -------------------------------------------------------
    @abc.abstractmethod
    def allocate_storage(self, flow_id: str, request: StorageRequest) -> Json: ...

    @abc.abstractmethod
    def get_object(
        self,
        object_id: str,
        page: PageRequest,
        urls: UrlOptions | None = None,
        flow_tags: TagFilter | None = None,
    ) -> tuple[Json, Page[str]]:
        """The object and one page of the flows that reference it (those with ``flow_tags``).

        NotFound for an id allocated but not yet registered by a segment.
        """

    def add_object_instance(self, object_id: str, body: Json) -> None:
        """``POST /objects/{id}/instances``: copy to ``storage_id``, or register ``{url, label}``."""
        raise NotSupported("object instances are not supported by this backend")

    def delete_object_instance(self, object_id: str, storage_id: str | None, label: str | None) -> None:
        """Remove one instance (never the last one); a controlled one loses its bytes there too."""
        raise NotSupported("object instances are not supported by this backend")

    def record_upload(self, object_id: str, size: int) -> None:
        """The server's media route committed ``size`` bytes for the object (its size, for reports).
        Presigned uploads (S3) never pass here: their objects' sizes stay unknown."""
        return None

    def object_store(self, storage_id: str) -> ObjectStore | None:
        """The store with this id, when its bytes are served by this server."""
        return None

    # --- deletion requests ---------------------------------------------------------------
    @abc.abstractmethod
    def list_delete_requests(self) -> list[Json]: ...

    @abc.abstractmethod
    def get_delete_request(self, request_id: str) -> Json: ...

    # --- webhooks (optional in TAMS) -----------------------------------------------------
    # Registrations by id (ADR-0037), stored as ``backends.events`` prepares them, with their
    # api_key_value (the HTTP layer hides it) and an opaque ``events.VERSION_FIELD``.
    def all_webhooks(self) -> list[Json]:
        """Every registration, oldest first (for delivery and for 7.0's unpaged listing)."""
        raise NotSupported("webhooks are not supported by this server")

    def list_webhooks(self, query: WebhookQuery, page: PageRequest) -> Page[Json]:
        """One page of registrations (``events.list_page``)."""
        raise NotSupported("webhooks are not supported by this server")

    def get_webhook(self, webhook_id: str) -> Json:
        raise NotSupported("webhooks are not supported by this server")

    def create_webhook(self, webhook: Json) -> Json:
        """Store a new registration (``events.new_registration``: a new id); returns it."""
        raise NotSupported("webhooks are not supported by this server")

    def replace_webhook(self, webhook_id: str, webhook: Json) -> Json:
        """Replace a registration's settings (``events.replaced_registration``); returns it."""
        raise NotSupported("webhooks are not supported by this server")

    def delete_webhook(self, webhook_id: str) -> None:
        raise NotSupported("webhooks are not supported by this server")

    def set_webhook_status(self, webhook_id: str, status: str, error: Json | None = None) -> bool:
        """A status change the server makes (``events.server_status``); False when it does not
        apply (the registration is gone, or a client changed its status meanwhile)."""
        raise NotSupported("webhooks are not supported by this server")

    def upsert_webhook_by_identity(self, webhook: Json) -> Json | None:
        """TAMS 7.0's POST: create, replace or (no events) remove the registrations of the body's
        identity (``events.write_by_identity``), atomically; returns the stored one (None: removed)."""
        raise NotSupported("webhooks are not supported by this server")

    # --- flow profiles (TAMS 8.x) ----------------------------------------------------------
    def list_profiles(self, query: ProfileQuery, page: PageRequest) -> Page[Json]:
        raise NotSupported("flow profiles are not supported by this backend")

    def get_profile(self, profile_id: str) -> Json:
        raise NotSupported("flow profiles are not supported by this backend")

    def create_profile(self, profile_id: str, profile: Json) -> Json:
        """Store a new profile and return it; an existing id is refused (profiles are immutable)."""
        raise NotSupported("flow profiles are not supported by this backend")

    # --- readiness -------------------------------------------------------------------------
    def readiness(self) -> dict[str, str | None]:
        """Each part the store depends on (``"storage:<label>"``, a database) -> None when it answers
        now, else why not. Cheap (one small call each): orchestrators poll it every second."""
        found: dict[str, str | None] = {}
        for info in self.storage_backends():
            store = self.object_store(info["id"])
            why = failure(store.probe) if store is not None else "not configured"
            found[f"storage:{info.get('label') or info['id']}"] = why
        return found

    # --- reports ---------------------------------------------------------------------------
    def report_tables(self, batch_rows: int) -> AbstractContextManager[Mapping[str, Any]]:
        """The store's tables for a report (``backends.report``): a context whose value maps each
        name of ``backends.report.TABLES`` to a ``pyarrow.RecordBatchReader`` of that schema, in
        batches of at most ``batch_rows`` rows, readable while the context is open."""
        raise NotSupported("store reports are not supported by this backend")

    # --- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Start background work (deletions, reclamation); called once the server runs."""
        return None

    def close(self) -> None:
        """Stop background work and release resources."""
        return None


def failure(check: Callable[[], object]) -> str | None:
    """None when ``check`` returns, else what it raised, in one line."""
    try:
        check()
    except Exception as exc:  # readiness reports any failure; it never raises
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None
