"""Per-client rate limiting with Litestar's `RateLimitConfig`, keyed on the real client address.

``X-Forwarded-For`` is believed only when the peer is a configured trusted proxy; then the client
is the right-most address in the chain that is not itself a trusted proxy. Anyone else sending
the header is keyed on their own address, so the header cannot dodge a limit.

The counters live in the process (Litestar's default memory store): with ``--workers N`` a
client may make up to N times the limit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Any

from litestar import Request
from litestar.middleware.rate_limit import RateLimitConfig

from clfserve.service.settings import IPNetwork, RateLimit

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


def identifier_for(proxies: Sequence[IPNetwork]) -> Callable[[Request[Any, Any, Any]], str]:
    def identify(request: Request[Any, Any, Any]) -> str:
        peer = request.client.host if request.client else "unknown"
        return client_address(peer, request.headers.get("x-forwarded-for"), proxies)

    return identify


def rate_limit_config(limit: RateLimit, proxies: Sequence[IPNetwork]) -> RateLimitConfig:
    return RateLimitConfig(
        rate_limit=(limit.unit, limit.count),
        exclude=["^/schema"],
        exclude_opt_key=EXEMPT_OPT,
        identifier_for_request=identifier_for(tuple(proxies)),
    )
