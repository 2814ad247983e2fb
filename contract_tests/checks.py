"""Property checks that need no oracle: what the target returns is compared with brute force on
what the suite registered (segment timelines, filters, paging, media bytes, read_only, sources).

Each check is a function of a ``Context`` that runs a Hypothesis test and raises
``ContractFailure`` on the first counterexample.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st

from contract_tests import strategies as S
from contract_tests import timeline
from contract_tests.api import Api, describe
from contract_tests.errors import ContractFailure
from contract_tests.suite import Context, Janitor, Scope, deleted, head_matches_get, list_all, loopback_url, next_link
from contract_tests.timeline import Range

# --------------------------------------------------------------------------- helpers


def new_id() -> str:
    return str(uuid.uuid4())


def create_flow(
    api: Api, scope: Scope, janitor: Janitor, body: dict[str, Any], check: str, source_id: str | None = None
) -> dict[str, Any]:
    """PUT a new flow (fresh id) carrying the case's scope tags; fails unless 201."""
    flow_id = new_id()
    full = {**body, "id": flow_id, "source_id": source_id or new_id(), "tags": {**body.get("tags", {}), **scope.tags}}
    janitor.flow(flow_id)
    api.expect(api.put(f"/flows/{flow_id}", full), [201], check, "a new flow")
    return full


def allocate(api: Api, flow_id: str, count: int, check: str) -> list[dict[str, Any]]:
    response = api.expect(api.post(f"/flows/{flow_id}/storage", {"limit": count}), [201], check, "storage")
    objects = api.json(response, check).get("media_objects")
    if not isinstance(objects, list) or len(objects) != count:
        raise ContractFailure(
            f"asked for {count} media objects: {describe(response)}", api.operation_of(response), check
        )
    if len({o["object_id"] for o in objects}) != count:
        raise ContractFailure(f"media object ids repeat: {describe(response)}", api.operation_of(response), check)
    return objects


def upload(api: Api, media_object: dict[str, Any], payload: bytes, check: str) -> None:
    put_url = media_object["put_url"]
    headers = dict(put_url.get("headers") or {})
    if put_url.get("content-type"):
        headers["Content-Type"] = put_url["content-type"]
    response = api.media("PUT", put_url["url"], content=payload, headers=headers)
    if not 200 <= response.status_code < 300:
        raise ContractFailure(f"upload to the put_url failed: {describe(response)}", "PUT put_url", check)


