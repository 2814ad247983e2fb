"""Paging of sources, flows, segments and object references; HEAD answers with GET's headers."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from conftest import Tams, TamsClient, flow_body, fresh_app, new_id, next_link, operations, same_headers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.timerange import TimeRange

NS = 1_000_000_000


def concatenated(pages) -> list:
    return [item for page in pages for item in page.json()]


def assert_paging_headers(pages, limit: int, items=lambda body: body) -> None:
    for i, page in enumerate(pages):
        last = i == len(pages) - 1
        assert page.headers["x-paging-limit"] == str(limit)
        assert len(items(page.json())) <= limit
        assert ("x-paging-nextkey" in page.headers) == (not last)
        assert ("link" in page.headers) == (not last)
        if not last:
            assert len(items(page.json())) == limit
            url = next_link(page)
            assert parse_qs(urlsplit(url).query)["page"] == [page.headers["x-paging-nextkey"]]


# ----------------------------------------------------------------- sources and flows


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 8])
def test_flow_pages_concatenate_to_the_whole_list(tams, limit):
    for _ in range(7):
        tams.put_flow()
    whole = tams.client.get("/flows").json()
    pages = tams.pages("/flows", limit=limit)
    assert concatenated(pages) == whole
    assert len(pages) == -(-7 // limit)
    assert_paging_headers(pages, limit)


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_source_pages_concatenate_to_the_whole_list(tams, limit):
    for _ in range(5):
        tams.put_flow()
    whole = tams.client.get("/sources").json()
    assert len(whole) == 5
    pages = tams.pages("/sources", limit=limit)
    assert concatenated(pages) == whole
    assert_paging_headers(pages, limit)


def test_the_next_link_keeps_the_filters(tams):
    for i in range(6):
        tams.put_flow("video" if i % 2 else "audio", label="paged")
    tams.put_flow("video", label="other")
    pages = tams.pages("/flows", limit=1, format="urn:x-nmos:format:video", label="paged")
    flows = concatenated(pages)
    assert len(flows) == 3
    assert {(f["format"], f["label"]) for f in flows} == {("urn:x-nmos:format:video", "paged")}
    query = parse_qs(urlsplit(next_link(pages[0])).query)
    assert query["format"] == ["urn:x-nmos:format:video"]
    assert query["label"] == ["paged"]
    assert query["limit"] == ["1"]


def test_without_a_limit_a_default_limit_is_reported(tams):
    tams.put_flow()
    response = tams.client.get("/flows")
    assert int(response.headers["x-paging-limit"]) >= 1
    assert "link" not in response.headers
    assert "x-paging-nextkey" not in response.headers


def test_a_limit_above_the_maximum_is_capped_and_reported(tams):
    tams.put_flow()
    response = tams.client.get("/flows", params={"limit": 1_000_000})
    assert response.status_code == 200
    assert 1 <= int(response.headers["x-paging-limit"]) < 1_000_000


# ----------------------------------------------------------------- segments


@pytest.fixture
def ten_segments(tams):
    flow = tams.put_flow()
    ids = tams.allocate_ids(flow["id"], *(f"o{i}" for i in range(10)))
    segments = [tams.segment(f"[{i}:0_{i + 1}:0)", object_id=object_id) for i, object_id in enumerate(ids)]
    assert tams.client.post(f"/flows/{flow['id']}/segments", json=segments).status_code == 201
    return flow


@pytest.mark.parametrize("reverse", ["false", "true"])
@pytest.mark.parametrize("limit", [1, 3, 4, 10, 11])
def test_segment_pages_concatenate_to_the_whole_list(tams, ten_segments, limit, reverse):
    path = f"/flows/{ten_segments['id']}/segments"
    # Without get_urls: presigned URLs made a second apart differ (their expiry).
    whole = tams.segments(ten_segments["id"], reverse_order=reverse, accept_get_urls="")
    pages = tams.pages(path, limit=limit, reverse_order=reverse, accept_get_urls="")
    assert concatenated(pages) == whole
    assert_paging_headers(pages, limit)
    for page in pages:
        items = page.json()
        assert page.headers["x-paging-count"] == str(len(items))
        assert page.headers["x-paging-reverse-order"] == reverse
        first, last = TimeRange.parse(items[0]["timerange"]), TimeRange.parse(items[-1]["timerange"])
        assert page.headers["x-paging-timerange"] == str(first.extend_to_encompass(last))


def test_segment_paging_headers_of_an_empty_result(tams, ten_segments):
    response = tams.client.get(f"/flows/{ten_segments['id']}/segments", params={"timerange": "[100:0_"})
    assert response.json() == []
    assert response.headers["x-paging-count"] == "0"
    assert response.headers["x-paging-timerange"] == "()"
    assert response.headers["x-paging-reverse-order"] == "false"
    assert "x-paging-nextkey" not in response.headers


def test_segment_pages_with_a_timerange_and_object_filter(tams, ten_segments):
    path = f"/flows/{ten_segments['id']}/segments"
    extra = tams.put_flow()
    ids = tams.allocate_ids(extra["id"], *("even" if i % 2 == 0 else f"odd{i}" for i in range(6)))
    for i, object_id in enumerate(ids):
        tams.post_segment(extra["id"], f"[{i}:0_{i + 1}:0)", object_id=object_id)
    pages = tams.pages(f"/flows/{extra['id']}/segments", limit=1, object_id="even", timerange="[1:0_")
    assert [s["timerange"] for s in concatenated(pages)] == ["[2:0_3:0)", "[4:0_5:0)"]
    assert len(pages) == 2
    assert tams.pages(path, limit=2, timerange="[2:500000000_6:0)")[0].json()[0]["object_id"] == "o2"


# ----------------------------------------------------------------- object references


def test_object_referenced_by_flows_pages(tams):
    flows = [tams.put_flow() for _ in range(5)]
    for flow in flows:
        tams.post_segment(flow["id"], "[0:0_10:0)", object_id="shared-object")
    whole = tams.client.get("/objects/shared-object").json()
    assert sorted(whole["referenced_by_flows"]) == sorted(f["id"] for f in flows)
    for limit in (1, 2, 5):
        pages = tams.pages("/objects/shared-object", limit=limit)
        assert_paging_headers(pages, limit, items=lambda body: body["referenced_by_flows"])
        assert [f for p in pages for f in p.json()["referenced_by_flows"]] == whole["referenced_by_flows"]
        assert {p.json()["id"] for p in pages} == {"shared-object"}


# ----------------------------------------------------------------- HEAD mirrors GET


def head_able_paths(tams) -> dict[str, str]:
    """One concrete path for every HEAD operation, with some data behind it."""
    video = tams.put_flow(label="l", description="d", tags={"genre": "news"}, max_bit_rate=1, avg_bit_rate=1)
    member = tams.put_flow(container=None)
    multi = tams.put_flow("multi", flow_collection=[{"id": member["id"], "role": "video"}], read_only=False)
    for path, value in (("label", "sl"), ("description", "sd"), ("tags/genre", "news")):
        tams.client.put(f"/sources/{video['source_id']}/{path}", json=value)
    urls = [{"url": "https://cdn.example.com/head-object", "label": "cdn"}]  # its own URL: no allocation request
    for i in range(3):
        tams.post_segment(video["id"], f"[{i}:0_{i + 1}:0)", object_id="head-object", get_urls=urls)
    flow, source = f"/flows/{video['id']}", f"/sources/{video['source_id']}"
    return {
        "/": "/",
        "/service": "/service",
        "/service/storage-backends": "/service/storage-backends",
        "/service/webhooks": "/service/webhooks",
        "/sources": "/sources?limit=1",
        "/sources/{sourceId}": source,
        "/sources/{sourceId}/tags": f"{source}/tags",
        "/sources/{sourceId}/tags/{name}": f"{source}/tags/genre",
        "/sources/{sourceId}/description": f"{source}/description",
        "/sources/{sourceId}/label": f"{source}/label",
        "/flows": "/flows?limit=1",
        "/flows/{flowId}": f"{flow}?include_timerange=true",
        "/flows/{flowId}/tags": f"{flow}/tags",
        "/flows/{flowId}/tags/{name}": f"{flow}/tags/genre",
        "/flows/{flowId}/description": f"{flow}/description",
        "/flows/{flowId}/label": f"{flow}/label",
        "/flows/{flowId}/read_only": f"/flows/{multi['id']}/read_only",
        "/flows/{flowId}/flow_collection": f"/flows/{multi['id']}/flow_collection",
        "/flows/{flowId}/max_bit_rate": f"{flow}/max_bit_rate",
        "/flows/{flowId}/avg_bit_rate": f"{flow}/avg_bit_rate",
        "/flows/{flowId}/segments": f"{flow}/segments?limit=2&accept_get_urls=",
        "/objects/{objectId}": "/objects/head-object?limit=1",
        "/flow-delete-requests": "/flow-delete-requests",
        "/flow-delete-requests/{request-id}": f"/flow-delete-requests/{new_id()}",
        **(head_able_paths_since_8(tams) if tams.client.version != "7.0" else {}),
    }


def head_able_paths_since_8(tams) -> dict[str, str]:
    webhook = tams.client.post("/service/webhooks", json={"url": "http://127.0.0.1:9/", "events": ["flows/created"]})
    profile_id = new_id()
    metadata = {k: v for k, v in flow_body("audio").items() if k not in ("id", "source_id")}
    tams.client.post(f"/service/profiles/{profile_id}", json={"id": profile_id, "flow_metadata": metadata})
    return {
        "/service/webhooks/{webhookId}": f"/service/webhooks/{webhook.json()['id']}",
        "/service/profiles": "/service/profiles",
        "/service/profiles/{profileId}": f"/service/profiles/{profile_id}",
    }


def head_templates(version: str) -> list[str]:
    return sorted(op.template for op in operations(version) if op.method == "HEAD")


HEAD_TEMPLATES = sorted(set(head_templates("7.0")) | set(head_templates("8.2")))


def test_every_head_operation_is_listed_here():
    assert len(head_templates("7.0")) == 24
    assert len(head_templates("8.2")) == 27


@pytest.mark.parametrize("template", HEAD_TEMPLATES)
def test_head_answers_the_get_status_and_headers_with_no_body(tams, template):
    if template not in head_templates(tams.client.version):
        pytest.skip(f"TAMS {tams.client.version} has no HEAD {template}")
    path = head_able_paths(tams)[template]
    get = tams.client.get(path)
    head = tams.client.head(path)
    assert head.status_code == get.status_code
    assert head.content == b""
    assert same_headers(head, get), (dict(head.headers), dict(get.headers))


def test_head_of_a_paged_listing_has_the_paging_headers(tams, ten_segments):
    head = tams.client.head(f"/flows/{ten_segments['id']}/segments", params={"limit": 3, "reverse_order": "true"})
    assert head.headers["x-paging-count"] == "3"
    assert head.headers["x-paging-timerange"] == "[7:0_10:0)"
    assert head.headers["x-paging-reverse-order"] == "true"
    assert next_link(head) is not None


# ----------------------------------------------------------------- property: paging never loses or repeats


@st.composite
def layouts(draw) -> list[TimeRange]:
    """Sorted, non-overlapping segment timeranges with gaps, adjacency and both end markers."""
    ranges: list[TimeRange] = []
    position = draw(st.integers(-4, 4)) * NS // 2
    for _ in range(draw(st.integers(0, 12))):
        gap = draw(st.sampled_from([0, 0, 1, 3])) * NS // 2
        length = draw(st.sampled_from([0, 1, 2, 5])) * NS // 2
        start = position + gap
        previous_end_inclusive = bool(ranges) and ranges[-1].include_end and ranges[-1].end == start
        if length == 0:  # an instant: needs a free start
            if previous_end_inclusive or (ranges and ranges[-1].end == start):
                start += NS // 2
            candidate = TimeRange.instant(start)
        else:
            include_start = not previous_end_inclusive and draw(st.booleans())
            if ranges and ranges[-1].end == start and ranges[-1].include_end:
                include_start = False
            candidate = TimeRange(start, start + length, include_start=include_start, include_end=draw(st.booleans()))
        assert not ranges or ranges[-1].is_before(candidate)
        ranges.append(candidate)
        position = candidate.end
    return ranges


bounds = st.one_of(st.none(), st.integers(-6, 30).map(lambda half_seconds: half_seconds * NS // 2))
queries = st.builds(
    lambda start, end, include_start, include_end: TimeRange(
        start, end, include_start=include_start, include_end=include_end
    ),
    bounds,
    bounds,
    st.booleans(),
    st.booleans(),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=layouts(), query=queries, limit=st.integers(1, 5))
def test_paged_segments_equal_the_unpaged_list_and_brute_force(app_template, layout, query, limit):
    client = TamsClient(fresh_app(app_template))
    tams = Tams(client)
    flow = tams.put_flow()
    tams.allocate_ids(flow["id"], *(f"o{i}" for i in range(len(layout))))
    segments = [tams.segment(str(r), object_id=f"o{i}") for i, r in enumerate(layout)]
    response = client.post(f"/flows/{flow['id']}/segments", json=segments)
    assert response.status_code == 201, response.text

    overlapping = [str(r) for r in layout if r.overlaps(query)]
    for reverse, expected in (("false", overlapping), ("true", overlapping[::-1])):
        params = {"timerange": str(query), "reverse_order": reverse, "accept_get_urls": ""}
        unpaged = tams.timeranges(flow["id"], **params)
        pages = tams.pages(f"/flows/{flow['id']}/segments", limit=limit, **params)
        paged = [s["timerange"] for s in concatenated(pages)]
        assert unpaged == expected
        assert paged == expected
        for page in pages:
            assert page.headers["x-paging-count"] == str(len(page.json()))
        assert_paging_headers(pages, limit)


# ----------------------------------------------------------------- next links are valid URIs

_URI_UNSAFE = re.compile(r"[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]|%(?![0-9A-Fa-f]{2})")


def referenced_object(tams, object_id: str) -> None:
    for _ in range(2):
        tams.post_segment(tams.put_flow()["id"], "[0:0_10:0)", object_id=object_id)


@pytest.mark.parametrize("object_id", ["a b", "50%", "bucket/x y"])
def test_the_object_next_link_percent_encodes_the_object_id(tams, object_id):
    referenced_object(tams, object_id)
    response = tams.client.get("/objects/" + quote(object_id, safe="/"), params={"limit": 1})
    url = next_link(response)
    assert not _URI_UNSAFE.search(url), url
    assert tams.client.get(url).json()["id"] == object_id


def test_the_object_next_link_of_a_non_ascii_object_id_is_ascii(tams):
    referenced_object(tams, "café")
    response = tams.client.get("/objects/caf%C3%A9", params={"limit": 1})
    url = next_link(response)
    assert url.isascii()
    assert tams.client.get(url).json()["id"] == "café"
