"""7.0 registration by identity is one atomic backend operation (concurrent POSTs of one identity
leave one registration), and every event body the server sends validates against the official
schema of the version its registration was made under."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import TamsClient

from backends import events

pytestmark = pytest.mark.versions("8.2")

KEY = {"api_key_name": "X-Hook-Key", "api_key_value": "s3cret"}
THREADS = 8
ROUNDS = 4


@pytest.fixture
def v70(client: TamsClient) -> Iterator[TamsClient]:
    """A 7.0 client of the same app (and store) as ``client``."""
    with TamsClient(client.app, "7.0") as c:
        yield c


def _hammer(work: Any) -> list[BaseException]:
    """Run ``work(i)`` in THREADS threads released together; the exceptions they raised."""
    barrier = threading.Barrier(THREADS)
    failures: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:  # reported by the test
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return failures


# --- atomic registration by identity ---------------------------------------------------------------


def test_concurrent_7_0_posts_of_one_identity_make_one_registration(client, v70) -> None:
    url = "https://hooks.example/same"
    statuses: list[int] = []

    def post(i: int) -> None:
        with TamsClient(client.app, "7.0") as mine:
            for r in range(ROUNDS):
                kind = events.EVENT_TYPES[(i + r) % len(events.EVENT_TYPES)]
                statuses.append(mine.post("/service/webhooks", json={"url": url, "events": [kind], **KEY}).status_code)

    assert _hammer(post) == []
    assert statuses == [201] * THREADS * ROUNDS
    assert len(v70.get("/service/webhooks").json()) == 1
    [only] = client.get("/service/webhooks").json()
    assert only["url"] == url and only["status"] == "created"


def test_concurrent_upserts_in_the_backend_leave_one_registration(client) -> None:
    store = client.app.backend
    request = events.registration_request({"url": "https://hooks.example/b", "events": ["flows/created"], **KEY}, "7.0")

    def upsert(i: int) -> None:
        for _ in range(ROUNDS):
            assert store.upsert_webhook_by_identity(request)["url"] == request["url"]

    assert _hammer(upsert) == []
    assert len(store.all_webhooks()) == 1
    # Removing (no events) while others re-register: one registration at most, never two.
    assert (
        _hammer(lambda i: store.upsert_webhook_by_identity({**request, "events": [] if i % 2 else ["flows/deleted"]}))
        == []
    )
    assert len(store.all_webhooks()) <= 1


def test_a_7_0_update_keeps_the_8_x_fields_and_the_id(client, v70) -> None:
    made = client.post(
        "/service/webhooks",
        json={"url": "https://hooks.example/t", "events": ["flows/created"], "tags": {"a": "b"}, **KEY},
    ).json()
    body = {"url": made["url"], "events": ["sources/created"], **KEY}
    assert v70.post("/service/webhooks", json=body).status_code == 201
    [shown] = client.get("/service/webhooks").json()
    assert (shown["id"], shown["tags"], shown["events"]) == (made["id"], {"a": "b"}, ["sources/created"])
    assert v70.post("/service/webhooks", json={**body, "events": []}).status_code == 204
    assert client.get("/service/webhooks").json() == []


def test_a_7_0_post_with_a_different_key_is_another_registration(client, v70) -> None:
    body = {"url": "https://hooks.example/k", "events": ["flows/created"], **KEY}
    assert v70.post("/service/webhooks", json=body).status_code == 201
    assert v70.post("/service/webhooks", json={**body, "api_key_value": "other"}).status_code == 201
    assert len(v70.get("/service/webhooks").json()) == 2
