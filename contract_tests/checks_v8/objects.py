"""8.x media objects: instances (8.0), init segments (8.2), presigned or plain put_urls (8.2) and
404 for objects allocated but not yet registered (8.1)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from contract_tests import strategies as S
from contract_tests.api import Api, describe
from contract_tests.checks import allocate, create_flow, new_id, upload
from contract_tests.checks_v8.common import (
    INSTANCES,
    LABEL_PREFIX,
    OBJECT,
    SEGMENTS,
    STORAGE,
    get_json,
    ids_of,
    op,
)
from contract_tests.errors import ContractFailure
from contract_tests.suite import Context, list_all, loopback_url

# --------------------------------------------------------------------------- 3. object instances


def object_instances(ctx: Context) -> None:
    """8.0 object instances (ADR-0038, ADR-0042): POST /objects/{id}/instances with ``{url, label}``
    registers an uncontrolled copy, listed once with its label in the object's ``get_urls``
    (GET /objects/{id}) and in its segment's, marked ``controlled: false`` with ``verbose_storage``
    (unset means controlled) and selectable by ``accept_get_urls``; the other instances stay as they
    were; DELETE /objects/{id}/instances?label= removes exactly that one."""
    api, check = ctx.api, "instances"
    with ctx.case() as (scope, janitor):
        flow = create_flow(api, scope, janitor, S.video_flow(), check)
        segments = f"/flows/{flow['id']}/segments"
        (media_object,) = allocate(api, flow["id"], 1, check)
        object_id = media_object["object_id"]
        upload(api, media_object, b"conformance instance", check)
        api.expect(api.post(segments, {"object_id": object_id, "timerange": "[0:0_1:0)"}), [201], check)
        path = f"/objects/{object_id}"
        before = _urls(get_json(api, path, check), op("GET", OBJECT), check)
        if not before:
            raise ContractFailure(f"a registered object has no get_urls: {path}", op("GET", OBJECT), check)

        label = f"{LABEL_PREFIX}-{uuid.uuid4()}"
        url = loopback_url()
        api.expect(api.post(f"{path}/instances", {"url": url, "label": label}), [201], check)
        for where, operation, urls in _where_listed(api, flow["id"], object_id, check, verbose=True):
            mine = [u for u in urls if u.get("url") == url]
            if len(mine) != 1 or mine[0].get("label") != label:
                raise ContractFailure(
                    f"{where}: the instance {url} (label {label}) should be listed once with its label: {urls}",
                    operation,
                    check,
                )
            if mine[0].get("controlled") is not False:
                raise ContractFailure(
                    f"{where} (verbose_storage): an uncontrolled instance must say controlled: false"
                    f" (unset means true): {mine[0]}",
                    operation,
                    check,
                    "the spec's object-core.json: `controlled` unset means the store manages the URL",
                )
            if _labels(u for u in urls if u.get("url") != url) != _labels(before):
                raise ContractFailure(f"{where}: other get_urls changed: {urls}, before {before}", operation, check)
        only = list_all(api, segments, [("accept_get_urls", label)], check, reverse=False).items
        if [[u.get("url") for u in s.get("get_urls") or []] for s in only] != [[url]]:
            raise ContractFailure(
                f"accept_get_urls={label} should keep only the instance's URL: {only}", op("GET", SEGMENTS), check
            )

        api.expect(api.delete(f"{path}/instances", params={"label": label}), [204], check)
        for where, operation, urls in _where_listed(api, flow["id"], object_id, check):
            if any(u.get("url") == url or u.get("label") == label for u in urls):
                raise ContractFailure(f"{where}: the instance is still listed after DELETE: {urls}", operation, check)
            if _labels(urls) != _labels(before):
                raise ContractFailure(
                    f"{where}: deleting the instance {label} left {urls}, before it {before}",
                    op("DELETE", INSTANCES),
                    check,
                )


def _labels(urls: Any) -> list[str]:
    """What a list of get_urls holds, without the parts that change per request (signatures)."""
    return sorted(str(u.get("label")) for u in urls)


def _urls(body: Any, operation: str, check: str) -> list[dict[str, Any]]:
    urls = body.get("get_urls") if isinstance(body, dict) else None
    if urls is None:
        return []
    if not isinstance(urls, list) or not all(isinstance(u, dict) for u in urls):
        raise ContractFailure(f"get_urls is {urls!r}", operation, check)
    return urls


def _where_listed(
    api: Api, flow_id: str, object_id: str, check: str, verbose: bool = False
) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """The object's get_urls as GET /objects/{id} and the segment listing give them (with
    ``verbose_storage=true``: with storage details such as ``controlled``)."""
    params = [("verbose_storage", "true")] if verbose else []
    by_object = _urls(get_json(api, f"/objects/{object_id}", check, params), op("GET", OBJECT), check)
    listing = list_all(api, f"/flows/{flow_id}/segments", params, check, reverse=False).items
    mine = [s for s in listing if s.get("object_id") == object_id]
    if len(mine) != 1:
        raise ContractFailure(f"the segment of object {object_id} is missing: {listing}", op("GET", SEGMENTS), check)
    return [
        (f"GET /objects/{object_id}", op("GET", OBJECT), by_object),
        ("the segment listing", op("GET", SEGMENTS), _urls(mine[0], op("GET", SEGMENTS), check)),
    ]


# --------------------------------------------------------------------------- 4. init segments


def init_segments(ctx: Context) -> None:
    """8.2 init segments (ADR-0045): on a flow with ``init_segments: true``, a segment registered
    with ``init_object_id`` is listed with ``init_object.object_id``; the init object's and media
    object's get_urls give back their bytes; ``accept_get_urls`` and ``presigned`` filter
    ``init_object.get_urls`` too; GET /objects/{media} names the init object and
    GET /objects/{init} answers 200 with the flow in ``referenced_by_flows``; ``init_segments=true``
    selects the flow. Using the init object as media should be refused (a warning otherwise)."""
    api, check = ctx.api, "init-segments"
    with ctx.case() as (scope, janitor):
        essence = {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 25}, "init_segments": True}
        body = {**S.video_flow(container="video/mp4"), "essence_parameters": essence}
        flow = create_flow(api, scope, janitor, body, check)
        segments = f"/flows/{flow['id']}/segments"
        media, init = allocate(api, flow["id"], 2, check)
        payloads = {media["object_id"]: b"conformance media segment", init["object_id"]: b"conformance init segment"}
        upload(api, media, payloads[media["object_id"]], check)
        upload(api, init, payloads[init["object_id"]], check)
        segment = {"object_id": media["object_id"], "init_object_id": init["object_id"], "timerange": "[0:0_2:0)"}
        api.expect(api.post(segments, segment), [201], check, "a segment with init_object_id")

        listing = list_all(api, segments, [], check, reverse=False).items
        if len(listing) != 1 or listing[0].get("object_id") != media["object_id"]:
            raise ContractFailure(f"the segment listing is {listing}", op("GET", SEGMENTS), check)
        listed_init = listing[0].get("init_object")
        if not isinstance(listed_init, dict) or listed_init.get("object_id") != init["object_id"]:
            raise ContractFailure(
                f"the segment should carry init_object.object_id {init['object_id']}: {listing[0]}",
                op("GET", SEGMENTS),
                check,
            )
        for owner, object_id in ((listing[0], media["object_id"]), (listed_init, init["object_id"])):
            for entry in _urls(owner, op("GET", SEGMENTS), check):
                got = api.media("GET", entry["url"])
                if got.status_code != 200 or got.content != payloads[object_id]:
                    raise ContractFailure(
                        f"get_url {entry['url']} of object {object_id} gave {got.status_code}, {len(got.content)} bytes"
                        f" (uploaded {len(payloads[object_id])})",
                        op("GET", SEGMENTS),
                        "media",
                    )

        # The URL filters apply to init_object.get_urls too (8.2).
        for params in ([("accept_get_urls", "")], [("presigned", "true")], [("presigned", "false")]):
            for item in list_all(api, segments, params, check, reverse=False).items:
                for owner in (item, item.get("init_object") or {}):
                    urls = _urls(owner, op("GET", SEGMENTS), check)
                    name, value = params[0]
                    if (name == "accept_get_urls" and urls) or (
                        name == "presigned" and any(bool(u.get("presigned")) != (value == "true") for u in urls)
                    ):
                        raise ContractFailure(
                            f"{name}={value} should apply to get_urls and init_object.get_urls: {item}",
                            op("GET", SEGMENTS),
                            check,
                        )

        media_info = get_json(api, f"/objects/{media['object_id']}", check)
        named = media_info.get("init_object")
        if not isinstance(named, dict) or named.get("id") != init["object_id"]:
            raise ContractFailure(
                f"GET /objects/{media['object_id']} should name init object {init['object_id']}: {media_info}",
                op("GET", OBJECT),
                check,
            )
        init_info = get_json(api, f"/objects/{init['object_id']}", check, why="an init object in use")
        if flow["id"] not in (init_info.get("referenced_by_flows") or []):
            raise ContractFailure(
                f"init object {init['object_id']} should be referenced by flow {flow['id']}: {init_info}",
                op("GET", OBJECT),
                check,
            )
        for flag, want in (("true", [flow["id"]]), ("false", [])):
            listed = ids_of(list_all(api, "/flows", [*scope.filters, ("init_segments", flag)], check).items)
            if listed != want:
                raise ContractFailure(f"init_segments={flag} listed {listed}, expected {want}", "GET /flows", "filters")

        misuse = {"object_id": init["object_id"], "timerange": "[10:0_12:0)"}
        response = api.expect(api.post(segments, misuse), [201, 400], check)
        if response.status_code == 201:
            api.warn(
                "an init object was accepted as a media object (should be refused)",
                op("POST", SEGMENTS),
                check,
                "the spec: an object is either media or init, never both (SHOULD refuse the other use)",
            )


# --------------------------------------------------------------------------- 8. presigned or plain put_urls


def presigned_uploads(ctx: Context) -> None:
    """8.2 selectable put_urls (ADR-0054): POST /flows/{id}/storage with ``presigned: true`` gives
    presigned put_urls (``media_objects[].presigned: true``), with ``false`` plain ones (unset or
    false); an upload through each works and the bytes come back through the segment's get_urls
    (the default ones and those of ``presigned=false``). A plain URL of another origin that wants
    credentials of its own (not the API's) gets a warning: the spec only recommends against it.
    A store that hands out presigned URLs must say ``min_presigned_url_timeout`` in /service."""
    api, check = ctx.api, "storage"
    service = get_json(api, "/service", "service")
    signs = "min_presigned_url_timeout" in service
    with ctx.case() as (scope, janitor):
        flow = create_flow(api, scope, janitor, S.video_flow(), check)
        segments = f"/flows/{flow['id']}/segments"
        payloads: dict[str, bytes] = {}
        for i, presigned in enumerate((True, False)):
            response = api.expect(
                api.post(f"/flows/{flow['id']}/storage", {"limit": 1, "presigned": presigned}), [201], check
            )
            objects = api.json(response, check).get("media_objects")
            if not isinstance(objects, list) or len(objects) != 1:
                raise ContractFailure(f"asked for 1 media object: {describe(response)}", STORAGE, check)
            (media_object,) = objects
            said = media_object.get("presigned") is True  # unset means not presigned
            if said != presigned:
                message = f"asked for presigned={presigned}, the put_url says presigned={said}: {media_object}"
                cite = "the spec's flow-storage-post.json: `presigned` true gives presigned put_urls, false plain ones"
                if presigned and not signs:
                    api.warn(message + " (the service gives no min_presigned_url_timeout)", STORAGE, check, cite)
                else:
                    raise ContractFailure(message, STORAGE, check, cite)
            if said and not signs:
                raise ContractFailure(
                    "a presigned put_url, but /service has no min_presigned_url_timeout",
                    "GET /service",
                    "service",
                    "the spec's service.json: min_presigned_url_timeout MUST be set by stores that presign URLs",
                )
            payload = f"conformance presigned={presigned} {uuid.uuid4()}".encode()
            put_url = media_object["put_url"]
            headers = dict(put_url.get("headers") or {})
            if put_url.get("content-type"):
                headers["Content-Type"] = put_url["content-type"]
            sent = api.media("PUT", put_url["url"], content=payload, headers=headers)
            if _needs_other_credentials(api, put_url["url"], said, sent, "put_url"):
                continue  # nothing uploaded: nothing to read back
            if not 200 <= sent.status_code < 300:
                raise ContractFailure(f"upload to the put_url failed: {describe(sent)}", "PUT put_url", check)
            payloads[media_object["object_id"]] = payload
            body = {"object_id": media_object["object_id"], "timerange": f"[{i}:0_{i + 1}:0)"}
            api.expect(api.post(segments, body), [201], check)
        # Every get_url gives the bytes back: the default ones, and the plain ones asked for by
        # presigned=false (which may be none: a store need not have plain URLs).
        for params in ([], [("presigned", "false")]):
            listing = list_all(api, segments, params, check, reverse=False).items
            if sorted(s.get("object_id") for s in listing) != sorted(payloads):
                raise ContractFailure(
                    f"segments are {listing}, registered {sorted(payloads)}", op("GET", SEGMENTS), check
                )
            for segment in listing:
                _downloads(api, segment, payloads[segment["object_id"]], signs, required=not params)


def _downloads(api: Api, segment: dict[str, Any], want: bytes, signs: bool, required: bool) -> None:
    """Each of the segment's get_urls gives ``want``; presigned ones need min_presigned_url_timeout."""
    urls = _urls(segment, op("GET", SEGMENTS), "media")
    if required and not urls:
        raise ContractFailure(f"segment without get_urls: {segment}", op("GET", SEGMENTS), "media")
    for entry in urls:
        got = api.media("GET", entry["url"])
        if _needs_other_credentials(api, entry["url"], bool(entry.get("presigned")), got, "get_url"):
            continue
        if got.status_code != 200 or got.content != want:
            raise ContractFailure(
                f"get_url {entry['url']} gave {got.status_code}, {len(got.content)} bytes; uploaded {want!r}",
                op("GET", SEGMENTS),
                "media",
            )
        if entry.get("presigned") and not signs:
            raise ContractFailure(
                f"a presigned get_url ({entry['url']}), but /service has no min_presigned_url_timeout",
                "GET /service",
                "service",
                "the spec's service.json: min_presigned_url_timeout MUST be set by stores that presign URLs",
            )


def _needs_other_credentials(api: Api, url: str, presigned: bool, response: Any, what: str) -> bool:
    """Whether ``response`` refused a plain URL of another origin for want of credentials (the
    suite sends API credentials only to the API's origin): allowed, but not recommended."""
    parts = urlsplit(url)
    same_origin = not parts.scheme or (parts.scheme, parts.netloc) == (api.base.scheme, api.base.netloc)
    if presigned or same_origin or response.status_code not in (401, 403):
        return False
    api.warn(
        f"a plain {what} of another origin ({parts.scheme}://{parts.netloc}) answers {response.status_code}"
        " without out-of-band credentials",
        op("GET", SEGMENTS) if what == "get_url" else STORAGE,
        "storage",
        "the spec: services SHOULD NOT solely require out-of-band credentials for plain URLs of other origins",
    )
    return True


# --------------------------------------------------------------------------- 10. unregistered objects


def unregistered_objects(ctx: Context) -> None:
    """8.1: an object id allocated by /flows/{id}/storage but not yet on a segment is answered 404
    by GET/HEAD /objects/{id} and by POST/DELETE /objects/{id}/instances (a MUST); once a segment
    uses it, GET answers 200 with the flow in ``referenced_by_flows``."""
    api, check = ctx.api, "objects"
    with ctx.case() as (scope, janitor):
        flow = create_flow(api, scope, janitor, S.video_flow(), check)
        (media_object,) = allocate(api, flow["id"], 1, check)
        object_id = media_object["object_id"]
        path = f"/objects/{object_id}"
        why = "allocated by /storage, not yet on a segment (8.1: MUST be 404)"
        api.expect(api.get(path), [404], check, why)
        api.expect(api.head(path), [404], check, why)
        instance = {"url": loopback_url(), "label": f"{LABEL_PREFIX}-{uuid.uuid4()}"}
        api.expect(api.post(f"{path}/instances", instance), [404], check, why)
        api.expect(api.delete(f"{path}/instances", params={"label": instance["label"]}), [404], check, why)
        api.expect(api.get(f"/objects/{new_id()}"), [404], check, "an id nobody allocated")
        upload(api, media_object, b"conformance registered", check)
        segment = {"object_id": object_id, "timerange": "[0:0_1:0)"}
        api.expect(api.post(f"/flows/{flow['id']}/segments", segment), [201], check)
        body = get_json(api, path, check, why="the object is on a segment now")
        if body.get("id") != object_id or flow["id"] not in (body.get("referenced_by_flows") or []):
            raise ContractFailure(
                f"object {object_id} should be referenced by flow {flow['id']}: {body}", op("GET", OBJECT), check
            )
        api.expect(api.head(path), [200], check, "the object is on a segment now")