def register(
    api: Api, flow_id: str, bodies: list[dict[str, Any]], bulk: bool, check: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """POST segments (one list, or one by one); returns (kept, refused) as the server answered."""
    path = f"/flows/{flow_id}/segments"
    if not bulk:
        kept, refused = [], []
        for body in bodies:
            response = api.expect(api.post(path, body), [201, 400], check)
            (kept if response.status_code == 201 else refused).append(body)
        return kept, refused
    response = api.expect(api.post(path, bodies), [200, 201], check)
    if response.status_code == 201:
        return list(bodies), []
    failed = api.json(response, check).get("failed_segments")
    if not isinstance(failed, list) or not failed:
        raise ContractFailure(f"200 without failed_segments: {describe(response)}", api.operation_of(response), check)
    failed_objects = {f.get("object_id") for f in failed if isinstance(f, dict)}
    refused = [b for b in bodies if b["object_id"] in failed_objects]
    kept = [b for b in bodies if b not in refused]
    return kept, refused


def _canon(text: Any) -> str | None:
    try:
        return Range.parse(text).canonical() if isinstance(text, str) else None
    except ValueError:
        return text


def same_ranges(got: list[dict[str, Any]], want: list[str], operation: str, what: str, check: str) -> None:
    got_ranges = [s.get("timerange") for s in got]
    try:
        ok = len(got_ranges) == len(want) and all(timeline.same(g, w) for g, w in zip(got_ranges, want, strict=True))
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise ContractFailure(f"{what}: expected {want}, got {got_ranges}", operation, check)


def boundaries(ranges: list[str]) -> list[int]:
    out = []
    for text in ranges:
        r = Range.parse(text)
        out += [x for x in (r.start, r.end) if x is not None]
    return out


SEGMENTS = "GET /flows/{flowId}/segments"


# --------------------------------------------------------------------------- segment timeline


def segment_timeline(ctx: Context) -> None:
    """Registering a layout keeps exactly the non-overlapping segments; listing by any timerange is
    brute-force overlap, in either order, paged or not, with consistent paging headers; HEAD mirrors
    GET; ``accept_get_urls=`` gives no URLs; deleting by timerange removes exactly the covered ones;
    a page key followed after the flow was emptied is no server error."""
    api, check = ctx.api, "timeline"

    @ctx.config.settings(examples=12)
    @given(
        kind=st.sampled_from(["video", "audio", "data", "image"]),
        layout=S.segment_layouts(),
        bulk=st.booleans(),
        data=st.data(),
    )
    def run(kind: str, layout: list[S.PlannedSegment], bulk: bool, data: st.DataObject) -> None:
        with ctx.case() as (scope, janitor):
            flow = create_flow(
                api,
                scope,
                janitor,
                data.draw(S.flows(kind, container=True, version=ctx.config.rules_version)),
                check,
            )
            path = f"/flows/{flow['id']}/segments"
            objects = allocate(api, flow["id"], len(layout), check)
            bodies = [
                {"object_id": o["object_id"], "timerange": p.timerange} for o, p in zip(objects, layout, strict=True)
            ]
            kept, _ = register(api, flow["id"], bodies, bulk, check)
            expected = S.accepted(layout)
            want_kept = [b for b, p in zip(bodies, layout, strict=True) if p in expected]
            if [b["object_id"] for b in kept] != [b["object_id"] for b in want_kept]:
                wrongly_kept = [b["timerange"] for b in kept if b not in want_kept]
                wrongly_refused = [b["timerange"] for b in want_kept if b not in kept]
                raise ContractFailure(
                    f"registering {[p.timerange for p in layout]} (bulk={bulk}) kept {[b['timerange'] for b in kept]};"
                    f" overlapping segments accepted: {wrongly_kept}; valid segments refused: {wrongly_refused}",
                    "POST /flows/{flowId}/segments",
                    "overlap",
                )
            object_of = {_canon(b["timerange"]): b["object_id"] for b in kept}
            registered = [b["timerange"] for b in kept]
            ordered = sorted(registered, key=lambda r: Range.parse(r).sort_key())
            listing = list_all(api, path, [], check, reverse=False)
            same_ranges(listing.items, ordered, SEGMENTS, "all segments", check)
            for segment in listing.items:
                if segment.get("object_id") != object_of.get(_canon(segment["timerange"])):
                    raise ContractFailure(f"segment {segment} lists the wrong object_id", SEGMENTS, check)
            points = boundaries(registered)
            span = timeline.extent(registered)
            _flow_timerange(api, flow["id"], [], span, check)
            for query in data.draw(st.lists(S.query_timeranges(points), min_size=1, max_size=3), label="queries"):
                _flow_timerange(api, flow["id"], [("timerange", query)], span.intersect(Range.parse(query)), check)
                want = timeline.overlapping(registered, query)
                limit = data.draw(st.sampled_from([None, 1, 2, 3]), label="limit")
                forward = list_all(api, path, [("timerange", query)], check, limit=limit, reverse=False)
                same_ranges(forward.items, want, SEGMENTS, f"segments overlapping {query!r} (limit={limit})", check)
                limit = data.draw(st.sampled_from([None, 1, 2]), label="reverse limit")
                params = [("timerange", query), ("reverse_order", "true")]
                backward = list_all(api, path, params, check, limit=limit, reverse=True)
                same_ranges(
                    backward.items, want[::-1], SEGMENTS, f"reverse_order over {query!r} (limit={limit})", check
                )
                head_matches_get(api, forward.pages[0], check)
            if kept:
                chosen = data.draw(st.sampled_from(kept), label="object filter")
                by_object = list_all(api, path, [("object_id", chosen["object_id"])], check, reverse=False)
                same_ranges(by_object.items, [chosen["timerange"]], SEGMENTS, "object_id filter", check)
            no_urls = list_all(api, path, [("accept_get_urls", "")], check, reverse=False)
            for segment in no_urls.items:
                if segment.get("get_urls"):
                    raise ContractFailure(
                        f"accept_get_urls= (empty) must give no get_urls, got {segment['get_urls']}",
                        SEGMENTS,
                        "accept-get-urls",
                    )
            # A page key taken before the deletions, followed once the flow is empty (below).
            first_page = list_all(api, path, [], check, limit=1, reverse=False, stop_after=1) if len(kept) > 1 else None
            delete_range = data.draw(st.one_of(st.none(), S.query_timeranges(points)), label="delete timerange")
            params = [] if delete_range is None else [("timerange", delete_range)]
            response = api.delete(path, params=params)
            if not deleted(api, response, ctx.config.delete_wait_s):
                api.expect(response, [204, 202], check)
            cover = timeline.ETERNITY if delete_range is None else Range.parse(delete_range)
            remaining = [r for r in ordered if not cover.covers(Range.parse(r))]
            after = list_all(api, path, [], check, reverse=False)
            same_ranges(
                after.items, remaining, "DELETE /flows/{flowId}/segments", f"after deleting {delete_range!r}", check
            )
            if first_page is not None:
                _stale_page_key(api, path, first_page.pages[0], bool(remaining), ctx.config.delete_wait_s, check)

    run()


def _stale_page_key(api: Api, path: str, page: httpx.Response, non_empty: bool, wait_s: float, check: str) -> None:
    """A page key that outlived the segments it pointed into (the flow is now empty) gives an empty
    page or a client error, never a server error."""
    resume = next_link(api, page, check)
    if resume is None:
        return
    if non_empty:
        response = api.delete(path)
        if not deleted(api, response, wait_s):
            api.expect(response, [204, 202], check)
    response = api.expect(api.get(resume), [200, 400, 404], check, "a page key into a flow since emptied")
    if response.status_code == 200 and api.json(response, check):
        raise ContractFailure(
            f"a page key into a flow since emptied listed segments: {describe(response)}", SEGMENTS, check
        )


def _flow_timerange(api: Api, flow_id: str, params: list[tuple[str, str]], want: Range, check: str) -> None:
    """``include_timerange``: the flow's ``timerange`` spans its segments, limited to ``timerange=``."""
    response = api.expect(api.get(f"/flows/{flow_id}", params=[("include_timerange", "true"), *params]), [200], check)
    got = api.json(response, check).get("timerange")
    try:
        ok = got is not None and Range.parse(got) == want
    except ValueError:
        ok = False
    if not ok:
        raise ContractFailure(
            f"flow timerange with {params or 'no timerange'} is {got!r}, its segments span {want}",
            "GET /flows/{flowId}",
            check,
        )


# --------------------------------------------------------------------------- filters and paging of flows and sources


def _flow_matches(flow: dict[str, Any], name: str, value: str, version: str = "7.0") -> bool | None:
    """Whether ``flow`` is selected by the filter ``name=value`` (None: either answer conforms)."""
    params = flow.get("essence_parameters") or {}
    tags = flow.get("tags") or {}
    if name in ("label", "format", "codec", "source_id"):
        return flow.get(name) == value
    if name in ("frame_width", "frame_height"):
        if flow["format"] == S.IMAGE and params.get(name) == int(value):
            return None  # "video flows that have the given frame width": image flows are a judgement call
        return flow["format"] == S.VIDEO and params.get(name) == int(value)
    if name.startswith("tag."):
        return _tag_matches(tags.get(name[4:]), value, version)
    if name.startswith("tag_exists."):
        return (name[11:] in tags) == (value == "true")
    if name == "timerange":
        return Range.parse(value).empty  # these flows have no segments
    raise ValueError(name)


def _tag_matches(have: Any, value: str, version: str) -> bool | None:
    """``tag.{name}=value`` against a tag value (None when the tag is not set).

    7.0: the tag value equals the query value (``a,b`` is one value). 8.0+ (``tag.{name}`` on
    GET /flows and /sources, url-tag-list.json): the query is a comma-separated list; a string tag
    matches when it equals one of its values, an array tag when one of its elements does; partial
    matches do not count. An empty query value (allowed by the pattern) names no value: whether it
    selects a tag set to ``""`` is not said, so either answer conforms for a flow that has the tag.
    """
    if not S.since(version, "8.0"):
        return have == value
    if have is None:
        return False
    if value == "":
        return None
    wanted = set(value.split(","))
    if isinstance(have, list):
        return any(element in wanted for element in have)
    return have in wanted


@st.composite
def flow_filters(draw: st.DrawFn, created: list[dict[str, Any]], version: str = "7.0") -> list[tuple[str, str]]:
    one = draw(st.sampled_from(created))
    candidates = [
        ("label", st.one_of(st.just(one.get("label", "none")), S.labels)),
        ("format", st.just(one["format"])),
        ("codec", st.just(one.get("codec", "video/h264"))),
        ("source_id", st.just(one["source_id"])),
        ("frame_width", st.sampled_from(["640", "1280", "1920"])),
        ("frame_height", st.sampled_from(["360", "720", "1080"])),
        ("tag.genre", S.tag_filter_values(version)),
        ("tag_exists.genre", st.sampled_from(["true", "false"])),
        ("tag_exists.lang", st.sampled_from(["true", "false"])),
        ("timerange", st.sampled_from(["()", "[0:0_10:0)", "[5:0]", "_5:0)"])),
    ]
    chosen = draw(st.lists(st.sampled_from(candidates), min_size=0, max_size=2, unique_by=lambda c: c[0]))
    return [(name, draw(values)) for name, values in chosen]


def listing_filters(ctx: Context) -> None:
    """``/flows`` and ``/sources`` filters select exactly what brute force on the created ones says;
    pages concatenate to the unpaged listing without repeats; HEAD mirrors GET."""
    api, check, version = ctx.api, "filters", ctx.config.rules_version

    @ctx.config.settings(examples=10)
    @given(bodies=st.lists(S.flows(version=version), min_size=1, max_size=5), data=st.data())
    def run(bodies: list[dict[str, Any]], data: st.DataObject) -> None:
        with ctx.case() as (scope, janitor):
            created: list[dict[str, Any]] = []
            for body in bodies:
                same_format = [f for f in created if f["format"] == body["format"]]
                reuse = same_format and data.draw(st.booleans(), label="share a source")
                source_id = data.draw(st.sampled_from(same_format))["source_id"] if reuse else None
                created.append(create_flow(api, scope, janitor, body, check, source_id))
            for filters in data.draw(
                st.lists(flow_filters(created, version), min_size=1, max_size=3), label="flow filters"
            ):
                verdicts = {f["id"]: [_flow_matches(f, n, v, version) for n, v in filters] for f in created}
                must = {i for i, v in verdicts.items() if all(x is True for x in v)}
                may = {i for i, v in verdicts.items() if all(x is not False for x in v)}
                limit = data.draw(st.sampled_from([None, 1, 2]), label="limit")
                listing = list_all(api, "/flows", scope.filters + filters, check, limit=limit)
                ids = [f.get("id") for f in listing.items]
                if len(ids) != len(set(ids)) or not must <= set(ids) <= may:
                    raise ContractFailure(
                        f"GET /flows with {filters} (limit={limit}) listed {ids}, expected {sorted(must)}",
                        "GET /flows",
                        check,
                    )
                head_matches_get(api, listing.pages[0], check)
            # Sources: each gets the scope tags and (sometimes) a label, then is filtered like flows.
            sources: dict[str, dict[str, Any]] = {}
            for flow in created:
                sources.setdefault(flow["source_id"], {"id": flow["source_id"], "format": flow["format"], "tags": {}})
            for source in sources.values():
                for name, value in scope.tags.items():
                    api.expect(api.put(f"/sources/{source['id']}/tags/{name}", value), [204], check)
                    source["tags"][name] = value
                if data.draw(st.booleans(), label="source label"):
                    source["label"] = data.draw(S.labels, label="label")
                    api.expect(api.put(f"/sources/{source['id']}/label", source["label"]), [204], check)
            one = data.draw(st.sampled_from(list(sources.values())), label="source")
            for name, value in data.draw(
                st.sampled_from(
                    [
                        [],
                        [("label", one.get("label", "none"))],
                        [("format", one["format"])],
                        [("tag_exists.genre", "false")],
                        [("format", one["format"]), ("tag.genre", "news")],
                    ]
                ),
                label="source filter",
            ) or [(None, None)]:
                filters = [] if name is None else [(name, value)]
                expected = {
                    s["id"]
                    for s in sources.values()
                    if all(_flow_matches({**s, "tags": {}}, n, v, version) for n, v in filters)
                }
                limit = data.draw(st.sampled_from([None, 1, 2]), label="source limit")
                listing = list_all(api, "/sources", scope.filters + filters, check, limit=limit)
                ids = [s.get("id") for s in listing.items]
                if len(ids) != len(set(ids)) or set(ids) != expected:
                    raise ContractFailure(
                        f"GET /sources with {filters} (limit={limit}) listed {ids}, expected {sorted(expected)}",
                        "GET /sources",
                        check,
                    )
                head_matches_get(api, listing.pages[0], check)

    run()


# --------------------------------------------------------------------------- media bytes and objects


def media_round_trip(ctx: Context) -> None:
    """Uploaded bytes come back byte for byte from every get_url; get_urls filters hold; objects
    list the flows that reference them, including a second flow that re-uses one."""
    api, check = ctx.api, "media"

    @ctx.config.settings(examples=5)
    @given(payloads=st.lists(S.payloads, min_size=1, max_size=3), kind=st.sampled_from(["video", "audio"]))
    def run(payloads: list[bytes], kind: str) -> None:
        with ctx.case() as (scope, janitor):
            flow = create_flow(api, scope, janitor, {**_minimal(kind)}, check)
            path = f"/flows/{flow['id']}/segments"
            objects = allocate(api, flow["id"], len(payloads), check)
            for media_object, payload in zip(objects, payloads, strict=True):
                upload(api, media_object, payload, check)
            for i, media_object in enumerate(objects):
                body = {"object_id": media_object["object_id"], "timerange": f"[{i}:0_{i + 1}:0)"}
                api.expect(api.post(path, body), [201], check)
            content = {o["object_id"]: p for o, p in zip(objects, payloads, strict=True)}
            listing = list_all(api, path, [], check, reverse=False)
            labels: set[str] = set()
            for segment in listing.items:
                urls = segment.get("get_urls") or []
                if not urls:
                    raise ContractFailure(f"segment without get_urls: {segment}", SEGMENTS, "get-urls")
                for entry in urls:
                    got = api.media("GET", entry["url"])
                    if got.status_code != 200 or got.content != content[segment["object_id"]]:
                        raise ContractFailure(
                            f"downloaded {len(got.content)} bytes (status {got.status_code}) from {entry['url']},"
                            f" uploaded {len(content[segment['object_id']])}",
                            SEGMENTS,
                            "media",
                        )
                    if entry.get("label"):
                        labels.add(entry["label"])
            none = list_all(api, path, [("accept_get_urls", "")], check, reverse=False)
            if any(s.get("get_urls") for s in none.items):
                raise ContractFailure("accept_get_urls= (empty) still gave get_urls", SEGMENTS, "accept-get-urls")
            for label in sorted(labels):
                only = list_all(api, path, [("accept_get_urls", label)], check, reverse=False)
                for segment in only.items:
                    if any(e.get("label") != label for e in segment.get("get_urls") or []):
                        raise ContractFailure(f"accept_get_urls={label} kept other labels: {segment}", SEGMENTS, check)
            for flag in (True, False):
                filtered = list_all(api, path, [("presigned", str(flag).lower())], check, reverse=False)
                for segment in filtered.items:
                    if any(bool(e.get("presigned")) != flag for e in segment.get("get_urls") or []):
                        raise ContractFailure(f"presigned={flag} kept other URLs: {segment}", SEGMENTS, check)
            first = objects[0]["object_id"]
            other = create_flow(api, scope, janitor, _minimal(kind), check)
            reuse = {"object_id": first, "timerange": "[100:0_101:0)"}
            api.expect(api.post(f"/flows/{other['id']}/segments", reuse), [201], check, "re-using a registered object")
            response = api.expect(api.get(f"/objects/{first}"), [200], check)
            body = api.json(response, check)
            if body.get("id") != first or sorted(body.get("referenced_by_flows", [])) != sorted(
                [flow["id"], other["id"]]
            ):
                raise ContractFailure(
                    f"object {first} should be referenced by {flow['id']} and {other['id']}: {body}",
                    "GET /objects/{objectId}",
                    check,
                )
            if body.get("first_referenced_by_flow") not in (None, flow["id"]):
                raise ContractFailure(f"first_referenced_by_flow is wrong: {body}", "GET /objects/{objectId}", check)
            head = api.head(f"/objects/{first}")
            api.expect(head, [200], check)

    run()


def _minimal(kind: str) -> dict[str, Any]:
    if kind == "audio":
        return {
            "format": S.AUDIO,
            "codec": "audio/aac",
            "container": "video/mp2t",
            "essence_parameters": {"sample_rate": 48000, "channels": 2},
        }
    # With a frame rate: optional in 7.0, required from 8.0 unless ``vfr`` is true (flow-video.json).
    return {
        "format": S.VIDEO,
        "codec": "video/h264",
        "container": "video/mp2t",
        "essence_parameters": {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 25}},
    }


