"""Every error leaves the server as JSON ``{type, summary, time}`` (the TAMS error schema)."""

from __future__ import annotations

import logging

from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from backends import errors
from backends.rules import now
from tams_server.json import dumps

log = logging.getLogger("tams_server")

STATUS = {
    errors.BadRequest: 400,
    errors.ReadOnly: 403,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.NotSupported: 404,
    errors.AlreadyExists: 409,
    errors.Unavailable: 503,
    errors.StorageFull: 507,
}
NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    408: "RequestTimeout",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    416: "RangeNotSatisfiable",
    429: "TooManyRequests",
    500: "InternalServerError",
    501: "NotImplemented",
    503: "ServiceUnavailable",
    507: "InsufficientStorage",
}


JSON_ONLY = "the request body must be JSON (Content-Type: application/json)"


def error_body(status: int, summary: str) -> dict[str, str]:
    return {"type": NAMES.get(status, f"Status{status}"), "summary": summary, "time": now()}


def error_response(status: int, summary: str, headers: dict[str, str] | None = None) -> ConnexionResponse:
    return ConnexionResponse(
        status_code=status,
        body=dumps(error_body(status, summary)),
        content_type="application/json",
        headers=headers or {},
    )


def plain_error(status: int, summary: str, headers: dict[str, str] | None = None) -> Response:
    """The same error as a Starlette response, for requests that never reach Connexion."""
    return JSONResponse(error_body(status, summary), status_code=status, headers=headers)


def domain_status(exc: errors.TamsError) -> int:
    """The HTTP status of a store's refusal (404 for NotFound, ...)."""
    return next((STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS), 400)


def domain_error(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, errors.TamsError)
    return error_response(domain_status(exc), exc.summary)


def problem(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    """Connexion's own problems (validation, routing) in our error shape."""
    if isinstance(exc, ProblemException):
        if exc.status == 415:
            # TAMS documents 400 for a body it cannot take; every TAMS body is JSON.
            return error_response(400, JSON_ONLY)
        summary = exc.detail or exc.title or "request failed"
        return error_response(exc.status, str(summary), dict(exc.headers or {}))
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))


def unexpected(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    log.exception("unexpected error", exc_info=exc)
    return error_response(500, "internal server error; the server log has the details")
