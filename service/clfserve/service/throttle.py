"""Per-client rate limiting as ASGI middleware, keyed on the real client address.

``X-Forwarded-For`` is believed only when the peer is a configured trusted proxy; then the client
is the right-most address in the chain that is not itself a trusted proxy. Anyone else sending
the header is keyed on their own address, so the header cannot dodge a limit.

Routes with ``opt={EXEMPT_OPT: True}`` (health, metrics) and ``/schema`` are never limited. A
refused request raises `TooManyRequestsException`, which `errors.throttled_handler` answers
(429, JSON ``detail``, ``Retry-After``); every limited response carries ``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset`` and ``RateLimit-Policy``. The budget itself is
`limiter.RateLimiter`: per process, or shared through Redis.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

from litestar.enums import ScopeType
from litestar.exceptions import TooManyRequestsException
from litestar.middleware import AbstractMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from clfserve.service.limiter import RateLimiter, Verdict
from clfserve.service.settings import IPNetwork

EXEMPT_OPT = "exempt_from_rate_limit"
"""Route ``opt`` key: handlers with ``opt={EXEMPT_OPT: True}`` are never throttled."""


def _trusted(address: str, proxies: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(peer: str, forwarded_for: str | None, proxies: Sequence[IPNetwork]) -> str:
    """The address a request is accounted to (see the module docstring)."""
    if not proxies or not forwarded_for or not _trusted(peer, proxies):
        return peer
    chain = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(chain):
        if not _trusted(hop, proxies):
            return hop
    return chain[0] if chain else peer


def _forwarded_for(scope: Scope) -> str | None:
    values = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
    return ", ".join(values) if values else None


def rate_limit_headers(verdict: Verdict) -> dict[str, str]:
    return {
        "RateLimit-Policy": f"{verdict.limit}; w={verdict.window_s}",
        "RateLimit-Limit": str(verdict.limit),
        "RateLimit-Remaining": str(max(0, verdict.remaining)),
        "RateLimit-Reset": str(verdict.reset_s),
    }


def _raw_headers(verdict: Verdict) -> list[tuple[bytes, bytes]]:
    """`rate_limit_headers` as ASGI header pairs, on every allowed response: the policy and
    limit are encoded once per limit, only remaining and reset per request."""
    return [
        *_constant_headers(verdict.limit, verdict.window_s),
        (b"ratelimit-remaining", str(max(0, verdict.remaining)).encode()),
        (b"ratelimit-reset", str(verdict.reset_s).encode()),
    ]


@functools.cache
def _constant_headers(limit: int, window_s: int) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"ratelimit-policy", f"{limit}; w={window_s}".encode()),
            (b"ratelimit-limit", str(limit).encode()))  # fmt: skip


class RateLimitMiddleware(AbstractMiddleware):
    """Spends one unit of the client's budget per request; see the module docstring."""

    def __init__(
        self, app: ASGIApp, limiter: RateLimiter, proxies: Sequence[IPNetwork] = ()
    ) -> None:
        super().__init__(
            app, exclude=["^/schema"], exclude_opt_key=EXEMPT_OPT, scopes={ScopeType.HTTP}
        )
        self.limiter = limiter
        self.proxies = tuple(proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        forwarded = _forwarded_for(scope) if self.proxies else None
        verdict = await self.limiter.check(client_address(peer, forwarded, self.proxies))
        if not verdict.allowed:
            headers = rate_limit_headers(verdict)
            headers["Retry-After"] = str(max(1, verdict.reset_s))
            raise TooManyRequestsException(detail=verdict.detail, headers=headers)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Appended to the raw list: no handler sets these names, so nothing to replace.
                message["headers"] = [*message.get("headers", ()), *_raw_headers(verdict)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
