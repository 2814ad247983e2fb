"""A real ``tams-server`` process on a free loopback port, for benchmarks and tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


class DidNotStart(RuntimeError):
    """The server exited or did not answer in time; the message ends with its output."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(
    args: list[str],
    env: dict[str, str],
    ready_s: float = 30.0,
    log: Path | None = None,
    cwd: Path | None = None,
    module: str = "tams_server.cli",
    ready_path: str = "/service",
) -> Iterator[str]:
    """``tams-server ARGS`` (or ``python -m module ARGS``; ``--port`` chosen here) in the environment
    ``env``, its output in ``log`` (else a temporary file); yields its URL once ``ready_path`` answers,
    and stops it at the end."""
    port = free_port()
    with log.open("w+b") if log is not None else tempfile.TemporaryFile() as output:
        command = [sys.executable, "-m", module, "--port", str(port), *args]
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + ready_s
            while True:
                try:
                    httpx.get(url + ready_path, timeout=1)
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        output.seek(0)
                        text = output.read().decode(errors="replace")[-3000:]
                        raise DidNotStart(f"{module} did not start:\n{text}") from None
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)
