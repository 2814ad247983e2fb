"""Webhooks by id (TAMS 8.0+, ADR-0037) under /v8.2, 7.0's registration by identity kept under
/v7.0, and what each version sees of registrations the other made; statuses and deliveries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import TamsClient, flow_body, new_id
from test_webhooks import Receiver

from backends import events
from handlers.versions.v7_0 import Dialect70

pytestmark = pytest.mark.versions("8.2")

KEY = {"api_key_name": "X-Hook-Key", "api_key_value": "s3cret"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def v70(client: TamsClient) -> Iterator[TamsClient]:
    """A 7.0 client of the same app (and store) as ``client``."""
    with TamsClient(client.app, "7.0") as c:
        yield c


def create(client: TamsClient, url: str = "https://hooks.example/a", **extra: Any) -> dict[str, Any]:
    body = {"url": url, "events": ["flows/created"], **KEY, **extra}
    response = client.post("/service/webhooks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def put(client: TamsClient, webhook: dict[str, Any], **changes: Any) -> Any:
    body = {k: v for k, v in webhook.items() if k != "error"}
    body.update(changes)
    return client.put(f"/service/webhooks/{webhook['id']}", json=body)


def settle(client: TamsClient) -> None:
    assert client.app.webhooks.wait_idle(10), "deliveries did not finish"


def put_flow(client: TamsClient) -> dict[str, Any]:
    flow = flow_body()
    assert client.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    return flow


# --- CRUD ----------------------------------------------------------------------------------------


def test_post_always_creates_a_registration_with_an_id(client) -> None:
    first = create(client)
    second = create(client)  # the same body: a second registration (no upsert in 8.x)
    assert first["id"] != second["id"]
    assert first["status"] == "created"
    assert "api_key_value" not in first
    assert {w["id"] for w in client.get("/service/webhooks").json()} == {first["id"], second["id"]}


def test_get_put_delete_by_id(client) -> None:
    webhook = create(client, tags={"team": "news"})
    got = client.get(f"/service/webhooks/{webhook['id']}")
    assert got.status_code == 200 and got.json() == webhook
    assert client.head(f"/service/webhooks/{webhook['id']}").status_code == 200
    response = put(client, webhook, events=["flows/deleted", "sources/created"], status="created")
    assert response.status_code == 201, response.text
    assert response.json()["events"] == ["flows/deleted", "sources/created"]
    assert response.json()["id"] == webhook["id"]
    assert client.get(f"/service/webhooks/{webhook['id']}").json() == response.json()
    assert client.delete(f"/service/webhooks/{webhook['id']}").status_code == 204
    assert client.get(f"/service/webhooks/{webhook['id']}").status_code == 404
    assert client.delete(f"/service/webhooks/{webhook['id']}").status_code == 404
    assert put(client, webhook, status="created").status_code == 404
    assert client.get("/service/webhooks").json() == []


def test_api_key_value_is_never_returned_but_kept(client) -> None:
    webhook = create(client)
    assert "api_key_value" not in put(client, webhook, status="created").json()  # the value was omitted
    assert client.app.backend.get_webhook(webhook["id"])["api_key_value"] == "s3cret"
    put(client, webhook, status="created", api_key_value="new")
    assert client.app.backend.get_webhook(webhook["id"])["api_key_value"] == "new"
    for shown in [client.get(f"/service/webhooks/{webhook['id']}").json(), *client.get("/service/webhooks").json()]:
        assert "api_key_value" not in shown and "api_version" not in shown


def test_bad_registrations_are_400(client) -> None:
    webhook = create(client)
    with client.unchecked():
        body = {"url": "https://hooks.example/", "events": ["flows/created"], "tag_filter": {}}
        not_http = {"url": "ftp://x/", "events": ["flows/created"]}
        assert client.post("/service/webhooks", json=not_http).status_code == 400
        assert client.post("/service/webhooks", json=body).status_code == 400
        assert client.post("/service/webhooks", json={**body, "api_version": "7.0"}).status_code == 400
        assert put(client, webhook, id=new_id(), status="created").status_code == 400  # id differs from the path
        assert put(client, webhook, status="started").status_code == 400  # only created or disabled
    assert client.get(f"/service/webhooks/{webhook['id']}").json() == webhook


# --- statuses ------------------------------------------------------------------------------------


def test_client_status_transitions(client) -> None:
    disabled = create(client, status="disabled")
    assert disabled["status"] == "disabled"
    assert put(client, disabled, status="created").json()["status"] == "created"
    assert put(client, disabled, status="disabled").json()["status"] == "disabled"
    started = create(client)
    assert client.app.backend.set_webhook_status(started["id"], "started")
    assert put(client, started, status="created").json()["status"] == "started"  # enabled already
    assert put(client, started, status="disabled").json()["status"] == "disabled"


def test_error_may_be_re_enabled_but_not_disabled(client) -> None:
    webhook = create(client)
    error = events.delivery_error("receiver gone")
    assert client.app.backend.set_webhook_status(webhook["id"], "error", error)
    shown = client.get(f"/service/webhooks/{webhook['id']}").json()
    assert shown["status"] == "error" and shown["error"]["summary"] == "receiver gone"
    with client.unchecked():
        refused = put(client, shown, status="disabled")
    assert refused.status_code == 400
    assert refused.json()["summary"].startswith("a webhook in error cannot be disabled")
    again = put(client, shown, status="created").json()
    assert again["status"] == "created" and "error" not in again


def test_the_server_does_not_override_a_client_disabling(client) -> None:
    webhook = create(client, status="disabled")
    assert not client.app.backend.set_webhook_status(webhook["id"], "started")
    assert not client.app.backend.set_webhook_status(webhook["id"], "error", events.delivery_error("x"))
    assert not client.app.backend.set_webhook_status(new_id(), "started")
    assert client.get(f"/service/webhooks/{webhook['id']}").json()["status"] == "disabled"


# --- listing -------------------------------------------------------------------------------------


def test_listing_is_sorted_by_url_and_paged(client, tams) -> None:
    urls = [f"https://hooks.example/{c}" for c in "dbeac"]
    for url in urls:
        create(client, url)
    create(client, "https://hooks.example/b")  # a tie on url: ordered by id
    pages = tams.pages("/service/webhooks", limit=2)
    assert [len(p.json()) for p in pages] == [2, 2, 2]
    listed = [w["url"] for p in pages for w in p.json()]
    assert listed == sorted([*urls, "https://hooks.example/b"])
    assert pages[0].headers["X-Paging-Count"] == "2"
    assert pages[0].headers["X-Paging-Reverse-Order"] == "false"
    assert pages[0].headers["X-Paging-Limit"] == "2"
    backwards = tams.pages("/service/webhooks", limit=4, reverse_order="true")
    assert [w["url"] for p in backwards for w in p.json()] == listed[::-1]
    assert backwards[0].headers["X-Paging-Reverse-Order"] == "true"
    ids = [w["id"] for p in pages for w in p.json()]
    assert len(set(ids)) == 6


def test_a_page_key_of_one_order_is_refused_by_the_other(client) -> None:
    for c in "abc":
        create(client, f"https://hooks.example/{c}")
    key = client.get("/service/webhooks", params={"limit": 1}).headers["X-Paging-NextKey"]
    with client.unchecked():
        response = client.get("/service/webhooks", params={"limit": 1, "page": key, "reverse_order": "true"})
    assert response.status_code == 400


def test_a_listing_resumes_after_a_removed_registration(client) -> None:
    made = sorted((create(client, f"https://hooks.example/{c}") for c in "abcd"), key=lambda w: w["url"])
    first = client.get("/service/webhooks", params={"limit": 2})
    client.delete(f"/service/webhooks/{made[1]['id']}")  # the last one listed
    rest = client.get("/service/webhooks", params={"limit": 2, "page": first.headers["X-Paging-NextKey"]})
    assert [w["id"] for w in rest.json()] == [made[2]["id"], made[3]["id"]]


def test_tag_filters(client) -> None:
    news = create(client, "https://hooks.example/1", tags={"team": "news"})
    sport = create(client, "https://hooks.example/2", tags={"team": "sport", "live": "yes"})
    create(client, "https://hooks.example/3")

    def ids(**params: str) -> list[str]:
        response = client.get("/service/webhooks", params=params)
        assert response.status_code == 200, response.text
        return [w["id"] for w in response.json()]

    assert ids(**{"tag.team": "news"}) == [news["id"]]
    assert ids(**{"tag_exists.live": "true"}) == [sport["id"]]
    assert len(ids(**{"tag_exists.team": "false"})) == 1
    assert ids(**{"tag.team": "sport", "tag_exists.live": "false"}) == []


@pytest.mark.xfail(reason="any-of tag filters and list-valued tags arrive with feat/listings", strict=False)
def test_tag_filters_any_of_and_list_valued_tags(client) -> None:
    news = create(client, "https://hooks.example/1", tags={"team": "news"})
    both = create(client, "https://hooks.example/2", tags={"team": ["sport", "weather"]})
    create(client, "https://hooks.example/3", tags={"team": "drama"})
    listed = client.get("/service/webhooks", params={"tag.team": "news,weather"}).json()
    assert [w["id"] for w in listed] == [news["id"], both["id"]]


# --- across versions -----------------------------------------------------------------------------


def test_a_7_0_registration_is_listed_under_8_2_with_an_id(client, v70) -> None:
    body = {"url": "https://hooks.example/old", "events": ["flows/created"], **KEY}
    assert v70.post("/service/webhooks", json=body).status_code == 201
    [listed] = client.get("/service/webhooks").json()
    assert listed["status"] == "created" and listed["url"] == body["url"]
    assert client.get(f"/service/webhooks/{listed['id']}").json() == listed
    # 8.2 may edit it; 7.0 sees the change.
    assert put(client, listed, status="created", events=["flows/deleted"]).status_code == 201
    assert v70.get("/service/webhooks").json() == [
        {"url": body["url"], "events": ["flows/deleted"], "api_key_name": "X-Hook-Key"}
    ]


def test_an_8_2_registration_is_listed_under_7_0_without_id_status_or_tags(client, v70) -> None:
    made = create(client, "https://hooks.example/new", tags={"team": "news"}, include_object_timerange=True)
    [listed] = v70.get("/service/webhooks").json()
    assert listed == {"url": made["url"], "events": ["flows/created"], "api_key_name": "X-Hook-Key"}
    # A 7.0 re-POST of the same identity updates that registration and keeps what 7.0 cannot see.
    body = {"url": made["url"], "events": ["sources/created"], **KEY}
    assert v70.post("/service/webhooks", json=body).json() == {k: v for k, v in body.items() if k != "api_key_value"}
    [after] = client.get("/service/webhooks").json()
    assert after["id"] == made["id"] and after["events"] == ["sources/created"]
    assert after["tags"] == {"team": "news"} and after["include_object_timerange"] is True
    # ... and 7.0's empty events remove it.
    assert v70.post("/service/webhooks", json={**body, "events": []}).status_code == 204
    assert client.get("/service/webhooks").json() == []


def test_7_0_registrations_may_not_carry_8_x_fields(v70) -> None:
    body = {"url": "https://hooks.example/", "events": ["flows/created"]}
    for extra in ({"tags": {"a": "b"}}, {"status": "disabled"}, {"include_object_timerange": True}):
        with v70.unchecked():
            assert v70.post("/service/webhooks", json={**body, **extra}).status_code == 400
    assert v70.get("/service/webhooks").json() == []


def test_a_7_0_re_post_re_enables_a_disabled_registration(client, v70) -> None:
    made = create(client, "https://hooks.example/x", status="disabled")
    body = {"url": made["url"], "events": ["flows/created"], **KEY}
    assert v70.post("/service/webhooks", json=body).status_code == 201
    assert client.get(f"/service/webhooks/{made['id']}").json()["status"] == "created"


# --- deliveries ----------------------------------------------------------------------------------


def test_disabled_registrations_get_no_deliveries_and_started_is_shown(client, v70, receiver) -> None:
    active = create(client, receiver.url + "/on")
    off = create(client, receiver.url + "/off", status="disabled")
    put_flow(v70)
    settle(client)
    assert [r["path"] for r in receiver.received] == ["/hook/on"]
    assert client.get(f"/service/webhooks/{active['id']}").json()["status"] == "started"
    assert client.get(f"/service/webhooks/{off['id']}").json()["status"] == "disabled"
    put(client, off, status="created")
    put_flow(v70)
    settle(client)
    assert sorted(r["path"] for r in receiver.received) == ["/hook/off", "/hook/on", "/hook/on"]


def test_a_persistently_failing_8_2_registration_goes_to_error(client, v70) -> None:
    client.app.webhooks.policy = type(client.app.webhooks.policy)(attempts=2, backoff_s=0.01, allow_private=True)
    dead = "http://127.0.0.1:9/nobody"  # the discard port: refused
    create(client, dead)
    assert v70.post("/service/webhooks", json={"url": dead + "/70", "events": ["flows/created"]}).status_code == 201
    put_flow(v70)
    settle(client)
    by_url = {w["url"]: w for w in client.get("/service/webhooks").json()}
    assert by_url[dead]["status"] == "error"
    assert by_url[dead]["error"]["type"] and by_url[dead]["error"]["summary"]
    # 7.0 has no statuses: its registration keeps getting (and failing) deliveries.
    assert by_url[dead + "/70"]["status"] != "error"
    dropped = client.app.webhooks.dropped
    put_flow(v70)
    settle(client)
    assert client.app.webhooks.dropped == dropped + 1  # only the 7.0 registration was tried
    assert put(client, by_url[dead], status="created").json()["status"] == "created"


def test_payloads_are_rendered_by_the_registrations_version(client, v70, receiver, monkeypatch) -> None:
    def seventy(self: Dialect70, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "rendered_for": self.version}

    monkeypatch.setattr(Dialect70, "event_payload", seventy)
    create(client, receiver.url + "/82")
    assert v70.post("/service/webhooks", json={"url": receiver.url + "/70", "events": ["flows/created"]}).status_code
    flow = put_flow(v70)
    settle(client)
    by_path = {r["path"]: r["body"]["event"] for r in receiver.received}
    assert by_path["/hook/70"] == {"flow": by_path["/hook/82"]["flow"], "rendered_for": "7.0"}
    assert by_path["/hook/82"]["flow"]["id"] == flow["id"]


def test_include_object_timerange_is_kept(client) -> None:
    made = create(client, include_object_timerange=True)
    assert made["include_object_timerange"] is True
    assert client.get(f"/service/webhooks/{made['id']}").json()["include_object_timerange"] is True
