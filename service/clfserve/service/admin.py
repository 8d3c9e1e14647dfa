"""Who may call the admin routes (and, when it has a token, ``POST /feedback``): a bearer
token, compared in constant time."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
)


def check_admin(request: Request[Any, Any, Any], token: str | None) -> None:
    """404 when no token is configured (the routes do not exist), 401 without a bearer token,
    403 with a wrong one."""
    if token is None:
        raise NotFoundException("admin routes are disabled (set CLFSERVE_ADMIN_TOKEN)")
    given = bearer(request)
    if given is None:
        raise NotAuthorizedException(
            "send Authorization: Bearer <CLFSERVE_ADMIN_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not same_token(given, token):
        raise PermissionDeniedException("wrong admin token")


def bearer(request: Request[Any, Any, Any]) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, or None."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" and given.strip() else None


def same_token(given: str, token: str) -> bool:
    """Compared in constant time."""
    return hmac.compare_digest(given.encode(), token.encode())
