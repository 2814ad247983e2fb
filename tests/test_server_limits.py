"""The real ``tams-server`` process holds up against slow clients: connections that never finish
their headers are closed, and while hundreds are open an authorised request is still served."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ADMIN_HEADERS, ADMIN_TOKEN

from tams_server import cli, serving
from tools import server_process

HEADER_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path_factory.mktemp("data") / "store"
    env = {
        **os.environ,
        "TAMS_ADMIN_TOKEN": ADMIN_TOKEN,
        "TAMS_DATA_DIR": str(data_dir),
        "TAMS_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
    }
    with server_process.running(["--log-level", "warning"], env) as url:
        yield url, data_dir


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def _closed_by_server(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        while True:
            if sock.recv(4096) == b"":
                return True
    except TimeoutError:
        return False
    except OSError:
        return True  # reset


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # connects and says nothing
        b"GET /service HTTP/1.1\r\nHost: x\r\n",  # headers never finished
    ],
)
def test_a_request_whose_headers_do_not_arrive_in_time_is_cut_off(server: tuple[str, Path], sent: bytes) -> None:
    url, _ = server
    with _connect(url) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        assert _closed_by_server(sock, HEADER_TIMEOUT_S + 4), "the server kept a silent connection open"
        assert time.monotonic() - started >= HEADER_TIMEOUT_S * 0.5


def test_a_trickled_second_request_on_a_kept_alive_connection_is_cut_off(server: tuple[str, Path]) -> None:
    url, _ = server
    with _connect(url) as sock:
        sock.sendall(f"GET /service HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n".encode())
        assert b"200 OK" in sock.recv(65536)
        started = time.monotonic()
        closed = False
        for char in b"GET /service HTTP/1.1\r\n":  # a byte every 0.3 s keeps uvicorn's idle timer away
            try:
                sock.sendall(bytes([char]))
            except OSError:
                closed = True
                break
            if _closed_by_server(sock, 0.3):
                closed = True
                break
        assert closed, "the server waited for ever for the headers"
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 3


def test_hundreds_of_silent_connections_neither_block_others_nor_stay(server: tuple[str, Path]) -> None:
    url, _ = server
    silent = [_connect(url) for _ in range(300)]
    try:
        started = time.monotonic()
        response = httpx.get(f"{url}/service", headers=ADMIN_HEADERS, timeout=5)
        assert response.status_code == 200
        assert time.monotonic() - started < 1.0
        time.sleep(HEADER_TIMEOUT_S + 0.5)
        assert all(_closed_by_server(sock, 2) for sock in silent[:20])
    finally:
        for sock in silent:
            sock.close()


@pytest.mark.parametrize(
    "garbage", [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", b"\xff" * 64 + b"\r\n\r\n"]
)
def test_bytes_that_are_not_http_get_the_tams_error_body(server: tuple[str, Path], garbage: bytes) -> None:
    url, _ = server
    with _connect(url) as sock:
        sock.sendall(garbage)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"content-type: application/json" in head.lower()
    assert set(json.loads(body)) == {"type", "summary", "time"}


def test_the_process_keeps_its_data_owner_only(server: tuple[str, Path]) -> None:
    _, data_dir = server
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert files, "the local backend created no files"
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode) & 0o077) for p in files} == {p.name: "0o0" for p in files}


@pytest.mark.parametrize(
    ("args", "warned"),
    [
        (["--host", "0.0.0.0"], True),
        (["--host", "0.0.0.0", "--public-url", "https://tams.example"], False),
        (["--host", "127.0.0.1"], False),
    ],
)
def test_listening_beyond_loopback_without_public_url_or_trusted_hosts_warns(
    args: list[str], warned: bool, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(serving, "run", lambda *a, **k: None)
    monkeypatch.setenv("TAMS_ADMIN_TOKEN", ADMIN_TOKEN)
    old = os.umask(0o022)
    try:
        with caplog.at_level(logging.WARNING, "tams_server"):
            cli.main([*args, "--backend", "memory", "--data-dir", str(tmp_path)])
    finally:
        os.umask(old)
    assert any("trusted_hosts" in r.getMessage() for r in caplog.records) is warned


def test_the_open_files_limit_is_raised_for_the_connections() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        wanted = min(hard, soft + 100) if hard != resource.RLIM_INFINITY else soft + 100
        assert serving.allow_open_files(wanted) >= wanted
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_hardening_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """A small run of tools/bench_hardening (the real figures come from its defaults)."""
    from tools import bench_hardening

    bench_hardening.main(["--attackers", "4", "--slow", "20", "--samples", "20", "--header-timeout", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row.split(" | ")[0] for row in rows[1:]] == [
        "| idle",
        "| 4 clients guessing passwords (16 at a time)",
        "| 4 clients flooding wrong passwords, never backing off (16 at a time)",
        "| 20 slow connections",
    ]
    assert "401" in rows[2] or "429" in rows[2]