# --------------------------------------------------------------------------- read_only


def _mutations(flow: dict[str, Any], member_id: str) -> list[tuple[str, str, Any, dict[str, str] | None]]:
    base = f"/flows/{flow['id']}"
    # Segments on objects the store has never seen bring their own URLs: nothing but read_only refuses them.
    urls = {"get_urls": [{"url": loopback_url(), "label": "conformance"}]}
    return [
        ("PUT", base, {**flow, "label": "changed"}, None),
        ("PUT", f"{base}/tags/genre", "sport", None),
        ("DELETE", f"{base}/tags/genre", None, None),
        ("PUT", f"{base}/label", "changed", None),
        ("PUT", f"{base}/description", "changed", None),
        ("DELETE", f"{base}/description", None, None),
        ("PUT", f"{base}/flow_collection", [{"id": member_id, "role": "member"}], None),
        ("PUT", f"{base}/max_bit_rate", 7, None),
        ("DELETE", f"{base}/max_bit_rate", None, None),
        ("PUT", f"{base}/avg_bit_rate", 7, None),
        ("DELETE", f"{base}/avg_bit_rate", None, None),
        ("POST", f"{base}/segments", {"object_id": new_id(), "timerange": "[50:0_51:0)", **urls}, None),
        ("POST", f"{base}/segments", [{"object_id": new_id(), "timerange": "[60:0_61:0)", **urls}], None),
        ("DELETE", f"{base}/segments", None, {"timerange": "[0:0_10:0)"}),
        ("DELETE", f"{base}/segments", None, None),
        ("POST", f"{base}/storage", {"limit": 1}, None),
        ("DELETE", base, None, None),
    ]


