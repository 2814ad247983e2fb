"""Prometheus metrics of the server, and the text ``/metrics`` serves.

Metrics are process-wide (prometheus_client's default registry, which also carries the process's
CPU, memory and file-descriptor figures): each is defined once, at import, here or, for what the
stores count, in ``backends.telemetry``. Several apps of one process (tests) add to the same series.

Label values are bounded: API versions, operationIds (or a fixed name for routes beside the API),
status codes, storage ids, reasons from fixed lists; never paths or object ids.

What "bytes registered" means: a TAMS segment carries no size, and clients usually upload media
straight to S3 at presigned URLs, which the server never sees. So the server counts the segments
it registers (``tams_segments_registered_total``) and, as bytes, what its own media URLs received
(``tams_media_uploaded_bytes_total``: committed uploads to the stores it serves itself, such as
the local backend's media directory); looking up each registered object's size in its store would
cost a store round trip per segment.
"""

from __future__ import annotations

import threading
import weakref
from bisect import bisect_left
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.utils import floatToGoString

import backends.telemetry  # noqa: F401  (the stores' metrics: registered with the ones below)

# No "<name>_created" timestamp series beside each counter and histogram: they double what every
# scrape carries, and Prometheus finds counter resets without them.
disable_created_metrics()

# From 0.1 ms (a cached read on the memory backend) to 10 s (a large bulk registration).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Distinct (version, operation, status) series at most; beyond, new ones are counted as "other"
# (a guard should a caller ever pass an unbounded value: the series would otherwise grow for ever).
MAX_REQUEST_SERIES = 2000
OTHER = "other"

# --- requests ---------------------------------------------------------------------------------
# Kept and written by hand, not in prometheus_client's Histogram and Counter: observe_request
# runs on every request, and one bisect and three additions under one lock cost ~0.5 us where the
# library's histogram and counter (a lock per value, a scan of the buckets) cost ~1.3 us. They are
# not in prometheus_client's registry: ``exposition`` adds them to what it writes.
REQUEST_SECONDS_HELP = (
    "Requests answered, by API version ('' outside the versioned API), operationId (or a fixed name: media, "
    "docs, hls, viewer, healthz, readyz, metrics, report, unmatched) and status; from arrival to the last byte sent"
)
RESPONSE_BYTES_HELP = "Response body bytes sent, by API version, operationId and status"
REQUEST_LABELS = ("version", "operation", "status")


class _RequestSeries:
    """The latency histogram (counts per bucket, not cumulative; the last is +Inf) and bytes of one
    (version, operation, status), with its labels as the exposition writes them."""

    __slots__ = ("counts", "labels", "seconds", "sent")

    def __init__(self, labels: tuple[str, str, str]) -> None:
        self.labels = ",".join(f'{name}="{_escaped(v)}"' for name, v in zip(REQUEST_LABELS, labels, strict=True))
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.seconds = 0.0
        self.sent = 0


def _escaped(label_value: str) -> str:
    return label_value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


_series: dict[tuple[str, str, str], _RequestSeries] = {}  # by label values, as exposed
_request_series: dict[tuple[str, str, int], _RequestSeries] = {}  # by what callers pass
_requests_lock = threading.Lock()


def observe_request(version: str, operation: str, status: int, seconds: float, sent_bytes: int) -> None:
    """One answered request: ``operation`` is an operationId (or a fixed name for non-API routes)."""
    series = _request_series.get((version, operation, status))
    if series is None:
        series = _series_for(version, operation, status)
    bucket = bisect_left(LATENCY_BUCKETS, seconds)  # the first bound >= seconds, as Prometheus's "le"
    with _requests_lock:
        series.counts[bucket] += 1
        series.seconds += seconds
        series.sent += sent_bytes


def _series_for(version: str, operation: str, status: int) -> _RequestSeries:
    with _requests_lock:
        found = _request_series.get((version, operation, status))
        if found is None:
            labels = (version, operation, str(status))
            if len(_series) >= MAX_REQUEST_SERIES and labels not in _series:
                labels = (OTHER, OTHER, str(status))
            if labels not in _series:
                _series[labels] = _RequestSeries(labels)
            found = _request_series[(version, operation, status)] = _series[labels]
        return found


_LE = [floatToGoString(b) for b in LATENCY_BUCKETS] + ["+Inf"]


def _request_text() -> bytes:
    """The request families in the text format, written here: prometheus_client's writer spends
    ~10 us a sample checking and escaping labels, and these are most of a scrape's samples (20 a
    series: 480 series took ~120 ms, this ~10 times less)."""
    with _requests_lock:
        rows = [(s.labels, list(s.counts), s.seconds, s.sent) for s in _series.values()]
    latency = "tams_http_request_duration_seconds"
    sent = "tams_http_response_bytes_total"
    lines = [f"# HELP {latency} {REQUEST_SECONDS_HELP}", f"# TYPE {latency} histogram"]
    for labels, counts, seconds, _ in rows:
        total = 0
        for le, count in zip(_LE, counts, strict=True):
            total += count
            lines.append(f'{latency}_bucket{{{labels},le="{le}"}} {total}')
        lines.append(f"{latency}_count{{{labels}}} {total}")
        lines.append(f"{latency}_sum{{{labels}}} {floatToGoString(seconds)}")
    lines += [f"# HELP {sent} {RESPONSE_BYTES_HELP}", f"# TYPE {sent} counter"]
    lines += [f"{sent}{{{labels}}} {sent_bytes}" for labels, _, _, sent_bytes in rows]
    return ("\n".join(lines) + "\n").encode()


