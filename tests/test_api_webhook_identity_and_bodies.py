"""7.0 registration by identity is one atomic backend operation (concurrent POSTs of one identity
leave one registration), and every event body the server sends validates against the official
schema of the version its registration was made under."""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import OFFICIAL_SPECS, VIDEO, Tams, TamsClient, new_id
from test_webhooks import Receiver

from backends import events
from contract_tests.spec import self_contained

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


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def settle(client: TamsClient) -> None:
    assert client.app.webhooks.wait_idle(10), "deliveries did not finish"


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


# --- event bodies against the official schemas -----------------------------------------------------

TWO_VERSIONS = ("7.0", "8.2")
HOUSE_VIDEO: dict[str, Any] = {
    "format": VIDEO,
    "codec": "video/h264",
    "container": "video/mp2t",
    "essence_parameters": {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 50}},
}


@functools.cache
def event_validators(version: str) -> dict[str, jsonschema.Draft202012Validator]:
    """The official requestBody schema of each event of ``version``'s ``webhooks:`` section."""
    path = OFFICIAL_SPECS[version]
    document = self_contained(yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)), path)
    schemas = {
        name: copy.deepcopy(item["post"]["requestBody"]["content"]["application/json"]["schema"])
        for name, item in document["webhooks"].items()
    }
    if version == "7.0":
        # The 7.0 file's const for flows/segments_deleted repeats segments_added (an erratum 8.0
        # fixed); the server sends the event's real name, which the rest of the schema checks.
        schemas[events.SEGMENTS_DELETED]["properties"]["event_type"]["const"] = events.SEGMENTS_DELETED
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    return {name: jsonschema.Draft202012Validator(s, format_checker=checker) for name, s in schemas.items()}


def event_problems(version: str, body: dict[str, Any]) -> list[str]:
    validator = event_validators(version).get(body.get("event_type", ""))
    if validator is None:
        return [f"no {version} event named {body.get('event_type')!r}"]
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]


def test_the_format_checker_checks_timestamps() -> None:
    if not OFFICIAL_SPECS["8.2"].is_file():
        pytest.skip("official 8.2 spec not found")
    body = {"event_timestamp": "yesterday", "event_type": "sources/deleted", "event": {"source_id": new_id()}}
    assert event_problems("8.2", body)


def _put_object(tams: Tams, flow_id: str, content: bytes, **body: Any) -> str:
    [media] = tams.allocate(flow_id, limit=1, **body)
    put_url = media["put_url"]
    response = tams.client.put(put_url["url"], content=content, headers={"content-type": put_url["content-type"]})
    assert response.status_code in (200, 201, 204), response.text
    return str(media["object_id"])


