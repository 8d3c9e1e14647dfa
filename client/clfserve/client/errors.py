"""What a call can raise; every answer the server refused carries its ``detail``:

ClientError                 anything this client raises
├── ApiError                the server answered with an error status
│   ├── InvalidRequest      400, 413, 422: fix the request (the detail says how)
│   ├── NotAuthorized       401, 403, 404 on an admin route
│   ├── RateLimited         429, after the retries ran out (``retry_after``)
│   ├── Unavailable         503, after the retries ran out (``retry_after``)
│   └── ServerError         any other status
└── (httpx.TransportError)  connection failures are httpx's own, left as they are
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Anything `clfserve.client` raises."""


class ApiError(ClientError):
    """The server answered ``status_code`` with ``detail`` (its JSON body's ``detail``)."""

    def __init__(
        self, status_code: int, detail: str, *, retry_after: float | None = None,
        body: Any = None,
    ) -> None:  # fmt: skip
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.retry_after = retry_after
        """Seconds the server asked to wait (``Retry-After``), if it said."""
        self.body = body


class InvalidRequest(ApiError):
    """400, 413 or 422: the request was malformed, too large or broke a limit."""


class NotAuthorized(ApiError):
    """401, 403 (or 404: admin routes disabled)."""


class RateLimited(ApiError):
    """429: this client address is over the server's rate limit."""


class Unavailable(ApiError):
    """503: no model loaded yet (or it failed), or too many texts waiting."""


class ServerError(ApiError):
    """Any other error status."""


def error_for(status_code: int, body: Any, retry_after: float | None) -> ApiError:
    """The error for an answer with ``status_code`` and JSON (or text) ``body``."""
    detail = body.get("detail") if isinstance(body, dict) else None
    text = str(detail) if detail is not None else (str(body) if body else "no detail")
    kind: type[ApiError] = ServerError
    if status_code in (400, 413, 422):
        kind = InvalidRequest
    elif status_code in (401, 403, 404):
        kind = NotAuthorized
    elif status_code == 429:
        kind = RateLimited
    elif status_code == 503:
        kind = Unavailable
    return kind(status_code, text, retry_after=retry_after, body=body)
