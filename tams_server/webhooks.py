"""Webhook delivery: events leave the request path at once and are POSTed by a background loop.

Each registration has its own bounded queue and consumer, so deliveries to one receiver keep
their order (and so stay in order per flow) and a slow or dead receiver delays nobody else.
A failed POST is retried with exponential backoff; when the attempts run out, or the queue is
full, the delivery is dropped with a log line.

Statuses (8.0+, see ``backends.events``): only ``created``/``started`` registrations get events; a
``created`` one becomes ``started`` when its first delivery begins, and one whose delivery runs out
of attempts goes to ``error`` (its queued events are dropped) unless ``error_status`` says the
registration's API version has no statuses (7.0: it stays as it is and later events are tried).
Bodies are rendered by ``render`` (the dialect of the version the registration was made under).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from backends import events
from backends.base import Json
from backends.errors import BadRequest

log = logging.getLogger("tams_server.webhooks")


@dataclass(frozen=True)
class DeliveryPolicy:
    attempts: int = 5  # first try plus four retries
    backoff_s: float = 0.5  # doubled after each failure ...
    max_backoff_s: float = 30.0  # ... up to this
    timeout_s: float = 5.0  # per POST
    queue_size: int = 1000  # per registration
    allow_private: bool = False  # receivers on loopback/private addresses (SSRF guard)
    response_limit_bytes: int = 64 * 2**10  # of a receiver's answer, read at most this much
    attempt_timeout_s: float = 10.0  # one POST, start to end, whatever the receiver does


def check_receiver(url: str, allow_private: bool) -> None:
    """Refuse URLs that are not http(s), or that reach loopback/private addresses unless allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"webhook url {url!r} must be an http or https URL")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise BadRequest(f"webhook host {parts.hostname!r} does not resolve") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise BadRequest(f"webhook url {url!r} reaches a non-public address; this server does not allow that")


class WebhookDispatcher:
    """An ``EventSink`` that delivers each event to the registrations it matches."""

    def __init__(
        self,
        policy: DeliveryPolicy,
        registrations: Callable[[], list[Json]] | None = None,
        render: Callable[[Json, events.Event], Json] | None = None,
        set_status: Callable[[str, str, Json | None], bool] | None = None,
        error_status: Callable[[Json], bool] | None = None,
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
        self._client: httpx.AsyncClient | None = None
        self.dropped = 0

    def check(self, url: str) -> None:
        """Refuse a receiver this server will not deliver to (400)."""
        check_receiver(url, self.policy.allow_private)

    # --- the EventSink side: called from request threads ---------------------------------------
    def publish(self, event: events.Event) -> None:
        hooks = [w for w in self.registrations() if events.delivers(w) and events.matches(w, event)]
        if not hooks:
            return
        loop = self._ensure_loop()
        for webhook in hooks:
            self._add_pending(1)
            loop.call_soon_threadsafe(self._enqueue, webhook, self.render(webhook, event))

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
        """Cancel the consumers (undelivered events are dropped) and close the HTTP client."""
        for task in self._consumers:
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

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
        key = (webhook["id"],) if webhook.get("id") else events.identity(webhook)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue(self.policy.queue_size)
            self._consumers.append(asyncio.get_running_loop().create_task(self._consume(key, queue)))
        try:
            queue.put_nowait({"webhook": webhook, "body": body})
        except asyncio.QueueFull:
            self._drop(webhook, body, "its queue is full")
            self._add_pending(-1)

    async def _consume(self, key: tuple[Any, ...], queue: asyncio.Queue[Json]) -> None:
        """Deliver in order; when the queue runs dry the consumer ends, so unused ones do not pile up."""
        while not queue.empty():
            item = queue.get_nowait()
            try:
                problem = await self._deliver(item["webhook"], item["body"])
                if problem is not None:
                    await self._failed(item["webhook"], queue, problem)
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
            self._drop(item["webhook"], item["body"], "the webhook is in error")
            self._add_pending(-1)

    async def _deliver(self, webhook: Json, body: Json) -> str | None:
        """POST with retries; what went wrong when every attempt failed (the delivery is dropped)."""
        if webhook.get("id") and webhook.get("status") == events.CREATED:
            await asyncio.to_thread(self.set_status, webhook["id"], events.STARTED, None)
            webhook["status"] = events.STARTED
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.policy.timeout_s, follow_redirects=False)
        headers = {}
        if webhook.get("api_key_name"):
            headers[webhook["api_key_name"]] = webhook.get("api_key_value", "")
        delay = self.policy.backoff_s
        problem = "no attempt"
        for attempt in range(1, self.policy.attempts + 1):
            try:
                await asyncio.to_thread(check_receiver, webhook["url"], self.policy.allow_private)
                response = await self._client.post(webhook["url"], json=body, headers=headers)
                if response.is_success:
                    return None
                problem = f"HTTP {response.status_code}"
            except BadRequest as exc:
                problem = exc.summary
                break  # the address is refused: retrying will not help
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            if attempt < self.policy.attempts:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.policy.max_backoff_s)
        problem = f"{problem} after {attempt} attempt(s)"
        self._drop(webhook, body, problem)
        return problem

    def _drop(self, webhook: Json, body: Json, why: str) -> None:
        self.dropped += 1
        log.warning("dropped %s event for webhook %s: %s", body["event_type"], webhook["url"], why)