def test_every_event_body_validates_against_its_registrations_version(client, v70, receiver) -> None:
    for version in TWO_VERSIONS:
        if not OFFICIAL_SPECS[version].is_file():
            pytest.skip(f"official {version} spec not found at {OFFICIAL_SPECS[version]}")
    everything = list(events.EVENT_TYPES)
    by_version = {"8.2": client, "7.0": v70}
    registrations = {
        "/hook/82": ("8.2", {}),
        "/hook/82v": ("8.2", {"include_object_timerange": True, "verbose_storage": True, "presigned": False}),
        "/hook/70": ("7.0", {}),
        "/hook/70v": ("7.0", {"verbose_storage": True}),
        "/hook/82n": ("8.2", {"accept_get_urls": []}),
    }
    for path, (version, extra) in registrations.items():
        body = {"url": receiver.url.removesuffix("/hook") + path, "events": everything, **KEY, **extra}
        assert by_version[version].post("/service/webhooks", json=body).status_code == 201

    new, old = Tams(client), Tams(v70)
    # 8.x-only data, written under 8.2: a profiled flow with a status and list-valued tags, a vfr
    # flow, a multi flow whose collection items have no role.
    profile_id = new_id()
    profile = {"id": profile_id, "flow_metadata": HOUSE_VIDEO}
    assert client.post(f"/service/profiles/{profile_id}", json=profile).status_code == 201
    profiled = {"id": new_id(), "source_id": new_id(), "profile_id": profile_id, "status": "ingesting"}
    profiled["tags"] = {"genre": ["news", "sport"]}
    assert client.put(f"/flows/{profiled['id']}", json=profiled).status_code == 201
    vfr = new.put_flow(essence_parameters={"frame_width": 1280, "frame_height": 720, "vfr": True})
    multi = new.put_flow("multi", flow_collection=[{"id": profiled["id"]}, {"id": vfr["id"]}])
    # ... and 7.0's own: a video flow without frame_rate.
    legacy = old.put_flow(essence_parameters={"frame_width": 640, "frame_height": 360})

    # Updates of both kinds, under both versions.
    assert client.put(f"/flows/{vfr['id']}/tags/crew", json=["a", "b"]).status_code == 204
    assert client.put(f"/sources/{vfr['source_id']}/tags/site", json=["x", "y"]).status_code == 204
    assert v70.put(f"/flows/{legacy['id']}/label", json="old").status_code == 204
    assert v70.put(f"/sources/{multi['source_id']}/label", json="package").status_code == 204

    # Segments: an init object and an object_timerange (8.2), unlabelled URLs posted under 7.0.
    init_id = _put_object(new, vfr["id"], b"init", content_type="video/mp4")
    media_id = _put_object(new, vfr["id"], b"media")
    new.post_segment(vfr["id"], "[0:0_10:0)", object_id=media_id, init_object_id=init_id, object_timerange="[0:0_10:0)")
    old.post_segment(legacy["id"], "[0:0_5:0)", get_urls=[{"url": "https://cdn.example/unlabelled"}])
    new.post_segment(profiled["id"], "[5:0_6:0)", get_urls=[{"url": "https://cdn.example/l", "label": "cdn"}])

    # What a GET of the segments with uncontrolled URLs shows under each version (events must agree).
    listed = {version: Tams(c).segments(legacy["id"]) for version, c in by_version.items()}

    # Deletions: segments, flows and (their last flow gone) sources.
    assert client.delete(f"/flows/{vfr['id']}/segments").status_code in (200, 202, 204)
    assert v70.delete(f"/flows/{legacy['id']}/segments").status_code in (200, 202, 204)
    for flow in (multi, legacy, vfr, profiled):
        assert client.delete(f"/flows/{flow['id']}").status_code in (200, 202, 204)
    settle(client)

    delivered: dict[str, set[str]] = {path: set() for path in registrations}
    problems = []
    for record in receiver.received:
        version = registrations[record["path"]][0]
        delivered[record["path"]].add(record["body"]["event_type"])
        problems += [f"{record['path']} {p}" for p in event_problems(version, record["body"])]
    assert problems == []
    for path, kinds in delivered.items():
        assert kinds == set(everything), path

    def segments_to(path: str, flow_id: str | None = None) -> list[dict[str, Any]]:
        shown = [r["body"]["event"] for r in receiver.received if r["path"] == path]
        return [s for e in shown if flow_id in (None, e.get("flow_id")) for s in e.get("segments", [])]

    assert any(s.get("init_object") and s.get("object_timerange") for s in segments_to("/hook/82v"))
    # A URL posted without a label under 7.0 reaches 7.0 registrations as posted, as a 7.0 GET shows it.
    assert segments_to("/hook/70", legacy["id"]) == listed["7.0"]
    assert "label" not in listed["7.0"][0]["get_urls"][0]
    assert segments_to("/hook/82", legacy["id"]) == [
        {k: v for k, v in s.items() if k != "object_timerange"} for s in listed["8.2"]
    ]
    # accept_get_urls=[] means no URLs at all: not for the init object either.
    for segment in segments_to("/hook/82n"):
        assert "get_urls" not in segment and "get_urls" not in segment.get("init_object", {}), segment
