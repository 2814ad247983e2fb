"""Every operation of the spec, called once with a valid request on a freshly built app."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_client, match_template, new_id, operations

WEBHOOKS = "/service/webhooks"


@pytest.mark.parametrize(("version", "count"), [("7.0", 74), ("8.2", 85)])
def test_the_reference_spec_has_every_operation(version, count):
    assert len(operations(version)) == count
    assert len({(op.method, op.template) for op in operations(version)}) == count


@pytest.mark.versions("7.0", "8.2")
def test_every_operation_answers_a_documented_success(spec_path: Path, api_version: str):
    client = make_client(spec_path, api_version)
    flow_id, source_id, member_id, multi_id = new_id(), new_id(), new_id(), new_id()
    video = {
        "id": flow_id,
        "source_id": source_id,
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "container": "video/mp2t",
        "essence_parameters": {"frame_width": 1280, "frame_height": 720, "frame_rate": {"numerator": 50}},
    }
    # A mono flow read through the multi flow's segments has no container of its own.
    member = {k: v for k, v in video.items() if k != "container"} | {"id": member_id, "source_id": new_id()}
    multi = {"id": multi_id, "source_id": new_id(), "format": "urn:x-nmos:format:multi", "container": "video/mp2t"}
    flow = f"/flows/{flow_id}"
    source = f"/sources/{source_id}"

    calls = [
        ("HEAD", "/", None),
        ("GET", "/", None),
        ("HEAD", "/service", None),
        ("GET", "/service", None),
        ("POST", "/service", {"name": "coverage"}),
        ("HEAD", "/service/storage-backends", None),
        ("GET", "/service/storage-backends", None),
        ("PUT", flow, video),
        ("PUT", flow, video),
        ("PUT", f"/flows/{member_id}", member),
        ("PUT", f"/flows/{multi_id}", multi),
        ("HEAD", "/sources", None),
        ("GET", "/sources", None),
        ("HEAD", source, None),
        ("GET", source, None),
        ("PUT", f"{source}/tags/genre", "news"),
        ("HEAD", f"{source}/tags", None),
        ("GET", f"{source}/tags", None),
        ("HEAD", f"{source}/tags/genre", None),
        ("GET", f"{source}/tags/genre", None),
        ("DELETE", f"{source}/tags/genre", None),
        ("PUT", f"{source}/description", "A source"),
        ("HEAD", f"{source}/description", None),
        ("GET", f"{source}/description", None),
        ("DELETE", f"{source}/description", None),
        ("PUT", f"{source}/label", "Source label"),
        ("HEAD", f"{source}/label", None),
        ("GET", f"{source}/label", None),
        ("DELETE", f"{source}/label", None),
        ("HEAD", "/flows", None),
        ("GET", "/flows", None),
        ("HEAD", flow, None),
        ("GET", flow, None),
        ("PUT", f"{flow}/tags/genre", "news"),
        ("HEAD", f"{flow}/tags", None),
        ("GET", f"{flow}/tags", None),
        ("HEAD", f"{flow}/tags/genre", None),
        ("GET", f"{flow}/tags/genre", None),
        ("DELETE", f"{flow}/tags/genre", None),
        ("PUT", f"{flow}/description", "A flow"),
        ("HEAD", f"{flow}/description", None),
        ("GET", f"{flow}/description", None),
        ("DELETE", f"{flow}/description", None),
        ("PUT", f"{flow}/label", "Flow label"),
        ("HEAD", f"{flow}/label", None),
        ("GET", f"{flow}/label", None),
        ("DELETE", f"{flow}/label", None),
        ("PUT", f"{flow}/read_only", False),
        ("HEAD", f"{flow}/read_only", None),
        ("GET", f"{flow}/read_only", None),
        ("PUT", f"/flows/{multi_id}/flow_collection", [{"id": member_id, "role": "video"}]),
        ("HEAD", f"/flows/{multi_id}/flow_collection", None),
        ("GET", f"/flows/{multi_id}/flow_collection", None),
        ("DELETE", f"/flows/{multi_id}/flow_collection", None),
        ("PUT", f"{flow}/max_bit_rate", 8000),
        ("HEAD", f"{flow}/max_bit_rate", None),
        ("GET", f"{flow}/max_bit_rate", None),
        ("DELETE", f"{flow}/max_bit_rate", None),
        ("PUT", f"{flow}/avg_bit_rate", 5000),
        ("HEAD", f"{flow}/avg_bit_rate", None),
        ("GET", f"{flow}/avg_bit_rate", None),
        ("DELETE", f"{flow}/avg_bit_rate", None),
        ("POST", f"{flow}/storage", {"limit": 1}),
    ]
    responses = [(method, path, call(client, method, path, body)) for method, path, body in calls]
    object_id = responses[-1][2].json()["media_objects"][0]["object_id"]
    later = [
        ("POST", f"{flow}/segments", {"object_id": object_id, "timerange": "[0:0_10:0)"}),
        ("HEAD", f"{flow}/segments", None),
        ("GET", f"{flow}/segments", None),
        ("HEAD", f"/objects/{object_id}", None),
        ("GET", f"/objects/{object_id}", None),
        *(since_8_objects(object_id) if api_version != "7.0" else []),
        ("DELETE", f"{flow}/segments", None),
        ("HEAD", "/flow-delete-requests", None),
        ("GET", "/flow-delete-requests", None),
        ("DELETE", flow, None),
        ("HEAD", WEBHOOKS, None),
        ("GET", WEBHOOKS, None),
        ("POST", WEBHOOKS, {"url": "http://127.0.0.1:9/", "events": ["flows/created"]}),
    ]
    if api_version == "7.0":  # 7.0 removes a registration by posting it with no events
        later.append(("POST", WEBHOOKS, {"url": "http://127.0.0.1:9/", "events": []}))
    responses += [(method, path, call(client, method, path, body)) for method, path, body in later]
    if api_version != "7.0":
        webhook_id = responses[-1][2].json()["id"]
        since_8 = [*since_8_webhooks(webhook_id), *since_8_profiles(video)]
        responses += [(method, path, call(client, method, path, body)) for method, path, body in since_8]

    # No deletion runs on, so there is no request to find: 404 is the answer the spec documents.
    for method in ("HEAD", "GET"):
        assert client.request(method, f"/flow-delete-requests/{new_id()}").status_code == 404

    documented = {(op.method, op.template): op.success for op in operations(api_version)}
    for method, path, response in responses:
        template = match_template(path.partition("?")[0], api_version)
        assert response.status_code in documented[(method, template)], (method, path, response.text)
    assert client.hits == set(documented)


def since_8_objects(object_id):
    instances = f"/objects/{object_id}/instances"
    return [
        ("POST", instances, {"url": "https://elsewhere.example.com/copy", "label": "elsewhere"}),
        ("DELETE", f"{instances}?label=elsewhere", None),
    ]


def since_8_webhooks(webhook_id):
    one = f"{WEBHOOKS}/{webhook_id}"
    changed = {"id": webhook_id, "url": "http://127.0.0.1:9/", "events": ["flows/updated"], "status": "disabled"}
    return [("HEAD", one, None), ("GET", one, None), ("PUT", one, changed), ("DELETE", one, None)]


def since_8_profiles(flow):
    profile_id = new_id()
    technical = {k: v for k, v in flow.items() if k not in ("id", "source_id")}
    return [
        ("POST", f"/service/profiles/{profile_id}", {"id": profile_id, "flow_metadata": technical}),
        ("HEAD", "/service/profiles", None),
        ("GET", "/service/profiles", None),
        ("HEAD", f"/service/profiles/{profile_id}", None),
        ("GET", f"/service/profiles/{profile_id}", None),
    ]


def call(client, method, path, body):
    if body is None:
        return client.request(method, path)
    return client.request(method, path, json=body)
