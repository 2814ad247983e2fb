"""Webhooks: registration rules, every event type with its filters, delivery to a real HTTP
receiver on loopback, retries, and the SSRF guard."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import (
    ADMIN_HEADERS,
    allocate_objects,
    app_settings,
    backend_settings,
    flow_body,
    fresh_app,
    test_backends,
)
from starlette.testclient import TestClient

from tams_server.app import TamsApp, create_app


class Receiver:
    """An HTTP server on loopback that records the POSTs it gets; it can fail the first few."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.failures_left = 0
        self.attempts = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.attempts += 1
                if outer.failures_left > 0:
                    outer.failures_left -= 1
                    self.send_response(503)
                else:
                    outer.received.append({"body": body, "headers": dict(self.headers), "path": self.path})
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        return [(r["body"]["event_type"], r["body"]["event"]) for r in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_backend" in metafunc.fixturenames:
        metafunc.parametrize("store_backend", test_backends(metafunc.config))


@pytest.fixture
def app(store_backend: str, built_apps: dict[str, TamsApp]) -> TamsApp:
    """An app on each backend under test, with a new empty store (events are raised by the backend's store)."""
    if store_backend not in built_apps:
        built_apps[store_backend] = create_app(app_settings(**backend_settings(store_backend)))
    return fresh_app(built_apps[store_backend])


@pytest.fixture
def client(app: TamsApp) -> TestClient:
    return TestClient(app, headers=ADMIN_HEADERS)


def register(client: TestClient, url: str, events: list[str], **extra: Any) -> None:
    body = {"url": url, "events": events, "api_key_name": "X-Hook-Key", "api_key_value": "s3cret", **extra}
    response = client.post("/service/webhooks", json=body)
    assert response.status_code == 201, response.text
    assert "api_key_value" not in response.json()


def settle(app: TamsApp) -> None:
    assert app.webhooks.wait_idle(10), "deliveries did not finish"


def put_flow(client: TestClient, **fields: Any) -> dict[str, Any]:
    flow = flow_body(**fields)
    assert client.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    return flow


ALL = [
    "flows/created",
    "flows/updated",
    "flows/deleted",
    "flows/segments_added",
    "flows/segments_deleted",
    "sources/created",
    "sources/updated",
    "sources/deleted",
]


def test_every_change_raises_its_event_with_the_key_header(app, client, receiver) -> None:
    register(client, receiver.url, ALL)
    flow = put_flow(client)
    client.put(f"/flows/{flow['id']}/tags/genre", json="news")
    client.put(f"/sources/{flow['source_id']}/label", json="studio")
    [object_id] = allocate_objects(client, flow["id"])
    client.post(f"/flows/{flow['id']}/segments", json={"object_id": object_id, "timerange": "[0:0_1:0)"})
    client.delete(f"/flows/{flow['id']}/segments")
    client.delete(f"/flows/{flow['id']}")
    settle(app)
    assert [kind for kind, _ in receiver.events()] == [
        "sources/created",
        "flows/created",
        "flows/updated",
        "sources/updated",
        "flows/segments_added",
        "flows/segments_deleted",
        "flows/deleted",
        "sources/deleted",
    ]
    events = dict(receiver.events())
    assert events["flows/created"]["flow"]["id"] == flow["id"]
    assert events["flows/updated"]["flow"]["tags"] == {"genre": "news"}
    assert events["sources/updated"]["source"]["label"] == "studio"
    assert events["flows/segments_added"]["segments"][0]["timerange"] == "[0:0_1:0)"
    assert events["flows/segments_deleted"] == {"flow_id": flow["id"], "timerange": "[0:0_1:0)"}
    assert events["flows/deleted"] == {"flow_id": flow["id"]}
    assert events["sources/deleted"] == {"source_id": flow["source_id"]}
    for record in receiver.received:
        assert record["headers"]["X-Hook-Key"] == "s3cret"
        assert set(record["body"]) == {"event_timestamp", "event_type", "event"}


def test_metadata_sub_resources_count_as_updates(app, client, receiver) -> None:
    flow = put_flow(client)
    register(client, receiver.url, ["flows/updated"])
    writes = [
        ("put", "label", "x"),
        ("put", "description", "d"),
        ("put", "read_only", False),
        ("put", "max_bit_rate", 5000),
        ("put", "avg_bit_rate", 4000),
        ("delete", "label", None),
    ]
    for method, name, value in writes:
        url = f"/flows/{flow['id']}/{name}"
        response = client.put(url, json=value) if method == "put" else client.delete(url)
        assert response.status_code == 204
    settle(app)
    assert len(receiver.received) == len(writes)


def test_filters_must_all_match(app, client, receiver) -> None:
    wanted = put_flow(client)
    other = put_flow(client)
    register(client, receiver.url, ["flows/updated"], flow_ids=[wanted["id"]], source_ids=[wanted["source_id"]])
    for flow in (wanted, other):
        client.put(f"/flows/{flow['id']}/label", json="x")
    settle(app)
    assert [e["flow"]["id"] for _, e in receiver.events()] == [wanted["id"]]


def test_collected_by_filters(app, client, receiver) -> None:
    member = put_flow(client, container=None)
    loner = put_flow(client, container=None)
    multi = put_flow(client, kind="multi", flow_collection=[{"id": member["id"], "role": "video"}])
    register(client, receiver.url, ["flows/updated"], flow_collected_by_ids=[multi["id"]])
    register(client, receiver.url + "2", ["sources/updated"], source_collected_by_ids=[multi["source_id"]])
    for flow in (member, loner):
        client.put(f"/flows/{flow['id']}/label", json="x")
        client.put(f"/sources/{flow['source_id']}/label", json="x")
    settle(app)
    delivered = {(r["path"], r["body"]["event_type"]): r["body"]["event"] for r in receiver.received}
    assert delivered.keys() == {("/hook", "flows/updated"), ("/hook2", "sources/updated")}
    assert delivered[("/hook", "flows/updated")]["flow"]["id"] == member["id"]
    assert delivered[("/hook2", "sources/updated")]["source"]["id"] == member["source_id"]


def test_segment_events_follow_the_get_urls_transformations(app, client, receiver) -> None:
    flow = put_flow(client)
    [media] = client.post(f"/flows/{flow['id']}/storage", json={"limit": 1}).json()["media_objects"]
    register(client, receiver.url, ["flows/segments_added"], accept_get_urls=[])
    register(client, receiver.url + "2", ["flows/segments_added"], verbose_storage=True, presigned=True)
    segment = {
        "object_id": media["object_id"],
        "timerange": "[0:0_1:0)",
        "get_urls": [{"url": "https://cdn.example/x", "label": "cdn"}],
    }
    assert client.post(f"/flows/{flow['id']}/segments", json=segment).status_code == 201
    settle(app)
    by_path = {r["path"]: r["body"]["event"]["segments"][0] for r in receiver.received}
    assert "get_urls" not in by_path["/hook"]
    [url] = by_path["/hook2"]["get_urls"]
    assert url["presigned"] is True and url["controlled"] is True and url["storage_id"]


def test_registration_is_identified_by_url_and_key_and_empty_events_remove_it(client, receiver) -> None:
    register(client, receiver.url, ["flows/created"])
    register(client, receiver.url, ["flows/deleted"])  # same identity: an update
    listed = client.get("/service/webhooks").json()
    assert [w["events"] for w in listed] == [["flows/deleted"]]
    assert "api_key_value" not in listed[0]
    body = {"url": receiver.url, "events": [], "api_key_name": "X-Hook-Key", "api_key_value": "s3cret"}
    assert client.post("/service/webhooks", json=body).status_code == 204
    assert client.get("/service/webhooks").json() == []


@pytest.mark.parametrize(
    "extra",
    [{"tag_filter": {"a": "b"}}, {"events": ["flows/renamed"]}, {"url": "ftp://example.com/"}],
    ids=["unknown filter", "unknown event", "not http"],
)
def test_unsupported_registrations_are_400(client, receiver, extra) -> None:
    body = {"url": receiver.url, "events": ["flows/created"], **extra}
    response = client.post("/service/webhooks", json=body)
    assert response.status_code == 400
    assert client.get("/service/webhooks").json() == []


def test_a_failing_receiver_is_retried(app, client, receiver) -> None:
    app.webhooks.policy = type(app.webhooks.policy)(backoff_s=0.01, allow_private=True)
    receiver.failures_left = 2
    register(client, receiver.url, ["flows/created"])
    put_flow(client)
    settle(app)
    assert receiver.attempts == 3
    assert [kind for kind, _ in receiver.events()] == ["flows/created"]


def test_a_dead_receiver_is_dropped_with_a_log_line(app, client, caplog) -> None:
    app.webhooks.policy = type(app.webhooks.policy)(attempts=2, backoff_s=0.01, allow_private=True)
    register(client, "http://127.0.0.1:9/nobody", ["flows/created"])  # the discard port: refused
    put_flow(client)
    settle(app)
    assert app.webhooks.dropped == 1
    assert "dropped flows/created event" in caplog.text


def test_private_receivers_are_refused_unless_allowed(receiver) -> None:
    client = TestClient(create_app(app_settings(webhooks_allow_private=False)), headers=ADMIN_HEADERS)
    body = {"url": receiver.url, "events": ["flows/created"]}
    response = client.post("/service/webhooks", json=body)
    assert response.status_code == 400
    assert "non-public" in response.json()["summary"]


def test_deliveries_keep_their_order(app, client, receiver) -> None:
    register(client, receiver.url, ["flows/segments_added"])
    flow = put_flow(client)
    for second, object_id in enumerate(allocate_objects(client, flow["id"], 20)):
        segment = {"object_id": object_id, "timerange": f"[{second}:0_{second + 1}:0)"}
        client.post(f"/flows/{flow['id']}/segments", json=segment)
    settle(app)
    starts = [e["segments"][0]["timerange"] for _, e in receiver.events()]
    assert starts == [f"[{s}:0_{s + 1}:0)" for s in range(20)]


def test_segment_events_show_minted_labels_to_8x_registrations_only(app, client, receiver) -> None:
    """A 7.0 client's unlabelled uncontrolled URL gets a minted label (backends.media_objects):
    registrations made under 8.2 see it, those made under 7.0 see the URL as it was posted."""
    flow = put_flow(client)
    old, new = receiver.url.replace("/hook", "/old"), receiver.url.replace("/hook", "/new")
    body = {"events": ["flows/segments_added"], "api_key_name": "X-Hook-Key", "api_key_value": "s3cret"}
    assert client.post("/v7.0/service/webhooks", json={**body, "url": old, "verbose_storage": True}).status_code == 201
    assert client.post("/v8.2/service/webhooks", json={**body, "url": new, "verbose_storage": True}).status_code == 201
    only = {**body, "url": old + "-cdn", "accept_get_urls": ["external-1", "cdn"]}
    assert client.post("/v7.0/service/webhooks", json=only).status_code == 201
    posted = [{"url": "https://mirror.example/x"}, {"url": "https://cdn.example/x", "label": "cdn"}]
    segment = {"object_id": "ext", "timerange": "[0:0_1:0)", "get_urls": posted}
    assert client.post(f"/v7.0/flows/{flow['id']}/segments", json=segment).status_code == 201
    settle(app)
    by_path = {r["path"]: r["body"]["event"]["segments"][0]["get_urls"] for r in receiver.received}
    assert by_path["/old"] == [
        {"url": "https://mirror.example/x", "presigned": False, "controlled": False},
        {"url": "https://cdn.example/x", "presigned": False, "controlled": False, "label": "cdn"},
    ]
    assert [(u["url"], u["label"]) for u in by_path["/new"]] == [
        ("https://mirror.example/x", "external-1"),
        ("https://cdn.example/x", "cdn"),
    ]
    assert all(set(u) == {"url", "presigned", "controlled", "label"} for u in by_path["/new"])
    assert by_path["/old-cdn"] == [{"url": "https://cdn.example/x", "presigned": False, "label": "cdn"}]


def test_segment_events_give_plain_urls_to_registrations_that_ask(app, client, receiver) -> None:
    """``presigned: false`` on a registration is the ``presigned=false`` query: the store's plain URL."""
    flow = put_flow(client)
    [media] = client.post(f"/flows/{flow['id']}/storage", json={"limit": 1}).json()["media_objects"]
    register(client, receiver.url, ["flows/segments_added"], presigned=False)
    register(client, receiver.url + "2", ["flows/segments_added"], verbose_storage=True)
    segment = {"object_id": media["object_id"], "timerange": "[0:0_1:0)"}
    assert client.post(f"/flows/{flow['id']}/segments", json=segment).status_code == 201
    settle(app)
    by_path = {r["path"]: r["body"]["event"]["segments"][0]["get_urls"] for r in receiver.received}
    [plain] = client.get(f"/flows/{flow['id']}/segments", params={"presigned": "false"}).json()[0]["get_urls"]
    assert plain["presigned"] is False
    assert by_path["/hook"] == [plain]
    [default] = by_path["/hook2"]
    assert default["presigned"] is True and default["url"] != plain["url"]
    assert "plain_url" not in default and default["controlled"] is True