def read_only_enforced(ctx: Context) -> None:
    """A read_only flow refuses every change with 403 and stays as it was; unlocking lets changes in."""
    api, check = ctx.api, "read-only"

    @ctx.config.settings(examples=3)
    @given(kind=st.sampled_from(["video", "audio"]), order=st.randoms(use_true_random=False))
    def run(kind: str, order: Any) -> None:
        with ctx.case() as (scope, janitor):
            fields = {"label": "locked", "description": "d", "max_bit_rate": 5, "avg_bit_rate": 5}
            member = create_flow(api, scope, janitor, _minimal(kind), check)
            flow = create_flow(api, scope, janitor, {**_minimal(kind), **fields, "tags": {"genre": "news"}}, check)
            base = f"/flows/{flow['id']}"
            (media_object,) = allocate(api, flow["id"], 1, check)
            segment = {"object_id": media_object["object_id"], "timerange": "[0:0_10:0)"}
            api.expect(api.post(f"{base}/segments", segment), [201], check)
            api.expect(api.put(f"{base}/read_only", True), [204], check)
            locked = api.json(api.expect(api.get(f"{base}/read_only"), [200], check), check)
            if locked is not True:
                raise ContractFailure(
                    f"read_only reads {locked!r} after setting it", "GET /flows/{flowId}/read_only", check
                )
            before = _snapshot(api, flow["id"], check)
            mutations = _mutations(flow, member["id"])
            order.shuffle(mutations)
            for method, path, body, params in mutations:
                kwargs: dict[str, Any] = {"params": params}
                if body is not None:
                    kwargs["body"] = body
                response = api.request(method, path, **kwargs)
                api.expect(response, [403], check, "the flow is read_only")
            if _snapshot(api, flow["id"], check) != before:
                raise ContractFailure(f"a refused change altered read_only flow {flow['id']}", None, check)
            api.expect(api.put(f"{base}/read_only", False), [204], check)
            api.expect(api.put(f"{base}/label", "unlocked"), [204], check, "the flow was unlocked")

    run()


