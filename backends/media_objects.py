"""TAMS rules of media objects (8.x): their own facts, init objects, instances and how they render.

An object is registered by the first segment that uses it, either as media (``object_id``) or as
an init object (``init_object_id``), never both (ADR-0045). A media object keeps the facts of its
first registration (its own ``timerange``, ``key_frame_count``, ``init_object_id``); a later
segment reusing it may repeat them but not contradict them.

Instances (ADR-0038): every copy of an object's bytes. Controlled ones live on a storage backend
of this server; uncontrolled ones are URLs a client registered, each with a label (ADR-0042).
A 7.0 client may post an uncontrolled URL without a label: the store mints one
(``external-N``, marked ``minted``) so 8.x clients can address the instance, and a 7.0 rendering
(``UrlOptions.show_minted_labels`` false) shows the URL without it, as it was posted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from backends.base import Json, UrlOptions
from backends.errors import BadRequest
from backends.objectstore import ObjectStore
from backends.rules import ControlledUrl, filter_get_urls, matches_tags
from backends.timerange import TimeRange, Timestamp

MEDIA = "media"
INIT = "init"
MINTED_PREFIX = "external-"
# Keys of event payload get_urls only (UrlOptions.for_events): the label was minted; the plain URL
# of a controlled instance (for registrations with ``presigned: false``).
MINTED_MARK = "minted_label"
PLAIN_MARK = "plain_url"


@dataclass(frozen=True)
class ObjectFacts:
    """What a media object's first registration said about it (None: not said)."""

    timerange: str | None = None
    key_frame_count: int | None = None
    init_object_id: str | None = None


@dataclass(frozen=True)
class PostedFacts:
    """What one segment POST says about its media object: explicit values, and the default timerange."""

    explicit_timerange: str | None
    default_timerange: str
    key_frame_count: int | None
    init_object_id: str | None


def _parse(value: str, name: str) -> TimeRange:
    try:
        parsed = TimeRange.parse(value)
    except ValueError as exc:
        raise BadRequest(f"invalid {name} {value!r}: {exc}") from exc
    if parsed.is_empty or not parsed.is_bounded:
        raise BadRequest(f"{name} {value!r} must be a non-empty range with a start and an end")
    return parsed


def posted_facts(body: Json, timerange: TimeRange | None = None) -> PostedFacts:
    """The object facts of a segment POST; ``object_timerange`` defaults to ``timerange - ts_offset``.

    ``timerange``: the segment's, when the caller has parsed (and checked) it already.
    """
    segment = _parse(body["timerange"], "timerange") if timerange is None else timerange
    default = segment
    if "ts_offset" in body:
        try:
            offset = Timestamp.parse(body["ts_offset"]).to_ns()
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        default = TimeRange(
            segment.start - offset if segment.start is not None else None,
            segment.end - offset if segment.end is not None else None,
            include_start=segment.include_start,
            include_end=segment.include_end,
        )
    explicit = body.get("object_timerange")
    if explicit is not None:
        explicit = str(_parse(explicit, "object_timerange"))
    init_object_id = body.get("init_object_id")
    if init_object_id is not None and init_object_id == body["object_id"]:
        raise BadRequest("an object cannot be its own init object")
    return PostedFacts(explicit, str(default), body.get("key_frame_count"), init_object_id)


def register_facts(object_id: str, stored: ObjectFacts | None, posted: PostedFacts) -> ObjectFacts:
    """The facts to keep after a segment POST: the first registration sets them, later ones must agree."""
    if stored is None:
        return ObjectFacts(
            posted.explicit_timerange or posted.default_timerange, posted.key_frame_count, posted.init_object_id
        )
    if posted.explicit_timerange is not None and stored.timerange not in (None, posted.explicit_timerange):
        raise BadRequest(
            f"object_timerange {posted.explicit_timerange} contradicts object {object_id}'s {stored.timerange}"
        )
    if posted.init_object_id is not None and posted.init_object_id != stored.init_object_id:
        raise BadRequest(f"object {object_id} is already registered with another init object (or none)")
    key_frames = stored.key_frame_count
    if posted.key_frame_count is not None:
        if key_frames is not None and key_frames != posted.key_frame_count:
            raise BadRequest(f"key_frame_count contradicts object {object_id}'s {key_frames}")
        key_frames = posted.key_frame_count
    return ObjectFacts(stored.timerange or posted.explicit_timerange, key_frames, stored.init_object_id)


