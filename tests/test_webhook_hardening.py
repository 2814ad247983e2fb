"""Webhook hardening (issue 12): what a receiver can make the sender hold (answer size, time), DNS
rebinding past the SSRF guard, malformed URLs and key headers at registration, and registrations
that cannot be delivered failing alone, with a log line.

Receivers are real TCP servers on loopback (``Listener``) that answer as a hostile one would.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import TamsClient, app_settings, fresh_app, new_id
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from backends import events
from tams_server import webhooks
from tams_server.app import TamsApp, create_app
from tams_server.webhooks import DeliveryPolicy, WebhookDispatcher

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
UNAVAILABLE = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
FAST = {"backoff_s": 0.01, "allow_private": True}


class Listener:
    """A TCP server on ``host`` (loopback) in a thread: it reads each request, records it, and lets
    ``answer(connection, request_number)`` write the response. ``sent`` counts the bytes ``send``
    managed to write; ``connections`` the connections accepted."""

    def __init__(
        self,
        answer: Callable[[Listener, socket.socket, int], None] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.answer = answer or (lambda listener, conn, n: conn.sendall(OK))
        self.tls = tls
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.connections = 0
        self.sent = 0
        self.finished = threading.Event()  # the last answer ended (written, or the peer went away)
        self._stop = threading.Event()
        self.sock = socket.create_server((host, port))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(15)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            while True:
                request = _read_request(conn)
                if request is None:
                    return
                self.requests.append(request)
                self.finished.clear()
                try:
                    self.answer(self, conn, len(self.requests))
                finally:
                    self.finished.set()
        except OSError:
            return
        finally:
            conn.close()

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def _read_request(conn: socket.socket) -> tuple[dict[str, str], bytes] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")[1:]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", 0)):
        body += conn.recv(65536)
    return headers, body


@pytest.fixture
def listeners() -> Iterator[list[Listener]]:
    """Listeners a test starts (append them): closed when it ends."""
    started: list[Listener] = []
    yield started
    for listener in started:
        listener.close()


@pytest.fixture
def dispatchers() -> Iterator[list[WebhookDispatcher]]:
    started: list[WebhookDispatcher] = []
    yield started
    for dispatcher in started:
        dispatcher.close()


def dispatcher_for(
    dispatchers: list[WebhookDispatcher], hooks: list[dict[str, Any]], tls: ssl.SSLContext | None = None, **policy: Any
) -> WebhookDispatcher:
    dispatcher = WebhookDispatcher(DeliveryPolicy(**policy), lambda: hooks, **({"tls": tls} if tls else {}))
    dispatchers.append(dispatcher)
    return dispatcher


def hook(url: str, **fields: Any) -> dict[str, Any]:
    return {"id": new_id(), "url": url, "events": [events.FLOW_CREATED], **fields}


def flow_created() -> events.Event:
    return events.flow_event(events.FLOW_CREATED, {"id": new_id(), "source_id": new_id()}, None)


# --- what a receiver can make the sender hold ----------------------------------------------------


def test_a_huge_answer_is_read_no_further_than_the_limit(listeners, dispatchers, caplog) -> None:
    """256 MiB announced and generated as fast as the socket takes it: the sender reads its limit
    (64 KiB) and hangs up, so the receiver can write only what the kernel buffers hold."""
    total = 256 * 2**20

    def huge(listener: Listener, conn: socket.socket, n: int) -> None:
        listener.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        chunk = bytes(65536)
        while listener.sent < total:
            listener.send(conn, chunk)

    receiver = Listener(huge)
    listeners.append(receiver)
    dispatcher = dispatcher_for(dispatchers, [hook(f"http://127.0.0.1:{receiver.port}/hook")], **FAST)
    started = time.monotonic()
    dispatcher.publish(flow_created())
    assert dispatcher.wait_idle(20), "the delivery did not end"
    assert receiver.finished.wait(10), "the receiver was never hung up on"
    elapsed = time.monotonic() - started
    assert dispatcher.dropped == 0, caplog.text  # a 200, whatever followed it
    assert len(receiver.requests) == 1
    assert receiver.sent < 32 * 2**20, f"the receiver wrote {receiver.sent / 2**20:.0f} MiB"
    assert elapsed < 5


def _trickle_status_line(listener: Listener, conn: socket.socket, n: int) -> None:
    for byte in OK:  # a byte at a time: every read gets something, so no read timeout fires
        listener.send(conn, bytes([byte]))
        time.sleep(0.2)


def _trickle_body(listener: Listener, conn: socket.socket, n: int) -> None:
    listener.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n")
    for _ in range(40):
        listener.send(conn, b"x")
        time.sleep(0.2)


@pytest.mark.parametrize("answer", [_trickle_status_line, _trickle_body], ids=["status line", "body"])
def test_a_trickling_receiver_holds_a_delivery_no_longer_than_the_attempt_timeout(
    listeners, dispatchers, caplog, answer
) -> None:
    """Each answer would take ~8 s at a byte per 0.2 s; an attempt ends after ``attempt_timeout_s``."""
    receiver = Listener(answer)
    listeners.append(receiver)
    hooks = [hook(f"http://127.0.0.1:{receiver.port}/hook")]
    dispatcher = dispatcher_for(dispatchers, hooks, attempts=2, attempt_timeout_s=0.8, **FAST)
    started = time.monotonic()
    dispatcher.publish(flow_created())
    assert dispatcher.wait_idle(20)
    elapsed = time.monotonic() - started
    assert elapsed < 2 * 0.8 + 1.2, f"the delivery took {elapsed:.1f} s"
    assert dispatcher.dropped == 1
    assert "no complete answer within 0.8 s after 2 attempt(s)" in caplog.text
    assert len(receiver.requests) == 2


# --- DNS rebinding -------------------------------------------------------------------------------


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """``socket.getaddrinfo`` answering for names the test sets (``answers[name]``: one answer per
    lookup, the last one repeated; an answer is an address or a tuple of them); other names resolve
    as usual. ``lookups`` lists the names asked."""
    answers: dict[str, list[Any]] = {"lookups": []}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in answers or name == "lookups":
            return real(host, port, *args, **kwargs)
        answers["lookups"].append(name)
        queue = answers[name]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        addresses = answer if isinstance(answer, tuple) else (answer,)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, int(port))) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.fixture
def public_127_0_0_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's network has no public address: 127.0.0.2 plays one (for the SSRF guard)."""
    real = ipaddress.IPv4Address.is_global
    monkeypatch.setattr(
        ipaddress.IPv4Address, "is_global", property(lambda a: str(a) == "127.0.0.2" or real.__get__(a))
    )


