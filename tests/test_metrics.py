"""Prometheus metrics: the exact counts a known sequence of requests leaves, on memory and local,
the store's transaction and lock counters, webhook deliveries and queues, authentication
failures, and an exposition that parses and carries no path or id as a label value.

Metrics are process-wide (many apps are made in one test process), so every test reads the
counters before and after and checks the difference.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import ADMIN_HEADERS, AppClient, app_settings, backend_settings, flow_body, fresh_app, new_id
from prometheus_client.parser import text_string_to_metric_families

from backends import deletion, events, local
from backends.base import BackendServices, Json, StorePolicy
from backends.tabular.core import RETRIES
from backends.tabular.engine import Conflict, EngineUnavailable
from backends.tabular.locks import LockManager, LockTimeout
from backends.tabular.table_locks import LOCKS, TableLockManager
from backends.tabular.vast_double import VastDouble
from backends.tabular.vast_engine import VastEngine
from backends.timerange import TimeRange
from tams_server import metrics
from tams_server.app import TamsApp, create_app
from tams_server.auth import Authenticator, AuthError, CredentialStore
from tams_server.media import HmacUrlSigner
from tams_server.webhooks import DeliveryPolicy, WebhookDispatcher

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape() -> Samples:
    """Every sample of the exposition, by (name, sorted labels). Read with two regular expressions:
    prometheus_client's parser takes ~0.2 s for the thousands of samples a test session's requests
    leave, and the tests scrape often (``test_exposition_parses`` runs that parser)."""
    body, _ = metrics.exposition()
    found: Samples = {}
    for line in body.decode().splitlines():
        if line.startswith("#") or not line:
            continue
        sample = _SAMPLE.fullmatch(line)
        assert sample is not None, line
        name, labels, number = sample.groups()
        pairs = [(k, _unescaped(v)) for k, v in _LABEL.findall(labels or "")]
        found[(name, tuple(sorted(pairs)))] = float(number)
    return found


def _unescaped(label_value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), label_value)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class Deltas:
    """The counters now, against a scrape taken when it was made."""

    def __init__(self) -> None:
        self.before = scrape()

    def __call__(self, name: str, **labels: str) -> float:
        return value(scrape(), name, **labels) - value(self.before, name, **labels)


# --------------------------------------------------------------------------- a webhook receiver


class Receiver:
    """A loopback HTTP server answering 200 to each POST; ``gate`` (when set) holds each answer
    until it is opened."""

    def __init__(self, gated: bool = False) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.arrived = threading.Semaphore(0)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.arrived.release()
                outer.gate.wait(10)
                outer.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# --------------------------------------------------------------------------- the known sequence

THRESHOLD = 2  # deletes of more segments answer 202 with a deletion request
SEGMENTS = 4
CONTENT = b"\x47" * 1880  # ten MPEG-TS packets


@pytest.fixture
def app(backend_name: str, built_apps: dict[str, TamsApp]) -> TamsApp:
    name = backend_name
    if name not in built_apps:
        # Local serves the newest version only: an app with fewer versions is quicker to build.
        served = {"versions": ["8.2"], "default_version": "8.2"} if name == "local" else {}
        settings = app_settings(**backend_settings(name), async_delete_threshold=THRESHOLD, delete_chunk=2, **served)
        built_apps[name] = create_app(settings)
    return fresh_app(built_apps[name])


def wait_for(condition: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.01)


class Sequence:
    """The requests every end-to-end test makes, and the ids they made (none may be a label value)."""

    def __init__(self, app: TamsApp, version: str, receiver: Receiver) -> None:
        self.app = app
        self.client = AppClient(app, base_url=f"http://testserver/v{version}", headers=ADMIN_HEADERS)
        self.ids: set[str] = set()
        client = self.client
        hook = {"url": receiver.url, "events": [events.SEGMENTS_ADDED], "api_key_name": "X-Key", "api_key_value": "k"}
        response = client.post("/service/webhooks", json=hook)
        assert response.status_code == 201, response.text
        if "id" in response.json():  # 8.x: registrations have ids
            self.ids.add(response.json()["id"])
        flow = flow_body()
        self.flow_id = flow["id"]
        self.ids |= {flow["id"], flow["source_id"]}
        assert client.put(f"/flows/{flow['id']}", json=flow).status_code == 201
        response = client.post(f"/flows/{flow['id']}/storage", json={"limit": SEGMENTS})
        assert response.status_code == 201, response.text
        objects = response.json()["media_objects"]
        self.ids |= {o["object_id"] for o in objects}
        put_url = objects[0]["put_url"]
        response = client.put(put_url["url"], content=CONTENT, headers={"content-type": put_url["content-type"]})
        assert response.status_code == 200, response.text
        segments = [{"object_id": o["object_id"], "timerange": f"[{i}:0_{i + 1}:0)"} for i, o in enumerate(objects)]
        overlapping = {"object_id": objects[0]["object_id"], "timerange": "[0:0_1:0)"}
        response = client.post(f"/flows/{flow['id']}/segments", json=[*segments, overlapping])
        assert response.status_code == 200, response.text  # the overlapping one is listed as failed
        assert len(response.json()["failed_segments"]) == 1
        listed = client.get(f"/flows/{flow['id']}/segments", params={"timerange": "[0:0_1:0)"}).json()
        self.get_url = listed[0]["get_urls"][0]["url"]
        assert client.get(self.get_url).content == CONTENT
        assert app.webhooks.wait_idle(10)
        wait_for(lambda: len(receiver.bodies) == 1, "the webhook delivery")

    def refused(self) -> None:
        """Five refusals: a bad token, no credentials, a wrong password, a tampered media signature,
        and a token without the scope (a scraper's, ``metrics`` only)."""
        client = self.client
        assert self.app.auth is not None
        scraper = self.app.auth.store.add_token(f"prometheus-{new_id()}", ["metrics"])
        assert client.get("/flows", headers={"Authorization": f"Bearer {scraper}"}).status_code == 403
        assert client.get("/flows", headers={"Authorization": "Bearer tams_nope"}).status_code == 401
        assert client.get("/flows", headers={"Authorization": ""}).status_code == 401
        basic = "Basic " + base64.b64encode(b"admin:wrong").decode()
        assert client.get("/flows", headers={"Authorization": basic}).status_code == 401
        tampered = self.get_url.replace("signature=", "signature=0")
        assert client.get(tampered, headers={"Authorization": ""}).status_code == 403

    def delete(self) -> str:
        response = self.client.delete(f"/flows/{self.flow_id}/segments")
        assert response.status_code == 202, response.text
        request_id = response.json()["id"]
        self.ids.add(request_id)
        wait_for(lambda: self.client.get(f"/flow-delete-requests/{request_id}").json()["status"] == "done", "delete")
        return request_id


# Both versions on memory, the newest on local (each backend's app takes seconds to build).
@pytest.mark.parametrize(("backend_name", "version"), [("memory", "7.0"), ("memory", "8.2"), ("local", "8.2")])
def test_a_known_sequence_leaves_exact_counts(app: TamsApp, version: str, receiver: Receiver) -> None:
    deltas = Deltas()
    run = Sequence(app, version, receiver)
    run.refused()
    run.delete()
    storage = next(s.info.id for s in app.backend._stores.values())  # type: ignore[attr-defined]

    assert deltas("tams_segments_registered_total") == SEGMENTS
    assert deltas("tams_segments_refused_total") == 1
    assert deltas("tams_media_uploads_total", storage=storage) == 1
    assert deltas("tams_media_uploaded_bytes_total", storage=storage) == len(CONTENT)
    assert deltas("tams_media_served_bytes_total", storage=storage) == len(CONTENT)
    assert deltas("tams_webhook_delivered_total") == 1
    assert deltas("tams_webhook_retries_total") == 0
    assert sum(deltas("tams_webhook_dropped_total", reason=r) for r in metrics.DROP_REASONS) == 0
    for reason in ("bad_token", "no_credentials", "bad_password", "bad_media_signature", "missing_scope"):
        assert deltas("tams_auth_failures_total", reason=reason) == 1, reason
    assert deltas("tams_auth_failures_total", reason="throttled") == 0
    assert deltas("tams_deletion_requests_created_total") == 1
    wait_for(lambda: value(scrape(), "tams_deletion_requests_pending") == 0, "the backlog to empty")
    assert deltas("tams_deletion_requests_finished_total", status="done") == 1
    assert deltas("tams_deletion_requests_finished_total", status="error") == 0
    engine_writes = deltas("tams_store_transactions_total", engine="sqlite", kind="write")
    engine_reads = deltas("tams_store_transactions_total", engine="sqlite", kind="read")
    if app.settings.backend == "local":
        assert engine_writes >= 5 and engine_reads >= 1  # webhook, flow, storage, segments, deletion chunks
    else:
        assert engine_writes == engine_reads == 0  # the memory store has no transactions
    assert deltas("tams_store_conflicts_total", engine="sqlite", kind="write") == 0

    no_labels_from(run.ids | {run.flow_id, run.get_url.split("?")[0]})


def no_labels_from(ids: set[str]) -> None:
    """The exposition parses, and no label value is one of ``ids`` or looks like a path."""
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    families = list(text_string_to_metric_families(body.decode()))
    assert any(f.name == "tams_segments_registered" for f in families)
    for family in families:
        for sample in family.samples:
            for label, label_value in sample.labels.items():
                assert label_value not in ids, f"{sample.name}{{{label}={label_value!r}}} is an id"
                assert "/" not in label_value, f"{sample.name}{{{label}={label_value!r}}} looks like a path"


# --------------------------------------------------------------------------- requests


def test_observe_request_counts_latency_and_bytes_by_version_operation_and_status() -> None:
    deltas = Deltas()
    metrics.observe_request("8.2", "GET_flows", 200, 0.0003, 1200)
    metrics.observe_request("8.2", "GET_flows", 200, 0.02, 800)
    metrics.observe_request("8.2", "GET_flows", 404, 0.0001, 90)
    metrics.observe_request("8.2", "GET_flows", 404, 12.0, 90)  # beyond the last bound: +Inf only
    labels = {"version": "8.2", "operation": "GET_flows", "status": "200"}
    assert deltas("tams_http_request_duration_seconds_count", **labels) == 2
    assert deltas("tams_http_request_duration_seconds_bucket", **labels, le="0.0005") == 1
    assert deltas("tams_http_request_duration_seconds_bucket", **labels, le="0.025") == 2
    assert deltas("tams_http_request_duration_seconds_sum", **labels) == pytest.approx(0.0203)
    assert deltas("tams_http_response_bytes_total", **labels) == 2000
    not_found = {**labels, "status": "404"}
    assert deltas("tams_http_request_duration_seconds_count", **not_found) == 2
    assert deltas("tams_http_request_duration_seconds_bucket", **not_found, le="0.0001") == 1  # "le": inclusive
    assert deltas("tams_http_request_duration_seconds_bucket", **not_found, le="10.0") == 1
    assert deltas("tams_http_request_duration_seconds_bucket", **not_found, le="+Inf") == 2


def test_the_request_families_are_written_so_any_label_value_parses_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_series", {})
    monkeypatch.setattr(metrics, "_request_series", {})
    odd = 'a "quoted"\\back\nslash'
    metrics.observe_request("8.2", odd, 200, 0.5, 7)
    found = {(s.name, s.labels.get("le")): s for f in text_string_to_metric_families(scrape_text()) for s in f.samples}
    count = found[("tams_http_request_duration_seconds_count", None)]
    assert count.labels == {"version": "8.2", "operation": odd, "status": "200"} and count.value == 1
    assert found[("tams_http_request_duration_seconds_bucket", "0.25")].value == 0
    assert found[("tams_http_request_duration_seconds_bucket", "0.5")].value == 1
    assert found[("tams_http_request_duration_seconds_sum", None)].value == 0.5
    assert found[("tams_http_response_bytes_total", None)].value == 7


def scrape_text() -> str:
    return metrics.exposition()[0].decode()


def test_request_series_beyond_the_limit_are_counted_as_other(monkeypatch: pytest.MonkeyPatch) -> None:
    """A guard against an unbounded label value reaching observe_request: the series stop growing."""
    monkeypatch.setattr(metrics, "_series", {})
    monkeypatch.setattr(metrics, "_request_series", {})
    monkeypatch.setattr(metrics, "MAX_REQUEST_SERIES", 1)
    deltas = Deltas()
    metrics.observe_request("8.2", "GET_flows", 200, 0.001, 1)
    metrics.observe_request("8.2", f"GET_{new_id()}", 200, 0.001, 1)
    metrics.observe_request("8.2", f"GET_{new_id()}", 200, 0.001, 1)
    assert deltas("tams_http_request_duration_seconds_count", version="8.2", operation="GET_flows", status="200") == 1
    assert deltas("tams_http_request_duration_seconds_count", version="other", operation="other", status="200") == 2


# --------------------------------------------------------------------------- store transactions and locks


def test_store_conflicts_and_retries_are_counted() -> None:
    signer = HmacUrlSigner(b"k" * 32, lambda: "http://testserver")
    backend: Any = local.create({"temporary": True}, BackendServices(signer=signer, events=events.DiscardEvents()))
    engine = backend._engine
    real = engine.transaction
    collisions = [1, 1]  # one for the read, one for the write

    def colliding(write: bool) -> Any:
        if collisions[write]:
            collisions[write] -= 1
            raise Conflict("a concurrent transaction won")
        return real(write=write)

    engine.transaction = colliding
    try:
        deltas = Deltas()
        assert backend._read(lambda tx: "read") == "read"
        assert backend._write(lambda tx, fx: "written") == "written"
        for kind in ("read", "write"):  # (other local stores of this process may count transactions meanwhile)
            assert deltas("tams_store_transactions_total", engine="sqlite", kind=kind) >= 2
            assert deltas("tams_store_conflicts_total", engine="sqlite", kind=kind) == 1
            assert deltas("tams_store_retries_total", engine="sqlite", kind=kind) == 1
            assert deltas("tams_store_busy_total", engine="sqlite", kind=kind) == 0

        collisions[False] = RETRIES  # every attempt collides: the read gives up
        with pytest.raises(EngineUnavailable):
            backend._read(lambda tx: "read")
        assert deltas("tams_store_conflicts_total", engine="sqlite", kind="read") == 1 + RETRIES
        assert deltas("tams_store_busy_total", engine="sqlite", kind="read") == 1
    finally:
        del engine.transaction
        backend.close()


def test_waits_for_in_process_locks_are_counted_and_timed() -> None:
    manager = LockManager()
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with manager.session() as locks:
            locks.flows(["f"])
            held.set()
            release.wait(10)

    deltas = Deltas()
    with manager.session() as free:  # an uncontended lock is no wait
        free.flows(["g"])
    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    threading.Timer(0.05, release.set).start()
    with manager.session() as locks:
        locks.flows(["f"])  # waits for the holder
    thread.join()
    assert deltas("tams_store_lock_waits_total", lock="flow") == 1
    assert deltas("tams_store_lock_wait_seconds_count", lock="flow") == 1
    assert deltas("tams_store_lock_wait_seconds_sum", lock="flow") > 0
    assert deltas("tams_store_lock_timeouts_total", lock="flow") == 0

    manager.wait = 0.05
    release.clear()
    held.clear()
    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    with pytest.raises(LockTimeout), manager.session() as locks:
        locks.flows(["f"])
    release.set()
    thread.join()
    assert deltas("tams_store_lock_waits_total", lock="flow") == 2
    assert deltas("tams_store_lock_timeouts_total", lock="flow") == 1


def test_waits_for_another_server_process_claim_are_counted() -> None:
    engine = VastEngine(VastDouble(buckets=["tams"]).session, "tams", "t")
    manager = TableLockManager(engine, ttl=5, wait=5, renew=False)
    with engine.transaction(write=True) as tx:  # another process's claim, about to expire
        tx.insert(LOCKS.name, LOCKS.rows([{"name": "flow/f", "owner": "other", "expires": time.time() + 1.0}]))
    deltas = Deltas()
    started = time.monotonic()
    with manager.session() as locks:
        locks.flows(["f"])
        with engine.transaction(write=False):  # the names are claimed before the first transaction
            pass
    assert deltas("tams_store_lock_waits_total", lock="claim") == 1
    assert 0 < deltas("tams_store_lock_wait_seconds_sum", lock="claim") <= time.monotonic() - started
    assert deltas("tams_store_lock_timeouts_total", lock="claim") == 0
    manager.close()


class HeldDeletions:
    """A ``DeletionStore`` whose chunks wait for ``gate``; flow "broken" fails; 3 objects reclaimed each time."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.requests: dict[str, Json] = {}

    def load_delete_request(self, request_id: str) -> Json:
        return dict(self.requests[request_id])

    def save_delete_request(self, request: Json) -> None:
        self.requests[request["id"]] = dict(request)

    def delete_chunk(self, request: Json, limit: int) -> TimeRange:
        self.gate.wait(10)
        if request["flow_id"] == "broken":
            raise RuntimeError("the store failed")
        return TimeRange.never()

    def finish_flow_delete(self, request: Json) -> None:
        pass

    def reclaim_objects(self) -> int:
        return 3


def test_the_deletion_backlog_outcomes_and_reclaimed_objects_are_counted() -> None:
    store = HeldDeletions()
    worker = deletion.BackgroundWorker(store, StorePolicy(reclaim_interval_s=0.05))
    deltas = Deltas()
    try:
        for flow_id in ("fine", "broken"):
            request = deletion.new_request(flow_id, TimeRange.eternity(), None, False)
            store.save_delete_request(request)
            worker.submit(request["id"])
        assert value(scrape(), "tams_deletion_requests_pending") == 2  # one running, one queued
        store.gate.set()
        assert worker.idle.wait(10)
        assert value(scrape(), "tams_deletion_requests_pending") == 0
        assert deltas("tams_deletion_requests_finished_total", status="done") == 1
        assert deltas("tams_deletion_requests_finished_total", status="error") == 1
        wait_for(lambda: deltas("tams_objects_reclaimed_total") >= 3, "a reclamation")
    finally:
        worker.close()


# --------------------------------------------------------------------------- webhooks


def test_webhook_queues_drops_and_retries(receiver: Receiver) -> None:
    gated = Receiver(gated=True)
    dead = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    dead_url = f"http://127.0.0.1:{dead.server_address[1]}/hook"
    dead.server_close()  # nothing listens there any more
    hooks = [{"id": new_id(), "url": gated.url, "events": [events.FLOW_CREATED]}]
    fast = {"backoff_s": 0.01, "allow_private": True}
    dispatcher = WebhookDispatcher(DeliveryPolicy(queue_size=1, **fast), lambda: hooks)
    failing = WebhookDispatcher(
        DeliveryPolicy(attempts=3, **fast), lambda: [{"url": dead_url, "events": [events.FLOW_CREATED]}]
    )
    strict = [
        {"url": gated.url, "events": [events.FLOW_CREATED]},
        {"url": "ftp://x.test/", "events": ["flows/created"]},
    ]
    refused = WebhookDispatcher(DeliveryPolicy(backoff_s=0.01), lambda: strict)
    try:
        deltas = Deltas()
        flow = events.flow_event(events.FLOW_CREATED, {"id": new_id(), "source_id": new_id()}, None)
        dispatcher.publish(flow)
        assert gated.arrived.acquire(timeout=10)  # the first is in delivery, held by the receiver
        dispatcher.publish(flow)  # waits in the queue (its limit: 1)
        # The gauges add up every dispatcher of the process (other tests' may still be alive):
        # this one's own depths are exact, the gauges hold at least them.
        wait_for(lambda: dispatcher.queue_depths() == (2, [1]), "a queued event")
        assert value(scrape(), "tams_webhook_longest_queue") >= 1
        dispatcher.publish(flow)  # the queue is full: dropped
        wait_for(lambda: deltas("tams_webhook_dropped_total", reason="queue_full") == 1, "the drop")
        now = scrape()
        assert value(now, "tams_webhook_events_pending") >= 2
        assert value(now, "tams_webhook_queues") >= 1
        gated.gate.set()
        assert dispatcher.wait_idle(10)
        assert deltas("tams_webhook_delivered_total") == 2
        assert dispatcher.queue_depths() == (0, [])

        failing.publish(flow)
        assert failing.wait_idle(10)
        assert deltas("tams_webhook_retries_total") == 2
        assert deltas("tams_webhook_dropped_total", reason="attempts_exhausted") == 1

        refused.publish(flow)  # to a loopback address (not allowed here), and to an ftp URL
        assert refused.wait_idle(10)
        assert deltas("tams_webhook_dropped_total", reason="address_refused") == 1
        assert deltas("tams_webhook_dropped_total", reason="invalid_registration") == 1

        gated.gate.clear()
        dispatcher.publish(flow)
        assert gated.arrived.acquire(timeout=10)
        dispatcher.close()  # one event in delivery when the server stops
        assert deltas("tams_webhook_dropped_total", reason="shutdown") == 1
    finally:
        for d in (dispatcher, failing, refused):
            d.close()
        gated.close()


# --------------------------------------------------------------------------- authentication


def _request(authorization: str) -> dict[str, Any]:
    return {"headers": [(b"authorization", authorization.encode())], "query_string": b"", "client": ("10.0.0.1", 1)}


def test_authentication_failures_are_counted_by_reason() -> None:
    store = CredentialStore(None)
    store.add_password("ann", "a-long-password-0", ["read"])
    token = store.add_token("scraper", ["metrics"])
    auth = Authenticator(store, failure_limit=1)
    deltas = Deltas()

    async def attempt(authorization: str) -> int:
        try:
            await auth.authenticate(_request(authorization))
        except AuthError as exc:
            return exc.status
        return 200

    def basic(text: str) -> str:
        return "Basic " + base64.b64encode(text.encode()).decode()

    assert asyncio.run(attempt("Digest x")) == 401
    assert asyncio.run(attempt("Basic %%%")) == 401
    assert asyncio.run(attempt(basic("ann:wrong"))) == 401
    assert asyncio.run(attempt(basic("ann:wrong"))) == 429  # one failure is the limit here
    assert asyncio.run(attempt(f"Bearer {token}")) == 200
    principal = store.check_token(token)
    assert principal is not None
    with pytest.raises(AuthError):
        auth.authorise(principal, "GET", "/flows")
    auth.authorise_any(principal, frozenset({"metrics", "admin"}))
    with pytest.raises(AuthError):
        auth.authorise_any(principal, frozenset({"admin"}))
    assert deltas("tams_auth_failures_total", reason="malformed") == 2
    assert deltas("tams_auth_failures_total", reason="bad_password") == 1
    assert deltas("tams_auth_failures_total", reason="throttled") == 1
    assert deltas("tams_auth_failures_total", reason="missing_scope") == 2
    assert deltas("tams_auth_failures_total", reason="bad_token") == 0


@pytest.mark.parametrize("backend_name", ["memory"])
def test_requests_are_counted_by_operation_version_and_status(app: TamsApp, receiver: Receiver) -> None:
    """Through the app's request observation: operationIds for API requests, fixed names beside
    the API (refused before routing: "unmatched"), and a scrape of /metrics with a metrics token."""
    deltas = Deltas()
    run = Sequence(app, "8.2", receiver)
    run.refused()

    def count(operation: str, status: str, version: str = "8.2") -> float:
        labels = {"version": version, "operation": operation, "status": status}
        return deltas("tams_http_request_duration_seconds_count", **labels)

    assert count("POST_webhooks", "201") == 1
    assert count("PUT_flows-flowId", "201") == 1
    assert count("POST_flows-flowId-storage", "201") == 1
    assert count("POST_flows-flowId-segments", "200") == 1
    assert count("GET_flows-flowId-segments", "200") == 1
    assert count("unmatched", "401") == 3  # refused before routing knew the operation
    assert count("unmatched", "403") == 1
    assert count("media", "200", version="") == 2  # the upload and the download
    assert count("media", "403", version="") == 1
    assert deltas("tams_http_response_bytes_total", version="", operation="media", status="200") == len(CONTENT)

    assert app.auth is not None
    scraper = app.auth.store.add_token(f"prometheus-{new_id()}", ["metrics"])
    response = AppClient(app).get("/metrics", headers={"Authorization": f"Bearer {scraper}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    scraped = {f.name for f in text_string_to_metric_families(response.text)}
    assert {"tams_http_request_duration_seconds", "tams_segments_registered", "tams_auth_failures"} <= scraped
    assert count("metrics", "200", version="") == 1
    no_labels_from(run.ids)


def test_metrics_off_serves_no_metrics_and_counts_no_requests() -> None:
    app = create_app(app_settings(metrics=False))
    deltas = Deltas()
    client = AppClient(app)
    assert client.get("/flows", headers=ADMIN_HEADERS).status_code == 200
    refused = client.get("/metrics", headers=ADMIN_HEADERS)
    assert refused.status_code == 404  # not a route at all: an API path that does not exist
    assert deltas("tams_http_request_duration_seconds_count", version="7.0", operation="GET_flows", status="200") == 0
