"""``python -m tools.bench_hardening``: does an authorised client keep its latency under attack?

Starts a real ``tams-server`` process (memory backend, a bearer token and a basic-auth user) and
measures the latency of an authorised ``GET /service`` (one keep-alive connection, one request at
a time) in three phases, side by side in one run:

* **idle**: nothing else happens;
* **guessing passwords**: ``--attackers`` clients, each with its own address, send basic
  credentials with wrong passwords (for the known user and for unknown ones), ``--in-flight`` at a
  time, pausing as ``Retry-After`` says when throttled (the throttle doing its job);
* **flooding wrong passwords**: the same, never pausing: a request flood, which only a rate limit in
  front of the server (see README, reverse proxy) can absorb;
* **slow connections**: ``--slow`` connections are held open, each trickling a request's headers
  a byte at a time (as they are cut off, new ones replace them).

The target (issue 12) is a p99 within 2x of the idle p99 while clients guess passwords and while
slow connections are open. The machine is shared and
noisy: repeat with ``--rounds`` and compare the ratios. Progress goes to stderr; the table to stdout.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from tools import server_process

TOKEN = "tams_" + secrets.token_urlsafe(32)
PHASES = 4  # per round: idle, guessing, flooding, slow connections
USER, PASSWORD = "editor", secrets.token_urlsafe(24)


@dataclass
class Phase:
    name: str
    p50_ms: float
    p99_ms: float
    attacker_answers: Counter[str]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def server(extra_env: dict[str, str]) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ,
            "TAMS_ADMIN_TOKEN": TOKEN,
            "TAMS_ADMIN_USER": USER,
            "TAMS_ADMIN_PASSWORD": PASSWORD,
            "TAMS_DATA_DIR": data,
            **extra_env,
        }
        with server_process.running(["--backend", "memory", "--log-level", "error"], env) as url:
            yield url


def latencies(url: str, count: int) -> list[float]:
    """Seconds per authorised GET /service, one after another on one connection."""
    out = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        client.get("/service")
        for _ in range(count):
            started = time.perf_counter()
            response = client.get("/service")
            out.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"the authorised request got {response.status_code}: {response.text[:200]}")
    return out


def wrong_passwords(
    url: str, stop: threading.Event, answers: Counter[str], index: int, in_flight: threading.Semaphore, back_off: bool
) -> None:
    """One guessing client with its own address (``X-Forwarded-For``, which the server trusts from
    loopback as from a proxy there): wrong passwords for the known user or an unknown one."""
    user = USER if index % 2 == 0 else f"nobody-{index}"
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{user}:wrong-{index}".encode()).decode(),
        "X-Forwarded-For": f"198.51.100.{index % 250 + 1}",
    }
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        while not stop.is_set():
            try:
                with in_flight:
                    response = client.get("/service")
                answers[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                answers[type(exc).__name__] += 1
                continue
            if back_off and response.status_code == 429:
                stop.wait(min(float(response.headers.get("retry-after", "1")), 5.0))


def slow_connections(url: str, stop: threading.Event, answers: Counter[str], count: int) -> None:
    host, port = url.removeprefix("http://").split(":")
    request = b"GET /service HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 4096
    held: list[tuple[socket.socket, int]] = []
    while not stop.is_set():
        while len(held) < count and not stop.is_set():
            try:
                sock = socket.create_connection((host, int(port)), timeout=2)
                sock.setblocking(False)
                held.append((sock, 0))
            except OSError as exc:
                answers[type(exc).__name__] += 1
                break
        kept = []
        for sock, sent in held:
            try:
                sock.send(request[sent : sent + 1])
                kept.append((sock, sent + 1))
            except BlockingIOError:
                kept.append((sock, sent))
            except OSError:
                answers["closed by the server"] += 1
                sock.close()
        held = kept
        answers["open"] = len(held)
        stop.wait(0.5)
    for sock, _ in held:
        sock.close()


def phase(url: str, name: str, samples: int, attack: Callable[[threading.Event, Counter[str]], list[threading.Thread]]):
    stop = threading.Event()
    answers: Counter[str] = Counter()
    threads = attack(stop, answers)
    for thread in threads:
        thread.start()
    time.sleep(1.0 if threads else 0)  # let the attack build up
    try:
        measured = latencies(url, samples)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    quantiles = statistics.quantiles(measured, n=100)
    return Phase(name, statistics.median(measured) * 1000, quantiles[98] * 1000, answers)


def run(args: argparse.Namespace) -> list[Phase]:
    env = {"TAMS_HEADER_TIMEOUT_S": str(args.header_timeout)}
    results = []
    with server(env) as url:
        for round_ in range(args.rounds):
            progress(f"round {round_ + 1}/{args.rounds}: idle")
            results.append(phase(url, "idle", args.samples, lambda stop, answers: []))
            for back_off in (True, False):
                how = "guessing passwords" if back_off else "flooding wrong passwords, never backing off"
                progress(f"round {round_ + 1}/{args.rounds}: {args.attackers} clients {how}")
                in_flight = threading.Semaphore(args.in_flight)
                results.append(
                    phase(
                        url,
                        f"{args.attackers} clients {how} ({args.in_flight} at a time)",
                        args.samples,
                        lambda stop, answers, back_off=back_off, in_flight=in_flight: [
                            threading.Thread(
                                target=wrong_passwords,
                                args=(url, stop, answers, i, in_flight, back_off),
                                daemon=True,
                            )
                            for i in range(args.attackers)
                        ],
                    )
                )
            progress(f"round {round_ + 1}/{args.rounds}: {args.slow} slow connections")
            results.append(
                phase(
                    url,
                    f"{args.slow} slow connections",
                    args.samples,
                    lambda stop, answers: [
                        threading.Thread(target=slow_connections, args=(url, stop, answers, args.slow), daemon=True)
                    ],
                )
            )
    return results


def table(results: list[Phase]) -> str:
    idle = [r.p99_ms for r in results if r.name == "idle"]
    lines = [
        "| phase | p50 ms | p99 ms | p99 / idle p99 | what the attackers got |",
        "| --- | --- | --- | --- | --- |",
    ]
    for i, r in enumerate(results):
        base = idle[min(i // PHASES, len(idle) - 1)]
        got = ", ".join(f"{k}: {v}" for k, v in sorted(r.attacker_answers.items())) or "-"
        lines.append(f"| {r.name} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.p99_ms / base:.2f} | {got} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_hardening", description=__doc__.split("\n\n")[0])
    parser.add_argument("--attackers", type=int, default=64, help="clients sending wrong passwords (64)")
    parser.add_argument("--in-flight", type=int, default=16, help="wrong-password requests at a time (16)")
    parser.add_argument("--slow", type=int, default=1000, help="slow connections held open (1000)")
    parser.add_argument("--samples", type=int, default=300, help="authorised requests measured per phase (300)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the three phases (1)")
    parser.add_argument("--header-timeout", type=float, default=10.0, help="the server's header_timeout_s (10)")
    args = parser.parse_args(argv)
    print(table(run(args)))


if __name__ == "__main__":
    main()
