"""Failure throttling: after ``limit`` failures of one key (a client, a user name) within a sliding
window, further attempts by that key wait until the oldest of those failures leaves the window.

Memory is bounded: at most ``max_keys`` keys are remembered, each with at most ``limit`` failure
times. When the table is full the least recently failing key is forgotten, so an attacker who
rotates keys (user names, addresses) can only make the table forget, never grow.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from typing import Any

DEFAULT_MAX_KEYS = 4096


class FailureThrottle:
    """Failures per key in a sliding window of ``window_s`` seconds. ``limit <= 0`` never throttles."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self.clock = clock
        self._failures: OrderedDict[Hashable, deque[float]] = OrderedDict()  # least recently failing first

    def __len__(self) -> int:
        return len(self._failures)

    def retry_after(self, key: Hashable) -> float:
        """Seconds until ``key`` may try again; 0 when it may now."""
        times = self._failures.get(key)
        if self.limit <= 0 or times is None or len(times) < self.limit:
            return 0.0
        return max(0.0, times[0] + self.window_s - self.clock())

    def failed(self, key: Hashable) -> None:
        if self.limit <= 0:
            return
        now = self.clock()
        times = self._failures.pop(key, None)
        if times is None:
            times = deque(maxlen=self.limit)  # older failures than the last ``limit`` never matter
        times.append(now)
        self._failures[key] = times
        self._forget(now)

    def _forget(self, now: float) -> None:
        # The front holds the keys whose last failure is oldest: drop those out of the window, then,
        # if still too many, the least recently failing ones.
        while self._failures:
            key, times = next(iter(self._failures.items()))
            if times[-1] + self.window_s > now and len(self._failures) <= self.max_keys:
                break
            del self._failures[key]


def client_key(client: Sequence[Any] | None) -> str | None:
    """The throttling key of an ASGI ``scope["client"]``: its address, an IPv6 one as its /64 (one
    host usually holds a whole /64); None when the server does not say who the client is."""
    if not client:
        return None
    host = str(client[0])
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