def _snapshot(api: Api, flow_id: str, check: str) -> Any:
    flow = api.json(api.expect(api.get(f"/flows/{flow_id}"), [200], check), check)
    segments = list_all(api, f"/flows/{flow_id}/segments", [("accept_get_urls", "")], check, reverse=False).items
    volatile = ("created", "metadata_updated", "segments_updated", "updated_by", "created_by")
    return {k: v for k, v in flow.items() if k not in volatile}, segments


# --------------------------------------------------------------------------- sources live and die with flows


def source_lifecycle(ctx: Context) -> None:
    """A flow PUT creates its source (id and format from the flow); the source lives while any flow
    refers to it and is gone, and no longer listed, once its last flow is deleted."""
    api, check = ctx.api, "sources"

    @ctx.config.settings(examples=5)
    @given(kind=st.sampled_from(S.KINDS), count=st.integers(1, 3), data=st.data())
    def run(kind: str, count: int, data: st.DataObject) -> None:
        with ctx.case() as (scope, janitor):
            source_id = new_id()
            flows = [
                create_flow(
                    api, scope, janitor, data.draw(S.flows(kind, version=ctx.config.rules_version)), check, source_id
                )
                for _ in range(count)
            ]
            source = api.json(api.expect(api.get(f"/sources/{source_id}"), [200], check), check)
            if source.get("id") != source_id or source.get("format") != S.FORMATS[kind]:
                raise ContractFailure(f"source made by a flow PUT is wrong: {source}", "GET /sources/{sourceId}", check)
            for name, value in scope.tags.items():
                api.expect(api.put(f"/sources/{source_id}/tags/{name}", value), [204], check)
            order = data.draw(st.permutations(flows), label="deletion order")
            for i, flow in enumerate(order):
                response = api.delete(f"/flows/{flow['id']}")
                if not deleted(api, response, ctx.config.delete_wait_s):
                    api.expect(response, [204, 202], check)
                last = i == len(order) - 1
                got = api.get(f"/sources/{source_id}")
                api.expect(got, [404] if last else [200], check, "after its last flow" if last else "flows remain")
                listed = [s.get("id") for s in list_all(api, "/sources", scope.filters, check).items]
                if listed != ([] if last else [source_id]):
                    raise ContractFailure(
                        f"scoped source listing is {listed} with {len(order) - i - 1} flows left", "GET /sources", check
                    )

    run()


