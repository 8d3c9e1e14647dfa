"""Who may call the admin routes: a bearer token, compared in constant time."""

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
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise NotAuthorizedException(
            "send Authorization: Bearer <CLFSERVE_ADMIN_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise PermissionDeniedException("wrong admin token")