def check_reachable(object_id: str, instances: list[Json], flow_id: str) -> None:
    """A segment naming an object this server does not know (never allocated, never registered)
    must bring the object's ``get_urls``: else it would be stored and listed with ``get_urls: []``,
    readable by nobody (400). Only for new registrations: stored segments are read as they are.

    Init objects are exempt: a segment POST has no place for their URLs, so an uncontrolled init
    object gets its instances afterwards (``POST /objects/{objectId}/instances``), as the spec says.
    """
    if not instances:
        raise BadRequest(
            f"object {object_id} is unknown to this server and the segment gives no get_urls, so nobody could "
            f"read it: allocate it with POST /flows/{flow_id}/storage and upload its bytes before registering "
            "the segment, or give the get_urls where the object can be read"
        )


def check_use(object_id: str, kind: str | None, wanted: str) -> None:
    """An object is media or init, never both (ADR-0045): refuse the other use (400)."""
    if kind is not None and kind != wanted:
        raise BadRequest(f"object {object_id} is registered as {kind} object, so it cannot be used as {wanted}")


# --- instances -----------------------------------------------------------------------------


def posted_instances(body: Json, controlled_labels: Iterable[str]) -> list[Json]:
    """The uncontrolled ``get_urls`` of a segment POST: labels unique and not a storage backend's."""
    labels = set(controlled_labels)
    seen: set[str] = set()
    out = []
    for url in body.get("get_urls") or []:
        label = url.get("label")
        if label is not None:
            if label in labels:
                raise BadRequest(f"get_urls label {label!r} belongs to a storage backend of this server")
            if label in seen:
                raise BadRequest(f"get_urls label {label!r} repeats within the request")
            seen.add(label)
        out.append({k: url[k] for k in ("url", "label") if k in url})
    return out


def add_instances(object_id: str, existing: list[Json], posted: list[Json]) -> list[Json]:
    """``existing`` uncontrolled instances plus ``posted`` ones: a known URL is kept as it is, a known
    label with another URL is refused (400), an unlabelled URL gets a minted label."""
    out = [dict(i) for i in existing]
    for item in posted:
        if any(i["url"] == item["url"] for i in out):
            continue
        label = item.get("label")
        if label is None:
            used = {i["label"] for i in out}
            n = 1
            while f"{MINTED_PREFIX}{n}" in used:
                n += 1
            out.append({"url": item["url"], "label": f"{MINTED_PREFIX}{n}", "minted": True})
        elif any(i["label"] == label for i in out):
            raise BadRequest(f"object {object_id} already has an instance labelled {label!r} at another URL")
        else:
            out.append({"url": item["url"], "label": label})
    return out


def check_instance_post(body: Json, controlled_labels: Iterable[str]) -> None:
    """``{storage_id}`` or ``{url, label}`` (the schema's branches are open: refuse a mix here)."""
    has_storage = "storage_id" in body
    has_url = "url" in body or "label" in body
    if has_storage == has_url:
        raise BadRequest("give either storage_id, or url and label")
    if has_url:
        if not body.get("url") or not body.get("label"):
            raise BadRequest("an uncontrolled instance needs both url and label")
        if body["label"] in set(controlled_labels):
            raise BadRequest(f"label {body['label']!r} belongs to a storage backend of this server")


def check_copy(object_id: str, storage_id: str, held: list[str]) -> None:
    """A ``{storage_id}`` copy needs a store without an instance and a controlled instance to copy from
    (400 otherwise: the spec's copy is to a store "that does not currently have an instance")."""
    if storage_id in held:
        raise BadRequest(f"object {object_id} already has an instance on storage {storage_id}")
    if not held:
        raise BadRequest(
            f"object {object_id} has only uncontrolled instances (URLs this server does not manage), so the "
            f"server cannot copy it to storage {storage_id}: upload the bytes there and register them instead"
        )


def instance_to_remove(storage_id: str | None, label: str | None) -> None:
    """DELETE instances names the instance by exactly one of ``storage_id`` and ``label``."""
    if (storage_id is None) == (label is None):
        raise BadRequest("give exactly one of storage_id and label")


