"""Domain errors raised by backends, in TAMS terms. The HTTP layer maps each one to a status code."""

from __future__ import annotations


class TamsError(Exception):
    """Base class: ``summary`` is safe to show to clients."""

    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


class NotFound(TamsError):
    """The addressed resource does not exist (404)."""


class BadRequest(TamsError):
    """The request is well-formed JSON but breaks a TAMS rule (400)."""


class ReadOnly(TamsError):
    """The flow is marked read_only, so the change is refused (403)."""


class Forbidden(TamsError):
    """The resource as it stands does not permit this change (403), e.g. removing a field a
    profiled flow takes from its profile."""


class NotSupported(TamsError):
    """A feature this server does not offer (404 for optional TAMS features)."""


class Unavailable(TamsError):
    """The store cannot answer now (its database is unreachable, a lock stays taken): retry later (503)."""


class AlreadyExists(TamsError):
    """The object already has other bytes: media objects are written once (409)."""


class StorageFull(TamsError):
    """The disk (or quota) holding the store's data is full: nothing was written (507)."""
