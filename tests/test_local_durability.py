"""Durability of the ``local`` backend: SIGKILL a real server in the middle of a concurrent ingest,
start it again on the same data directory, and check that every acknowledged write is there and
that no half-done write is visible."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import conftest
import httpx
import pytest
from conftest import ADMIN_HEADERS, ADMIN_TOKEN

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

WRITERS = 4
SEGMENTS_PER_POST = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tams_server.cli", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "TAMS_ADMIN_TOKEN": ADMIN_TOKEN, "TAMS_BACKEND": "local"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/service", timeout=1)
            return process, url
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"tams-server did not start:\n{output}")
            time.sleep(0.1)


def flow_body(flow_id: str) -> dict[str, Any]:
    return conftest.flow_body("data", flow_id=flow_id)


class Ingest:
    """Writers that record what they sent and what the server acknowledged."""

    def __init__(self, url: str, shared_flow: str) -> None:
        self.url = url
        self.shared_flow = shared_flow
        self.lock = threading.Lock()
        self.flows_acked: list[str] = [shared_flow]
        self.posts_sent: list[tuple[str, list[dict[str, Any]]]] = []
        self.posts_acked: list[tuple[str, list[dict[str, Any]]]] = []
        self.uploads_acked: dict[str, bytes] = {}
        self.stop = threading.Event()

    def writer(self, index: int) -> None:
        with httpx.Client(base_url=self.url, headers=ADMIN_HEADERS, timeout=10) as api:
            own_flow = None
            step = 0
            while not self.stop.is_set():
                try:
                    if step % 10 == 0:
                        own_flow = str(uuid.uuid4())
                        if api.put(f"/flows/{own_flow}", json=flow_body(own_flow)).status_code == 201:
                            with self.lock:
                                self.flows_acked.append(own_flow)
                    flow_id = self.shared_flow if step % 2 else own_flow
                    [media] = api.post(f"/flows/{flow_id}/storage", json={"limit": 1}).json()["media_objects"]
                    payload = f"writer {index} step {step} ".encode() * 50
                    if httpx.put(media["put_url"]["url"], content=payload, timeout=10).status_code == 200:
                        with self.lock:
                            self.uploads_acked[media["object_id"]] = payload
                    base = (index * 1_000_000 + step * 10) if flow_id == self.shared_flow else step * 10
                    # The first segment's object is the uploaded one; the others are elsewhere (their get_urls).
                    segments = [
                        {"object_id": media["object_id"], "timerange": f"[{base}:0_{base + 1}:0)"},
                        *(
                            {
                                "object_id": f"ext-{index}-{step}-{i}",
                                "timerange": f"[{base + i}:0_{base + i + 1}:0)",
                                "get_urls": [{"url": f"https://media.example/ext-{index}-{step}-{i}", "label": "ext"}],
                            }
                            for i in range(1, SEGMENTS_PER_POST)
                        ),
                    ]
                    with self.lock:
                        self.posts_sent.append((flow_id, segments))
                    if api.post(f"/flows/{flow_id}/segments", json=segments).status_code == 201:
                        with self.lock:
                            self.posts_acked.append((flow_id, segments))
                except (httpx.TransportError, ValueError, KeyError):
                    if self.stop.is_set():
                        return
                    time.sleep(0.01)
                step += 1


def test_acknowledged_writes_survive_a_sigkill_mid_ingest(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    process, url = start_server(data_dir)
    try:
        shared = str(uuid.uuid4())
        assert httpx.put(f"{url}/flows/{shared}", json=flow_body(shared), headers=ADMIN_HEADERS).status_code == 201
        ingest = Ingest(url, shared)
        threads = [threading.Thread(target=ingest.writer, args=(i,)) for i in range(WRITERS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(ingest.posts_acked) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)  # in the middle of the ingest: requests are in flight
        process.wait(timeout=10)
        ingest.stop.set()
        for t in threads:
            t.join(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert len(ingest.posts_acked) >= 40, "the ingest did not get going before the kill"

    process, url = start_server(data_dir)
    try:
        with httpx.Client(base_url=url, headers=ADMIN_HEADERS, timeout=30) as api:
            for flow_id in ingest.flows_acked:
                assert api.get(f"/flows/{flow_id}").status_code == 200, f"acknowledged flow {flow_id} is lost"
            stored: dict[str, dict[str, dict[str, Any]]] = {}
            for flow_id in {f for f, _ in ingest.posts_sent}:
                listing = api.get(f"/flows/{flow_id}/segments", params={"limit": 1000})
                stored[flow_id] = {s["timerange"]: s for s in listing.json()} if listing.status_code == 200 else {}
            for flow_id, segments in ingest.posts_acked:
                for segment in segments:
                    assert segment["timerange"] in stored[flow_id], f"acknowledged segment {segment} is lost"
            sent = {(f, s["timerange"]) for f, segments in ingest.posts_sent for s in segments}
            for flow_id, by_range in stored.items():
                assert {(flow_id, t) for t in by_range} <= sent, "a segment nobody sent"
            for flow_id, segments in ingest.posts_sent:
                present = [s["timerange"] in stored[flow_id] for s in segments]
                assert all(present) or not any(present), f"a bulk POST is half stored: {segments} -> {present}"
            checked = 0
            for flow_id, segments in ingest.posts_acked:
                listed = stored[flow_id][segments[0]["timerange"]]
                object_id = segments[0]["object_id"]
                if object_id in ingest.uploads_acked:
                    got = httpx.get(listed["get_urls"][0]["url"], timeout=10)
                    assert got.status_code == 200 and got.content == ingest.uploads_acked[object_id]
                    checked += 1
            assert checked > 0
            registered = {s["object_id"] for _, segments in ingest.posts_acked for s in segments}
            for object_id in set(ingest.uploads_acked) & registered:  # allocated only: 404 (8.x MUST)
                assert api.get(f"/objects/{object_id}").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
