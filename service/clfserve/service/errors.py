"""HTTP errors of the service, and the one place where every exception becomes a JSON answer.

    HTTPException (litestar)
    ├── BadRequest          400  body is not JSON, not UTF-8, or empty
    ├── PayloadTooLarge     413  (Litestar's RequestEntityTooLarge covers the body limit)
    ├── InvalidRequest      422  well-formed JSON that breaks the schema or a limit
    ├── ModelUnavailable    503  the model is loading or failed to load
    └── Overloaded          503  too many texts are waiting for the model

Runtime errors map here too: InvalidInput -> 422, ModelLoadError/ProviderError -> 503; anything
else is a 500 with a generic detail (the traceback goes to the log, never to the client).
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
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from clfserve.runtime import ClfserveError, InvalidInput

log = logging.getLogger(__name__)


class BadRequest(HTTPException):
    status_code = HTTP_400_BAD_REQUEST


class PayloadTooLarge(HTTPException):
    status_code = HTTP_413_REQUEST_ENTITY_TOO_LARGE


class InvalidRequest(HTTPException):
    status_code = HTTP_422_UNPROCESSABLE_ENTITY


class ModelUnavailable(HTTPException):
    status_code = HTTP_503_SERVICE_UNAVAILABLE

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail, headers={"Retry-After": "5"})


class Overloaded(HTTPException):
    status_code = HTTP_503_SERVICE_UNAVAILABLE

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail, headers={"Retry-After": "1"})


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
    """429 with ``Retry-After`` (seconds until the window resets) next to the RateLimit headers."""

    def handle(request: Request[Any, Any, Any], exc: TooManyRequestsException) -> Response[Any]:
        on_throttle(request)
        headers = dict(exc.headers or {})
        reset = headers.get("RateLimit-Reset", "1")
        headers["Retry-After"] = str(max(1, int(reset))) if reset.isdigit() else "1"
        return _json(
            exc.status_code,
            f"rate limit exceeded for this client address; retry after {headers['Retry-After']} s",
            headers,
        )

    return handle
