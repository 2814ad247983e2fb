"""Prometheus metrics (filled in by issue 14)."""

from __future__ import annotations


def observe_request(version: str, operation: str, status: int, seconds: float, sent_bytes: int) -> None:
    """One answered request: ``operation`` is an operationId (or a fixed name for non-API routes)."""


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus text format, and its content type."""
    return b"", "text/plain; version=0.0.4; charset=utf-8"