def test_a_name_that_rebinds_to_loopback_is_never_connected_to(
    listeners, dispatchers, resolver, public_127_0_0_2, caplog
) -> None:
    """rebind.test answers a public address, then loopback. Each attempt connects to the address it
    checked: the first reaches the public receiver (which fails it), the retry is refused; nothing
    ever reaches the loopback one (which holds the same port)."""
    inside = Listener()
    listeners.append(inside)
    public = Listener(lambda listener, conn, n: conn.sendall(UNAVAILABLE), host="127.0.0.2", port=inside.port)
    listeners.append(public)
    resolver["rebind.test"] = ["127.0.0.2", "127.0.0.1"]
    hooks = [hook(f"http://rebind.test:{inside.port}/hook")]
    dispatcher = dispatcher_for(dispatchers, hooks, attempts=3, backoff_s=0.01, allow_private=False)
    dispatcher.publish(flow_created())
    assert dispatcher.wait_idle(10)
    assert inside.connections == 0 and inside.requests == []
    assert len(public.requests) == 1
    assert public.requests[0][0]["host"] == f"rebind.test:{inside.port}"
    assert "reaches a non-public address" in caplog.text
    assert resolver["lookups"] == ["rebind.test", "rebind.test"]  # one lookup per attempt, no other


def test_every_address_of_a_name_is_checked_and_the_next_is_tried_when_one_refuses(
    listeners, dispatchers, resolver, public_127_0_0_2, caplog
) -> None:
    """One public address among private ones does not let a delivery through; when every address
    is allowed, one that refuses the connection (nothing listens on 127.0.0.3) passes to the next."""
    receiver = Listener()
    listeners.append(receiver)
    resolver["mixed.test"] = [("127.0.0.2", "127.0.0.1")]
    resolver["spare.test"] = [("127.0.0.3", "127.0.0.1")]
    mixed, spare = hook(f"http://mixed.test:{receiver.port}/a"), hook(f"http://spare.test:{receiver.port}/b")
    dispatcher_for(dispatchers, [mixed], attempts=1, allow_private=False).publish(flow_created())
    dispatcher_for(dispatchers, [spare], attempts=1, allow_private=True).publish(flow_created())
    assert all(d.wait_idle(10) for d in dispatchers)
    assert [headers["host"] for headers, _ in receiver.requests] == [f"spare.test:{receiver.port}"]
    assert f"webhook {mixed['id']}" in caplog.text and "reaches a non-public address" in caplog.text


