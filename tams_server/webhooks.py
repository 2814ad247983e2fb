"""Webhook delivery: events leave the request path at once and are POSTed by a background loop.

Each registration has its own bounded queue and consumer, so deliveries to one receiver keep
their order (and so stay in order per flow) and a slow or dead receiver delays nobody else.
A failed POST is retried with exponential backoff; when the attempts run out, or the queue is
full, the delivery is dropped with a log line.

What a receiver can make the sender hold is bounded: each attempt (resolving, connecting, sending,
reading the answer) ends within ``attempt_timeout_s``, and at most ``response_limit_bytes`` of an
answer is read (the rest is discarded with the connection). Each attempt resolves the receiver's
name once, checks every address (the SSRF guard) and connects to those addresses only, keeping the
name in ``Host`` and, for https, in SNI and the certificate check: a name that resolves elsewhere
the next moment (DNS rebinding) cannot lead a delivery past the guard. A registration that cannot
be delivered (one stored before the registration rules, or any error at all) fails alone, with a
log line, and its consumer goes on with the next event.

Statuses (8.0+, see ``backends.events``): only ``created``/``started`` registrations get events; a
``created`` one becomes ``started`` when its first delivery begins, and one whose delivery runs out
of attempts goes to ``error`` (its queued events are dropped) unless ``error_status`` says the
registration's API version has no statuses (7.0: it stays as it is and later events are tried).
Bodies are rendered by ``render`` (the dialect of the version the registration was made under).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
import threading
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from backends import events, webhook_receivers
from backends.base import Json
from backends.errors import BadRequest
from tams_server import metrics

log = logging.getLogger("tams_server.webhooks")


@dataclass(frozen=True)
class DeliveryPolicy:
    attempts: int = 5  # first try plus four retries
    backoff_s: float = 0.5  # doubled after each failure ...
    max_backoff_s: float = 30.0  # ... up to this
    timeout_s: float = 5.0  # per network step (connect, each read or write); attempt_timeout_s bounds them all
    queue_size: int = 1000  # per registration
    allow_private: bool = False  # receivers on loopback/private addresses (SSRF guard)
    response_limit_bytes: int = 64 * 2**10  # of a receiver's answer, read at most this much
    attempt_timeout_s: float = 10.0  # one POST, start to end, whatever the receiver does


# Receiver origins (scheme, host, port) whose HTTP client, with its kept-alive connections, is kept.
MAX_CLIENTS = 64


class ReceiverUnresolved(BadRequest):
    """The receiver's name does not resolve: refused at registration, tried again at delivery."""


def receiver_addresses(url: str, allow_private: bool) -> list[str]:
    """Resolve a receiver: the addresses a delivery may connect to, every one of them checked.

    Refuses (400) a URL that ``webhook_receivers.receiver_url`` refuses, and one that reaches a non-public
    address unless ``allow_private``.
    """
    receiver = webhook_receivers.receiver_url(url)
    try:
        infos = socket.getaddrinfo(receiver.host, receiver.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ReceiverUnresolved(f"webhook host {receiver.host!r} does not resolve") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)))
    if not addresses:
        raise ReceiverUnresolved(f"webhook host {receiver.host!r} has no IP address")
    if not allow_private and not all(ipaddress.ip_address(a).is_global for a in addresses):
        raise BadRequest(f"webhook url {url!r} reaches a non-public address; this server does not allow that")
    return addresses


def check_receiver(url: str, allow_private: bool) -> None:
    """Refuse (400) URLs that are not valid http(s) URLs, or that reach non-public addresses unless allowed."""
    webhook_receivers.receiver_url(url)
    if not allow_private:
        receiver_addresses(url, allow_private)