# --- segments ---------------------------------------------------------------------------------
SEGMENTS_REGISTERED = Counter(
    "tams_segments_registered",
    "Segments registered (POST /flows/{id}/segments, each segment of a bulk post counts)",
)
SEGMENTS_REFUSED = Counter(
    "tams_segments_refused",
    "Segments refused at registration (overlap, unknown object, bad timerange...: 400 or listed as failed)",
)


def segments_posted(registered: int, refused: int) -> None:
    SEGMENTS_REGISTERED.inc(registered)
    SEGMENTS_REFUSED.inc(refused)


# --- media through the server's own URLs ------------------------------------------------------
_BYPASS = "; media moved at presigned S3 URLs goes straight to S3 and is not counted"
MEDIA_SERVED_BYTES = Counter(
    "tams_media_served_bytes",
    "Media bytes sent from the server's own media URLs (/_media/), by storage id" + _BYPASS,
    ["storage"],
)
MEDIA_UPLOADED_BYTES = Counter(
    "tams_media_uploaded_bytes",
    "Media bytes of uploads committed through the server's own media URLs (/_media/), by storage id" + _BYPASS,
    ["storage"],
)
MEDIA_UPLOADS = Counter(
    "tams_media_uploads",
    "Media objects uploaded (committed) through the server's own media URLs (/_media/), by storage id" + _BYPASS,
    ["storage"],
)

# --- authentication ---------------------------------------------------------------------------
# bad_token: an API token or JWT that is not valid; bad_password: wrong name or password;
# malformed: credentials that cannot be read (bad base64, an unknown scheme); no_credentials: none
# given; throttled: 429 after too many wrong passwords; overloaded: 503, too many password checks
# waiting; missing_scope: 403; bad_media_signature: a media URL whose signature is wrong or expired.
AUTH_REASONS = (
    "no_credentials",
    "malformed",
    "bad_token",
    "bad_password",
    "throttled",
    "overloaded",
    "missing_scope",
    "bad_media_signature",
)
AUTH_FAILURES = Counter("tams_auth_failures", "Requests refused for their credentials, by reason", ["reason"])
for _reason in AUTH_REASONS:  # every reason shows, at 0, from the first scrape
    AUTH_FAILURES.labels(_reason)


def auth_failed(reason: str) -> None:
    AUTH_FAILURES.labels(reason if reason in AUTH_REASONS else OTHER).inc()


# --- webhooks ---------------------------------------------------------------------------------
# queue_full: the registration's queue was full; attempts_exhausted: every attempt failed;
# address_refused: the receiver's address is not allowed (SSRF guard) or its URL is invalid;
# invalid_registration: the registration breaks today's rules; webhook_in_error: queued events of a
# registration that went to "error"; internal_error: a fault of ours; shutdown: still queued when
# the server stopped.
DROP_REASONS = (
    "queue_full",
    "attempts_exhausted",
    "address_refused",
    "invalid_registration",
    "webhook_in_error",
    "internal_error",
    "shutdown",
)
WEBHOOK_DELIVERED = Counter("tams_webhook_delivered", "Webhook events delivered (the receiver answered 2xx)")
WEBHOOK_RETRIES = Counter("tams_webhook_retries", "Webhook delivery attempts made after a failed attempt")
WEBHOOK_DROPPED = Counter("tams_webhook_dropped", "Webhook events dropped undelivered, by reason", ["reason"])
for _reason in DROP_REASONS:
    WEBHOOK_DROPPED.labels(_reason)


def webhook_dropped(reason: str, count: int = 1) -> None:
    WEBHOOK_DROPPED.labels(reason if reason in DROP_REASONS else OTHER).inc(count)


class _Dispatcher(Protocol):
    def queue_depths(self) -> tuple[int, list[int]]:
        """(events published and not yet delivered or dropped, the length of each registration's queue)."""
        ...


_dispatchers: weakref.WeakSet[_Dispatcher] = weakref.WeakSet()
_dispatchers_lock = threading.Lock()


def track_dispatcher(dispatcher: _Dispatcher) -> None:
    """Count ``dispatcher``'s queues in the webhook gauges while it lives."""
    with _dispatchers_lock:
        _dispatchers.add(dispatcher)


def _depths() -> list[tuple[int, list[int]]]:
    with _dispatchers_lock:
        dispatchers = list(_dispatchers)
    return [d.queue_depths() for d in dispatchers]


WEBHOOK_PENDING = Gauge(
    "tams_webhook_events_pending",
    "Webhook events published and not yet delivered or dropped (queued, in delivery, or waiting to retry)",
)
WEBHOOK_PENDING.set_function(lambda: float(sum(pending for pending, _ in _depths())))
WEBHOOK_QUEUES = Gauge("tams_webhook_queues", "Webhook registrations with events queued or in delivery")
WEBHOOK_QUEUES.set_function(lambda: float(sum(len(queues) for _, queues in _depths())))
WEBHOOK_LONGEST_QUEUE = Gauge(
    "tams_webhook_longest_queue",
    "Events waiting in the longest queue of one registration (new events beyond its limit, 1,000, are dropped)",
)
WEBHOOK_LONGEST_QUEUE.set_function(lambda: float(max((max(q, default=0) for _, q in _depths()), default=0)))


# --- the exposition ---------------------------------------------------------------------------
def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus text format, and its content type."""
    return generate_latest(REGISTRY) + _request_text(), CONTENT_TYPE_LATEST