# --------------------------------------------------------------------------- authentication


def credentials_required(ctx: Context, http: httpx.Client, user: str | None = None) -> None:
    """No access without valid credentials: a request without any is refused, and a wrong bearer
    token, a wrong basic-auth password and a wrong ``access_token`` query parameter each get 401
    (a store that accepts any token or password would pass a test of missing credentials alone)."""
    api = ctx.api
    wrong = f"wrong-{uuid.uuid4().hex}"
    attempts: list[tuple[str, dict[str, str], httpx.Auth | None, dict[str, str]]] = [
        ("no credentials", {}, None, {}),
        ("a wrong bearer token", {"Authorization": f"Bearer {wrong}"}, None, {}),
        ("a wrong basic-auth password", {}, httpx.BasicAuth(user or "tams-conformance", wrong), {}),
        ("a wrong access_token", {}, None, {"access_token": wrong}),
    ]
    for path in ("/flows", "/sources", "/service"):
        operation = f"GET {path}"
        for what, headers, auth, params in attempts:
            request = http.build_request("GET", path, params=params)
            request.headers.pop("authorization", None)
            request.headers.update(headers)
            response = http.send(request, auth=auth)
            if response.status_code == 401:
                if "www-authenticate" not in response.headers:
                    api.warn(f"401 without WWW-Authenticate ({what})", operation, "auth-header")
                continue
            if what == "no credentials" and response.status_code == 403:
                api.warn("403 (not 401) for a request without credentials", operation, "auth-status")
                continue
            raise ContractFailure(f"a request with {what} got {describe(response)}, not 401", operation, "auth")


