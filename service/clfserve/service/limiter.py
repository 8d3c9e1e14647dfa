"""`RateLimiter`: one budget per client address, from the `limits` library.

The strategy is limits' sliding window counter: two counters per client (this window's and the
last one's, weighted by how much of it still overlaps), so a check costs the same whatever the
limit, in memory and in Redis.

Without Redis the counters live in this process (limits' async memory storage). With
``CLFSERVE_REDIS_URL`` they live in Redis and every replica and worker spends one budget: each
check is one Lua script that Redis runs atomically, so concurrent requests on any number of
processes cannot both take the last unit.

How far over the limit a client can get:

- Redis up: concurrency adds nothing. The sliding window is an approximation: within any span
  of ``t`` seconds (``t`` ≤ the window), at most ``limit x (1 + t / window) + 1`` requests are
  admitted (evenly spread traffic gets exactly the limit; the worst case, a full previous window
  bunched at its end, is twice the limit over one rolling window).
- Redis unreachable: ``CLFSERVE_RATE_LIMIT_FALLBACK`` decides. ``local`` (default) counts in
  each process, so N processes admit up to N times the above for as long as the outage lasts;
  ``open`` admits everything; ``closed`` answers 429 to every limited request.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from clfserve.service.redislink import UNAVAILABLE, RedisLink
from clfserve.service.settings import RateFallback, RateLimit


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a request may pass, and what its ``RateLimit-*`` headers say."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    """Seconds until the budget has room again (``RateLimit-Reset``, ``Retry-After``)."""
    window_s: int
    detail: str = "rate limit exceeded for this client address"


class RateLimiter:
    """``check(client)`` spends one unit of that client's budget, if there is one left."""

    def __init__(
        self, limit: RateLimit, link: RedisLink | None = None, fallback: RateFallback = "local"
    ) -> None:
        self.item: RateLimitItem = parse(f"{limit.count}/{limit.unit}")
        self.window_s = self.item.get_expiry()
        self.link = link
        self.fallback = fallback
        self.local = SlidingWindowCounterRateLimiter(MemoryStorage())
        self.shared: SlidingWindowCounterRateLimiter | None = None
        if link is not None:
            storage = RedisStorage(
                _limits_uri(link.url),
                implementation="redispy",
                key_prefix=link.key("ratelimit"),
                connection_pool=link.pool,  # type: ignore[arg-type]  # the link's timeouts
            )
            self.shared = SlidingWindowCounterRateLimiter(storage)

    @property
    def limit(self) -> int:
        return int(self.item.amount)

    async def check(self, client: str) -> Verdict:
        if self.shared is None or self.link is None:
            return await self._decide(self.local, client)
        shared = self.shared
        verdict = await self.link.call("rate limit", lambda _: self._decide(shared, client))
        if verdict is not UNAVAILABLE:
            assert isinstance(verdict, Verdict)
            return verdict
        if self.fallback == "open":
            return Verdict(True, self.limit, self.limit, self.window_s, self.window_s)
        if self.fallback == "closed":
            retry = max(1, math.ceil(self.link.retry_s))
            return Verdict(
                False, self.limit, 0, retry, self.window_s,
                "the shared rate-limit store is unreachable and limits fail closed; retry later",
            )  # fmt: skip
        return await self._decide(self.local, client)

    async def _decide(self, limiter: SlidingWindowCounterRateLimiter, client: str) -> Verdict:
        allowed = await limiter.hit(self.item, client)
        stats = await limiter.get_window_stats(self.item, client)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return Verdict(
            allowed, self.limit, int(stats.remaining), reset if allowed else max(1, reset),
            self.window_s,
        )  # fmt: skip


def _limits_uri(url: str) -> str:
    """limits' name for a redis-py URL (the connection itself comes from the link's pool)."""
    scheme, _, rest = url.partition("://")
    return f"async+redis+unix://{rest}" if scheme == "unix" else f"async+{scheme}://{rest}"