class WebhookDispatcher:
    """An ``EventSink`` that delivers each event to the registrations it matches."""

    def __init__(
        self,
        policy: DeliveryPolicy,
        registrations: Callable[[], list[Json]] | None = None,
        render: Callable[[Json, events.Event], Json] | None = None,
        set_status: Callable[[str, str, Json | None], bool] | None = None,
        error_status: Callable[[Json], bool] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self.registrations = registrations or (lambda: [])
        self.render = render or events.body_for
        self.set_status = set_status or (lambda _id, _status, _error: False)
        self.error_status = error_status or (lambda _webhook: True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._queues: dict[tuple[Any, ...], asyncio.Queue[Json]] = {}
        self._consumers: list[asyncio.Task[None]] = []
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._tls = tls  # whom https receivers must prove to be: httpx's default trust when None
        # One client per receiver origin: connections go to the checked address, so one pool shared
        # by several names could send a request for one name over a TLS session made for another.
        self._clients: dict[tuple[str, str, int | None], httpx.AsyncClient] = {}
        self._in_use: Counter[tuple[str, str, int | None]] = Counter()
        self.dropped = 0
        metrics.track_dispatcher(self)

    def check(self, url: str) -> None:
        """Refuse a receiver this server will not deliver to (400)."""
        check_receiver(url, self.policy.allow_private)

    # --- the EventSink side: called from request threads ---------------------------------------
    def publish(self, event: events.Event) -> None:
        for webhook in self.registrations():
            try:
                if not (events.delivers(webhook) and events.matches(webhook, event)):
                    continue
                body = self.render(webhook, event)
            except Exception as exc:  # one bad registration must not keep the event from the others
                self._crashed(webhook, event.type, exc)
                continue
            self._add_pending(1)
            self._ensure_loop().call_soon_threadsafe(self._enqueue, webhook, body)

    def queue_depths(self) -> tuple[int, list[int]]:
        """(events published and not yet delivered or dropped, the length of each registration's
        queue): read by the metrics gauges at scrape time, from another thread."""
        try:
            queues = list(self._queues.values())  # one C-level copy, under the GIL
        except RuntimeError:  # changed size during the copy (possible without a GIL): none this scrape
            queues = []
        return self._pending, [q.qsize() for q in queues]

    def wait_idle(self, timeout: float) -> bool:
        """Block until every published delivery finished or was dropped (for tests and shutdown)."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        if self._loop is not None:
            loop, self._loop = self._loop, None
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)

    async def _shutdown(self) -> None:
        """Cancel the consumers (undelivered events are dropped) and close the HTTP clients."""
        with self._pending_lock:
            if self._pending:
                metrics.webhook_dropped("shutdown", self._pending)
        for task in self._consumers:
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)

    # --- the delivery loop ---------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._pending_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="tams-webhooks", daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

    def _add_pending(self, delta: int) -> None:
        with self._pending_lock:
            self._pending += delta
            if self._pending:
                self._idle.clear()
            else:
                self._idle.set()

    def _enqueue(self, webhook: Json, body: Json) -> None:
        try:
            key = (webhook["id"],) if webhook.get("id") else events.identity(webhook)
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = asyncio.Queue(self.policy.queue_size)
                self._consumers.append(asyncio.get_running_loop().create_task(self._consume(key, queue)))
            queue.put_nowait({"webhook": webhook, "body": body})
        except asyncio.QueueFull:
            self._drop(webhook, body.get("event_type"), "its queue is full", "queue_full")
            self._add_pending(-1)
        except Exception as exc:  # a callback's error would only reach asyncio's log, and stay pending
            self._crashed(webhook, body.get("event_type"), exc)
            self._add_pending(-1)

    async def _consume(self, key: tuple[Any, ...], queue: asyncio.Queue[Json]) -> None:
        """Deliver in order; when the queue runs dry the consumer ends, so unused ones do not pile up."""
        while not queue.empty():
            item = queue.get_nowait()
            try:
                problem = await self._deliver(item["webhook"], item["body"])
                if problem is not None:
                    await self._failed(item["webhook"], queue, problem)
            except Exception as exc:  # whatever one delivery raises, the next events still go out
                self._crashed(item["webhook"], item["body"].get("event_type"), exc)
            finally:
                self._add_pending(-1)
        del self._queues[key]
        self._consumers.remove(asyncio.current_task())  # type: ignore[arg-type]

    async def _failed(self, webhook: Json, queue: asyncio.Queue[Json], problem: str) -> None:
        """A delivery failed for good: the registration goes to ``error`` and its queue is dropped."""
        if not webhook.get("id") or not self.error_status(webhook):
            return
        error = events.delivery_error(f"deliveries to {webhook['url']} keep failing: {problem}")
        if not await asyncio.to_thread(self.set_status, webhook["id"], events.ERROR, error):
            return
        log.warning("webhook %s (%s) is in error until a client re-enables it", webhook["id"], webhook["url"])
        while not queue.empty():
            item = queue.get_nowait()
            self._drop(item["webhook"], item["body"].get("event_type"), "the webhook is in error", "webhook_in_error")
            self._add_pending(-1)

    async def _deliver(self, webhook: Json, body: Json) -> str | None:
        """POST with retries; what went wrong when every attempt failed (the delivery is dropped)."""
        if webhook.get("id") and webhook.get("status") == events.CREATED:
            await asyncio.to_thread(self.set_status, webhook["id"], events.STARTED, None)
            webhook["status"] = events.STARTED
        try:
            webhook_receivers.check_delivery_fields(webhook)  # registrations stored before these rules
        except BadRequest as exc:
            problem = f"{exc.summary}; nothing was sent"
            self._drop(webhook, body.get("event_type"), problem, "invalid_registration")
            return problem
        headers = {}
        if webhook.get("api_key_name"):
            headers[webhook["api_key_name"]] = webhook.get("api_key_value", "")
        delay = self.policy.backoff_s
        problem = "no attempt"
        reason = "attempts_exhausted"
        for attempt in range(1, self.policy.attempts + 1):
            if attempt > 1:
                metrics.WEBHOOK_RETRIES.inc()
            try:
                async with asyncio.timeout(self.policy.attempt_timeout_s):
                    problem = await self._attempt(webhook["url"], body, headers)
                if problem is None:
                    metrics.WEBHOOK_DELIVERED.inc()
                    return None
            except ReceiverUnresolved as exc:
                problem = exc.summary  # DNS may answer on the next attempt
            except (BadRequest, httpx.InvalidURL) as exc:
                problem = exc.summary if isinstance(exc, BadRequest) else f"invalid URL: {exc}"
                reason = "address_refused"
                break  # the address is refused: retrying will not help
            except TimeoutError:
                problem = f"no complete answer within {self.policy.attempt_timeout_s:g} s"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            if attempt < self.policy.attempts:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.policy.max_backoff_s)
        problem = f"{problem} after {attempt} attempt(s)"
        self._drop(webhook, body.get("event_type"), problem, reason)
        return problem

    async def _attempt(self, url: str, body: Json, headers: dict[str, str]) -> str | None:
        """One POST to the addresses one resolution gave (checked): None when the receiver took it,
        else its status. At most ``response_limit_bytes`` of the answer is read (raw: never inflated)."""
        addresses = await asyncio.to_thread(receiver_addresses, url, self.policy.allow_private)
        target = httpx.URL(url)
        # The request goes to an address; the name stays the receiver's in Host, SNI and the certificate check.
        pinned = {**headers, "Host": target.netloc.decode("ascii")}
        extensions = {"sni_hostname": target.raw_host.decode("ascii")} if target.scheme == "https" else {}
        async with self._client(target) as client:
            for address in addresses[:-1]:
                try:
                    return await self._post(client, target.copy_with(host=address), body, pinned, extensions)
                except (httpx.ConnectError, httpx.ConnectTimeout):
                    continue  # the name's next address
            return await self._post(client, target.copy_with(host=addresses[-1]), body, pinned, extensions)

    async def _post(
        self, client: httpx.AsyncClient, url: httpx.URL, body: Json, headers: dict[str, str], extensions: Json
    ) -> str | None:
        async with client.stream("POST", url, json=body, headers=headers, extensions=extensions) as response:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= self.policy.response_limit_bytes:
                    break  # closing the stream unread closes its connection: the rest is never read
        return None if response.is_success else f"HTTP {response.status_code}"

    @contextlib.asynccontextmanager
    async def _client(self, target: httpx.URL) -> AsyncIterator[httpx.AsyncClient]:
        """The HTTP client of the receiver's origin; the least recently used idle ones beyond
        ``MAX_CLIENTS`` are closed."""
        key = (target.scheme, target.host, target.port)
        client = self._clients.pop(key, None)
        if client is None:
            if self._tls is None:
                self._tls = httpx.create_ssl_context()  # shared: loading the CA bundle takes a while
            client = httpx.AsyncClient(verify=self._tls, timeout=self.policy.timeout_s, follow_redirects=False)
        self._clients[key] = client  # the most recently used last
        self._in_use[key] += 1
        idle = [k for k in self._clients if not self._in_use[k]]
        for old in idle[: max(0, len(self._clients) - MAX_CLIENTS)]:
            await self._clients.pop(old).aclose()
        try:
            yield client
        finally:
            self._in_use[key] -= 1
            if not self._in_use[key]:
                del self._in_use[key]

    def _crashed(self, webhook: Json, event_type: str | None, exc: Exception) -> None:
        """An error nobody planned for: the event is dropped with a log line that says where (and
        never shows the registration's api_key_value)."""
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        message = str(exc)
        secret = webhook.get("api_key_value") if isinstance(webhook, dict) else None
        if isinstance(secret, str) and secret:
            for form in (secret, repr(secret)[1:-1], repr(secret.encode("utf-8", "replace"))[2:-1]):
                message = message.replace(form, "<api_key_value>")
        self._drop(webhook, event_type, f"{type(exc).__name__}{where}: {message}", "internal_error")

    def _drop(self, webhook: Json, event_type: str | None, why: str, reason: str) -> None:
        """``reason``: one of ``metrics.DROP_REASONS`` (a bounded label; ``why`` is for the log)."""
        with self._pending_lock:  # request threads drop too (publish)
            self.dropped += 1
        metrics.webhook_dropped(reason)
        webhook_id, url = (webhook.get("id"), webhook.get("url")) if isinstance(webhook, dict) else (None, None)
        log.warning("dropped %s event for webhook %s (%s): %s", event_type, webhook_id or "-", url, why)