def head_on_the_wire(ctx: Context) -> None:
    """HEAD responses carry no body bytes on the wire (a body there corrupts kept-alive connections)."""
    for path in ("/", "/service", "/flows", "/sources", "/flows?limit=1"):
        head, rest = ctx.api.raw_head(path)
        if rest:
            status = head.split(b"\r\n", 1)[0].decode("latin-1")
            raise ContractFailure(
                f"HEAD {path} ({status}) was followed by {len(rest)} body bytes on the wire: {rest[:100]!r}",
                f"HEAD {path.split('?')[0]}",
                "head-without-body",
            )


# --------------------------------------------------------------------------- read-only observation of a live store


def observe_existing(ctx: Context) -> None:
    """GET/HEAD only: for flows already in the store, segment listings are ordered, do not overlap,
    page consistently in both orders and answer timerange queries as brute force on the full list."""
    api, check = ctx.api, "observe"
    response = api.expect(api.get("/flows", params=[("limit", "5")]), [200], check)
    flows = [f for f in api.json(response, check) if isinstance(f, dict) and "id" in f][:5]
    for flow in flows:
        path = f"/flows/{flow['id']}/segments"
        listing = list_all(api, path, [], check, limit=100, reverse=False, stop_after=2)
        if not listing.complete:
            continue  # too many segments to brute-force here
        ranges = [s["timerange"] for s in listing.items]
        parsed = [Range.parse(r) for r in ranges]
        if parsed != sorted(parsed, key=Range.sort_key):
            raise ContractFailure(f"segments of flow {flow['id']} are not in time order: {ranges}", SEGMENTS, check)
        for a, b in itertools.pairwise(parsed):
            if a.overlaps(b):
                raise ContractFailure(f"segments of flow {flow['id']} overlap: {a} and {b}", SEGMENTS, "overlap")
        limit = len(ranges) // 20 + 2  # at most ~20 pages
        backward = list_all(api, path, [("reverse_order", "true")], check, limit=limit, reverse=True)
        same_ranges(backward.items, ranges[::-1], SEGMENTS, f"reverse_order, paged by {limit}", check)
        _observe_queries(ctx, path, ranges)


def _observe_queries(ctx: Context, path: str, ranges: list[str]) -> None:
    api, check = ctx.api, "observe"

    small = len(ranges) // 40 + 1  # at most ~40 pages

    @ctx.config.settings(examples=5)
    @given(query=S.query_timeranges(boundaries(ranges)), limit=st.sampled_from([None, small, small + 2]))
    def run(query: str, limit: int | None) -> None:
        got = list_all(api, path, [("timerange", query)], check, limit=limit, reverse=False)
        same_ranges(got.items, timeline.overlapping(ranges, query), SEGMENTS, f"overlapping {query!r}", check)
        head_matches_get(api, got.pages[0], check)

    run()
