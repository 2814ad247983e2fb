"""read_only: every change to a read-only flow, its segments or its storage is refused with 403."""

from __future__ import annotations

import pytest
from conftest import new_id

CDN = {"url": "https://cdn.example.com/media", "label": "cdn"}


@pytest.fixture
def locked(tams):
    """A read-only video flow with one segment, a label, a tag and bit rates, and a collectable flow."""
    member = tams.put_flow(container=None)
    flow = tams.put_flow(
        label="Locked", description="Cannot change", tags={"genre": "news"}, max_bit_rate=1, avg_bit_rate=1
    )
    # The segment is state to keep, not an object of this store: it brings its URL (no allocation request).
    tams.post_segment(flow["id"], "[0:0_10:0)", object_id="locked-object", get_urls=[CDN])
    assert tams.client.put(f"/flows/{flow['id']}/read_only", json=True).status_code == 204
    return {"flow": flow, "member": member}


def mutations(flow: dict, member: dict) -> dict[str, tuple[str, str, object]]:
    base = f"/flows/{flow['id']}"
    urls = {"get_urls": [CDN]}  # new objects bring their own URLs: only read_only refuses these segments
    return {
        "put flow": ("PUT", base, {**flow, "label": "Changed", "read_only": True}),
        "put flow unlocking in the body": ("PUT", base, {**flow, "read_only": False}),
        "put tag": ("PUT", f"{base}/tags/genre", "sport"),
        "put new tag": ("PUT", f"{base}/tags/lang", "en"),
        "delete tag": ("DELETE", f"{base}/tags/genre", None),
        "put label": ("PUT", f"{base}/label", "Changed"),
        "put description": ("PUT", f"{base}/description", "Changed"),
        "delete description": ("DELETE", f"{base}/description", None),
        "put flow_collection": ("PUT", f"{base}/flow_collection", [{"id": member["id"], "role": "video"}]),
        "delete flow_collection": ("DELETE", f"{base}/flow_collection", None),
        "put max_bit_rate": ("PUT", f"{base}/max_bit_rate", 2),
        "delete max_bit_rate": ("DELETE", f"{base}/max_bit_rate", None),
        "put avg_bit_rate": ("PUT", f"{base}/avg_bit_rate", 2),
        "delete avg_bit_rate": ("DELETE", f"{base}/avg_bit_rate", None),
        "post segment": ("POST", f"{base}/segments", {"object_id": new_id(), "timerange": "[10:0_20:0)", **urls}),
        "post segments in bulk": (
            "POST",
            f"{base}/segments",
            [{"object_id": new_id(), "timerange": "[20:0_30:0)", **urls}],
        ),
        "delete segments": ("DELETE", f"{base}/segments", None),
        "delete segments in a timerange": ("DELETE", f"{base}/segments?timerange=[0:0_10:0)", None),
        "post storage": ("POST", f"{base}/storage", {"limit": 1}),
        "delete flow": ("DELETE", base, None),
    }


MUTATIONS = sorted(mutations({"id": "x"}, {"id": "y"}))


def send(client, method: str, path: str, body: object):
    return client.request(method, path) if body is None else client.request(method, path, json=body)


def snapshot(tams, flow_id: str) -> tuple[dict, list[dict]]:
    flow = tams.get_flow(flow_id)
    return flow, tams.segments(flow_id, accept_get_urls="")


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_a_read_only_flow_refuses_every_change(tams, locked, mutation):
    method, path, body = mutations(locked["flow"], locked["member"])[mutation]
    before = snapshot(tams, locked["flow"]["id"])
    response = send(tams.client, method, path, body)
    assert response.status_code == 403
    assert response.json()["summary"]
    assert snapshot(tams, locked["flow"]["id"]) == before


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_unlocking_a_flow_lets_the_change_through(tams, locked, mutation):
    method, path, body = mutations(locked["flow"], locked["member"])[mutation]
    assert tams.client.put(f"/flows/{locked['flow']['id']}/read_only", json=False).status_code == 204
    response = send(tams.client, method, path, body)
    assert response.status_code in (200, 201, 204), response.text


def test_read_only_can_still_be_set_on_a_read_only_flow(tams, locked):
    path = f"/flows/{locked['flow']['id']}/read_only"
    assert tams.client.put(path, json=True).status_code == 204
    assert tams.client.get(path).json() is True
    assert tams.client.put(path, json=False).status_code == 204
    assert tams.client.get(path).json() is False


def test_a_read_only_flow_can_still_be_read(tams, locked):
    flow_id = locked["flow"]["id"]
    assert tams.get_flow(flow_id)["read_only"] is True
    assert [s["timerange"] for s in tams.segments(flow_id)] == ["[0:0_10:0)"]
    assert tams.client.get(f"/flows/{flow_id}/label").json() == "Locked"
    assert tams.client.get("/objects/locked-object").status_code == 200


def test_deleting_the_label_of_a_read_only_flow_is_refused(tams, locked):
    # The spec lists no 403 for DELETE /flows/{flowId}/label (an oversight: ADR 0005 covers all metadata).
    with tams.client.unchecked():
        response = tams.client.delete(f"/flows/{locked['flow']['id']}/label")
    assert response.status_code == 403
    assert tams.client.get(f"/flows/{locked['flow']['id']}/label").json() == "Locked"


def test_a_put_that_sets_read_only_on_a_writable_flow_is_accepted(tams):
    flow = tams.put_flow()
    assert tams.client.put(f"/flows/{flow['id']}", json={**flow, "read_only": True}).status_code == 204
    assert tams.client.put(f"/flows/{flow['id']}/label", json="x").status_code == 403
