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
from collections.abc import Iterator
from itertools import accumulate
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
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
# Kept by hand, not in prometheus_client Histogram and Counter objects: observe_request runs on
# every request, and one bisect and three additions under one lock cost ~0.6 us where the
# library's histogram and counter (a lock per value, a scan of the buckets) cost ~1.6 us.
REQUEST_SECONDS_HELP = (
    "Requests answered, by API version ('' outside the versioned API), operationId (or a fixed name: media, "
    "docs, healthz, readyz, metrics, report, unmatched) and status; from arrival to the last byte sent"
)
RESPONSE_BYTES_HELP = "Response body bytes sent, by API version, operationId and status"
REQUEST_LABELS = ("version", "operation", "status")


class _RequestSeries:
    """The latency histogram (counts per bucket, not cumulative; the last is +Inf) and bytes of one
    (version, operation, status)."""

    __slots__ = ("counts", "seconds", "sent")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.seconds = 0.0
        self.sent = 0


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
            found = _request_series[(version, operation, status)] = _series.setdefault(labels, _RequestSeries())
        return found


class _RequestCollector(Collector):
    """``tams_http_request_duration_seconds`` and ``tams_http_response_bytes_total``, at scrape time."""

    _BOUNDS = [floatToGoString(b) for b in LATENCY_BUCKETS] + ["+Inf"]

    def collect(self) -> Iterator[Metric]:
        with _requests_lock:
            rows = [(labels, list(s.counts), s.seconds, s.sent) for labels, s in _series.items()]
        latency = HistogramMetricFamily(
            "tams_http_request_duration_seconds", REQUEST_SECONDS_HELP, labels=REQUEST_LABELS
        )
        sent = CounterMetricFamily("tams_http_response_bytes", RESPONSE_BYTES_HELP, labels=REQUEST_LABELS)
        for labels, counts, seconds, sent_bytes in rows:
            cumulative = list(zip(self._BOUNDS, accumulate(counts), strict=True))
            latency.add_metric(list(labels), cumulative, seconds)
            sent.add_metric(list(labels), sent_bytes)
        yield latency
        yield sent

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily("tams_http_request_duration_seconds", REQUEST_SECONDS_HELP, labels=REQUEST_LABELS)
        yield CounterMetricFamily("tams_http_response_bytes", RESPONSE_BYTES_HELP, labels=REQUEST_LABELS)


REGISTRY.register(_RequestCollector())


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
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
