"""Errors of the service core, and the one place where every exception becomes a JSON answer.

The core (gateway, micro-batcher, model state) raises domain errors and knows nothing of HTTP:

    ClfserveError
    ├── ModelUnavailable    no model to run: loading, failed to load, or shutting down
    └── Overloaded          too many texts are waiting for the model

`error_response` maps them, the runtime's errors and the HTTP layer's own to status codes:

    BadRequest (400)        body is not JSON, not UTF-8, or empty
    InvalidRequest (422)    well-formed JSON that breaks the schema or a limit
    InvalidInput -> 422     a text the runtime cannot classify
    ModelUnavailable -> 503 with Retry-After: 5
    FeedbackStoreError -> 503 "feedback not stored: ..." with Retry-After: 5
    Overloaded -> 503       with Retry-After: 1
    other ClfserveError -> 503 "model error: ..."; anything else -> 500 with a generic detail
                            (the traceback goes to the log, never to the client)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, TooManyRequestsException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from clfserve.evaluation.feedback import FeedbackStoreError
from clfserve.runtime import ClfserveError, InvalidInput

log = logging.getLogger(__name__)


class ModelUnavailable(ClfserveError):
    """There is no model to run (loading, failed, shutting down); the message says which."""

    retry_after_s = 5


class Overloaded(ClfserveError):
    """Too many texts are waiting for the model; the client should retry soon."""

    retry_after_s = 1


class BadRequest(HTTPException):
    status_code = HTTP_400_BAD_REQUEST


class InvalidRequest(HTTPException):
    status_code = HTTP_422_UNPROCESSABLE_ENTITY


def _json(
    status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response[Any]:
    return Response(
        {"status_code": status, "detail": detail, **extra},
        status_code=status,
        headers=headers,
        media_type=MediaType.JSON,
    )


def error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Every error the service answers, as ``{"status_code": N, "detail": "..."}``."""
    if isinstance(exc, RequestEntityTooLarge):
        limit = request.route_handler.resolve_request_max_body_size()
        return _json(exc.status_code, f"request body is larger than {limit} bytes")
    if isinstance(exc, HTTPException):
        extra = {"extra": exc.extra} if exc.extra else {}
        return _json(exc.status_code, exc.detail, dict(exc.headers or {}), **extra)
    if isinstance(exc, ModelUnavailable | Overloaded):
        headers = {"Retry-After": str(exc.retry_after_s)}
        return _json(HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers)
    if isinstance(exc, FeedbackStoreError):
        log.error("%s %s: %s", request.method, request.url.path, exc)
        headers = {"Retry-After": str(ModelUnavailable.retry_after_s)}
        return _json(HTTP_503_SERVICE_UNAVAILABLE, f"feedback not stored: {exc}", headers)
    if isinstance(exc, InvalidInput):
        return _json(HTTP_422_UNPROCESSABLE_ENTITY, str(exc))
    if isinstance(exc, ClfserveError):
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return _json(HTTP_503_SERVICE_UNAVAILABLE, f"model error: {exc}")
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _json(HTTP_500_INTERNAL_SERVER_ERROR, "internal server error")


def throttled_handler(
    on_throttle: Callable[[Request[Any, Any, Any]], None],
) -> Callable[[Request[Any, Any, Any], TooManyRequestsException], Response[Any]]:
    """429 with ``Retry-After`` (seconds until the budget has room) next to the RateLimit
    headers; the detail is the limiter's reason."""

    def handle(request: Request[Any, Any, Any], exc: TooManyRequestsException) -> Response[Any]:
        on_throttle(request)
        headers = dict(exc.headers or {})
        if "Retry-After" not in headers:
            reset = headers.get("RateLimit-Reset", "1")
            headers["Retry-After"] = str(max(1, int(reset))) if reset.isdigit() else "1"
        return _json(
            exc.status_code, f"{exc.detail}; retry after {headers['Retry-After']} s", headers
        )

    return handle