def check_not_last(instance_count: int, object_id: str) -> None:
    if instance_count <= 1:
        raise BadRequest(
            f"refusing to remove the last instance of object {object_id}: delete the segments that use it instead"
        )


# --- reclamation ---------------------------------------------------------------------------


def spare_named_inits(doomed: Iterable[str], namers: Iterable[tuple[str, str | None]]) -> list[str]:
    """The ``doomed`` objects that may go: an init object stays while a media object that is kept
    (not doomed) still names it, since a segment may register that media object again.

    ``namers``: (object id, its init object id) of at least every object naming a doomed one.
    """
    doomed = list(doomed)
    gone = set(doomed)
    named = {init_id for object_id, init_id in namers if init_id is not None and object_id not in gone}
    return [i for i in doomed if i not in named]


# --- rendering -----------------------------------------------------------------------------


def controlled_url(store: ObjectStore, object_id: str, options: UrlOptions) -> ControlledUrl:
    """The URL of an object's instance on one of our stores: presigned by default; a plain one
    (``presigned: false``) when the request asks only for non-presigned URLs and the store has one
    (an S3 store's own object URL, which needs the client's S3 credentials)."""
    if options.presigned is False:
        plain = store.plain_download_url(object_id)
        if plain is not None:
            return ControlledUrl(plain, False, store.info)
    url, presigned = store.download_url(object_id)
    if options.for_events:
        return ControlledUrl(url, presigned, store.info, store.plain_download_url(object_id))
    return ControlledUrl(url, presigned, store.info)


def instance_urls(
    controlled: Iterable[ControlledUrl], external: Iterable[Json], options: UrlOptions
) -> list[Json] | None:
    """An object's ``get_urls`` as these options show them: controlled instances first."""
    if options.accept_get_urls == ():
        return None
    if options.storage_backend_tags:
        controlled = [c for c in controlled if matches_tags({"tags": c.backend.tags}, options.storage_backend_tags)]
        if not matches_tags({}, options.storage_backend_tags):
            external = []  # uncontrolled URLs belong to no storage backend: they have no storage backend tags
    entries: list[Json] = [
        {
            "url": c.url,
            "presigned": c.presigned,
            "label": c.backend.label,
            "storage_id": c.backend.id,
            "controlled": True,
            **c.backend.describe(),
            **({PLAIN_MARK: c.plain} if c.plain is not None and options.for_events else {}),
        }
        for c in controlled
    ]
    for item in external:
        entry: Json = {"url": item["url"], "presigned": False, "controlled": False}
        if not item.get("minted") or options.show_minted_labels:
            entry["label"] = item["label"]
            if item.get("minted") and options.for_events:
                entry[MINTED_MARK] = True
        entries.append(entry)
    return filter_get_urls(entries, options)


def event_url(url: Json, options: UrlOptions) -> Json:
    """A get_url of an event payload as a registration's ``options`` see it, before filtering: its
    plain URL when it asks for non-presigned ones, its minted label only when shown, no marks."""
    if options.presigned is False and url.get(PLAIN_MARK):
        url = {**url, "url": url[PLAIN_MARK], "presigned": False}
    hidden = {MINTED_MARK, PLAIN_MARK}
    if url.get(MINTED_MARK) and not options.show_minted_labels:
        hidden.add("label")
    return {k: v for k, v in url.items() if k not in hidden}


def init_view(init_object_id: str, urls: list[Json] | None, key: str) -> Json:
    """``init_object`` as a segment (``key`` "object_id") or an object (``key`` "id") shows it."""
    out: Json = {key: init_object_id}
    if urls is not None:
        out["get_urls"] = urls
    return out


def object_view(
    object_id: str,
    flows: list[str],
    first_referenced_by: str | None,
    kind: str | None,
    facts: ObjectFacts | None,
    urls: list[Json] | None,
    init: Json | None,
) -> Json:
    body: Json = {"id": object_id, "referenced_by_flows": flows}
    if first_referenced_by is not None:
        body["first_referenced_by_flow"] = first_referenced_by
    if facts is not None and kind != INIT:
        if facts.timerange is not None:
            body["timerange"] = facts.timerange
        if facts.key_frame_count is not None:
            body["key_frame_count"] = facts.key_frame_count
    if urls is not None:
        body["get_urls"] = urls
    if init is not None:
        body["init_object"] = init
    return body