def test_idle_clients_beyond_the_limit_are_closed(listeners, dispatchers, monkeypatch) -> None:
    """A client (connection pool) per receiver origin, the least recently used idle ones closed."""
    monkeypatch.setattr(webhooks, "MAX_CLIENTS", 1)
    first, second = Listener(), Listener()
    listeners.extend([first, second])
    hooks = [hook(f"http://127.0.0.1:{first.port}/hook")]
    dispatcher = dispatcher_for(dispatchers, hooks, **FAST)
    dispatcher.publish(flow_created())
    assert dispatcher.wait_idle(10)
    hooks[:] = [hook(f"http://127.0.0.1:{second.port}/hook")]
    dispatcher.publish(flow_created())
    dispatcher.publish(flow_created())
    assert dispatcher.wait_idle(10)
    assert (len(first.requests), len(second.requests)) == (1, 2)
    assert [key[2] for key in dispatcher._clients] == [second.port]
    assert second.connections == 1  # its client kept the connection between the two events


def _certificate(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for ``name``: the receiver's TLS context and a client's trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


def test_https_deliveries_keep_the_name_in_host_sni_and_the_certificate_check(
    listeners, dispatchers, resolver, tmp_path
) -> None:
    """Connecting to the checked address must not change whom the sender talks to: the receiver
    sees its name in SNI and Host, and its certificate (for that name only) is accepted."""
    server_tls, client_tls = _certificate(tmp_path, "hooks.test")
    names: list[str | None] = []
    server_tls.sni_callback = lambda sock, name, ctx: names.append(name)
    receiver = Listener(tls=server_tls)
    listeners.append(receiver)
    resolver["hooks.test"] = ["127.0.0.1"]
    resolver["other.test"] = ["127.0.0.1"]
    hooks = [hook(f"https://hooks.test:{receiver.port}/hook"), hook(f"https://other.test:{receiver.port}/hook")]
    dispatcher = dispatcher_for(dispatchers, hooks, client_tls, attempts=1, **FAST)
    dispatcher.publish(flow_created())
    assert dispatcher.wait_idle(10)
    assert [headers["host"] for headers, _ in receiver.requests] == [f"hooks.test:{receiver.port}"]
    assert sorted(names) == ["hooks.test", "other.test"]
    assert dispatcher.dropped == 1  # other.test: the certificate is not for that name


# --- registration: URLs and key headers ----------------------------------------------------------


@pytest.fixture(scope="module")
def built_app() -> Iterator[TamsApp]:
    app = create_app(app_settings())
    yield app
    app.backend.close()


@pytest.fixture
def app(built_app: TamsApp) -> TamsApp:
    return fresh_app(built_app)


@pytest.fixture(params=["7.0", "8.2"])
def client(app: TamsApp, request: pytest.FixtureRequest) -> Iterator[TamsClient]:
    with TamsClient(app, request.param) as c:
        yield c


BAD_URLS = {
    "port too big": ("http://hooks.example:99999/", "Port out of range"),
    "port not a number": ("http://hooks.example:x/", "Port could not be cast"),
    "unclosed IPv6 literal": ("http://[::1/", "Invalid IPv6 URL"),
    "bad IPv6 literal": ("http://[zz]/", "does not appear to be an IPv4 or IPv6 address"),
    "host over 253": ("http://" + "a" * 60 + ".b" * 100 + ".example/", "longer than 253"),
    "label over 63": ("http://" + "a" * 64 + ".example/", "label longer than 63"),
    "empty label": ("http://hooks..example/", "invalid host name"),
    "control character": ("http://hooks\x00.example/", "control characters"),
}


@pytest.mark.parametrize("allow_private", [True, False], ids=["private allowed", "public only"])
@pytest.mark.parametrize("case", BAD_URLS, ids=list(BAD_URLS))
def test_malformed_webhook_urls_are_400(client, case, allow_private) -> None:
    url, reason = BAD_URLS[case]
    client.app.webhooks.policy = replace(client.app.webhooks.policy, allow_private=allow_private)
    response = client.post("/service/webhooks", json={"url": url, "events": ["flows/created"]})
    assert response.status_code == 400, response.text
    assert reason in response.json()["summary"]
    assert client.get("/service/webhooks").json() == []


BAD_KEYS = {
    "name with CR/LF": ({"api_key_name": "X-Key\r\nX-Evil: 1", "api_key_value": "v"}, "api_key_name"),
    "name with a space": ({"api_key_name": "X Key", "api_key_value": "v"}, "api_key_name"),
    "name with a colon": ({"api_key_name": "X-Key:", "api_key_value": "v"}, "api_key_name"),
    "empty name": ({"api_key_name": "", "api_key_value": "v"}, "api_key_name"),
    "name too long": ({"api_key_name": "X" * 257, "api_key_value": "v"}, "api_key_name"),
    "name the server sets": ({"api_key_name": "Content-Length", "api_key_value": "1"}, "api_key_name"),
    "non-ASCII value": ({"api_key_name": "X-Key", "api_key_value": "s3crét"}, "api_key_value"),
    "value with CR/LF": ({"api_key_name": "X-Key", "api_key_value": "s3cret\r\nX-Evil: 1"}, "api_key_value"),
    "value with NUL": ({"api_key_name": "X-Key", "api_key_value": "s3\x00cret"}, "api_key_value"),
    "value with a leading space": ({"api_key_name": "X-Key", "api_key_value": " s3cret"}, "api_key_value"),
    "value too long": ({"api_key_name": "X-Key", "api_key_value": "v" * 4097}, "api_key_value"),
}


@pytest.mark.parametrize("case", BAD_KEYS, ids=list(BAD_KEYS))
def test_key_headers_that_cannot_be_sent_are_400(client, case) -> None:
    fields, field = BAD_KEYS[case]
    body = {"url": "http://127.0.0.1:9/hook", "events": ["flows/created"], **fields}
    response = client.post("/service/webhooks", json=body)
    assert response.status_code == 400, response.text
    summary = response.json()["summary"]
    assert summary.startswith(field)
    assert "s3c" not in summary  # the value is a secret: never echoed
    assert client.get("/service/webhooks").json() == []


def test_a_put_with_a_bad_key_header_is_400(app) -> None:
    with TamsClient(app, "8.2") as client:
        body = {"url": "http://127.0.0.1:9/hook", "events": ["flows/created"], "api_key_name": "X-Key"}
        created = client.post("/service/webhooks", json={**body, "api_key_value": "good"}).json()
        bad = {**body, "id": created["id"], "status": "created", "api_key_value": "bad\nvalue"}
        response = client.put(f"/service/webhooks/{created['id']}", json=bad)
        assert response.status_code == 400
        assert response.json()["summary"].startswith("api_key_value")


def test_key_headers_that_can_be_sent_are_accepted(client) -> None:
    body = {"url": "https://hooks.example/a", "events": ["flows/created"]}
    fields = {"api_key_name": "X-Api_Key.1~", "api_key_value": "Bearer a\tb c!~"}
    response = client.post("/service/webhooks", json={**body, **fields})
    assert response.status_code == 201, response.text


# --- registrations that cannot be delivered fail alone -------------------------------------------


class Recorder(Listener):
    def events(self) -> list[str]:
        return [json.loads(body)["event_type"] for _, body in self.requests]


def test_a_bad_registration_stored_earlier_fails_alone_with_a_log_line(app, listeners, caplog, monkeypatch) -> None:
    """Registrations stored before the header and URL rules (put straight into the backend) are
    dropped with one log line per event that names the webhook and the reason, never the key's
    value; the good registration gets every event. An 8.x one goes to ``error`` (its later events
    are dropped as such); a 7.0 one, which has no statuses, fails each event the same way."""
    caplog.set_level(logging.WARNING, logger="tams_server.webhooks")
    good = Recorder()
    listeners.append(good)
    url = f"http://127.0.0.1:{good.port}/hook"
    bad_fields = [
        ({"url": url + "-ascii", "api_key_name": "X-Key", "api_key_value": "s3crét"}, "api_key_value must be"),
        ({"url": url + "-crlf", "api_key_name": "X-Key\r\nX-Evil: 1", "api_key_value": "s3cret"}, "api_key_name must"),
        ({"url": "http://127.0.0.1:99999/hook"}, "Port out of range"),
    ]
    with monkeypatch.context() as unchecked:
        unchecked.setattr(events, "check_delivery_fields", lambda webhook: None)
        bad = [
            (app.backend.create_webhook({"events": ["flows/created"], "api_version": version, **fields}), reason)
            for version in ("8.2", "7.0")
            for fields, reason in bad_fields
        ]
    with TamsClient(app, "8.2") as client:
        body = {"url": url, "events": ["flows/created"], "api_key_name": "X-Key", "api_key_value": "good"}
        assert client.post("/service/webhooks", json=body).status_code == 201
        for _ in range(3):
            app.webhooks.publish(flow_created())
        assert app.webhooks.wait_idle(10), "deliveries did not finish"
        assert good.events() == ["flows/created"] * 3
        assert all(headers["x-key"] == "good" for headers, _ in good.requests)
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dropped")]
        for webhook, reason in bad:
            mine = [line for line in lines if webhook["id"] in line]
            assert all(webhook["url"] in line for line in mine)
            failed = [line for line in mine if reason in line]
            if webhook["api_version"] == "7.0":
                assert len(failed) == len(mine) == 3, mine
                continue
            assert len(failed) == 1 and all("the webhook is in error" in line for line in mine if line not in failed)
            shown = client.get(f"/service/webhooks/{webhook['id']}").json()
            assert shown["status"] == "error" and reason in shown["error"]["summary"]
        assert "s3cr" not in caplog.text


def test_an_unexpected_error_in_delivery_is_logged_and_the_loop_goes_on(listeners, dispatchers, caplog) -> None:
    """Anything a delivery raises (here: the store failing to record a status, the rendering of one
    registration's body) drops that event with a log line that never shows the key's value; the
    consumer and the other registrations go on."""
    good = Recorder()
    listeners.append(good)
    url = f"http://127.0.0.1:{good.port}/hook"
    key = {"api_key_name": "X-Key", "api_key_value": "s3cret"}
    broken, unrenderable, fine = hook(url, status="created", **key), hook(url + "-x"), hook(url, **key)

    def set_status(webhook_id: str, status: str, error: Any) -> bool:
        raise RuntimeError(f"the store is down (key {broken['api_key_value']})")

    def render(webhook: dict[str, Any], event: events.Event) -> dict[str, Any]:
        if webhook is unrenderable:
            raise KeyError("no dialect")
        return events.body_for(webhook, event)

    dispatcher = WebhookDispatcher(
        DeliveryPolicy(**FAST), lambda: [broken, unrenderable, fine], render=render, set_status=set_status
    )
    dispatchers.append(dispatcher)
    for _ in range(3):
        dispatcher.publish(flow_created())
    assert dispatcher.wait_idle(10), "a consumer stopped with events left"
    assert len(good.requests) == 3  # fine's: broken's fail before anything is sent
    assert dispatcher.dropped == 6
    assert caplog.text.count(f"webhook {broken['id']} ({url}): RuntimeError at ") == 3
    assert caplog.text.count("the store is down (key <api_key_value>)") == 3
    assert caplog.text.count(f"webhook {unrenderable['id']} ({url}-x): KeyError at ") == 3
    assert "s3cret" not in caplog.text
