"""`RateLimiter`: one budget per client address, from the `limits` library.

The strategy is limits' sliding window counter: two counters per client (this window's and the
last one's, weighted by how much of it still overlaps), so a check costs the same whatever the
limit, in memory and in Redis.

Without Redis the counters live in this process, in `LocalWindows`: the same algorithm as a
plain dict of three numbers per client, checked synchronously on the event loop (one thread, so
no lock): 2.7-5 µs per check, where limits' async memory storage, behind its asyncio lock, took
15-25 µs (same process, alternated rounds). With
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
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
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


class LocalWindows:
    """Sliding window counters in this process, for every client: limits' algorithm, in O(1).

    Windows are aligned to the Unix epoch, ``window_s`` long. A client's weighted count is its
    count in the current window plus the previous window's count times the share of that window
    still inside the last ``window_s`` seconds; a hit is admitted while the weighted count,
    rounded down, stays within the limit. Remaining and reset are computed as limits'
    ``get_window_stats`` computes them, so the ``RateLimit-*`` headers do not change with the
    storage. Clients idle for two windows are dropped when a new window starts.

    Not thread-safe, by design: the service calls it only from its event loop.
    """

    def __init__(self, amount: int, window_s: int, clock: Callable[[], float] = time.time):
        self.amount = amount
        self.window_s = window_s
        self.clock = clock
        self.counts: dict[str, tuple[int, int, int]] = {}
        """client -> (window number, hits in that window, hits in the one before)."""
        self._window = -1

    def hit(self, client: str) -> tuple[bool, int, float]:
        """Spend one unit if there is one: (allowed, remaining, seconds until the next reset)."""
        number, elapsed = divmod(self.clock(), self.window_s)
        window = int(number)
        if window != self._window:
            self._forget_before(window - 1)
            self._window = window
        current, previous = 0, 0
        entry = self.counts.get(client)
        if entry is not None:
            if entry[0] == window:
                current, previous = entry[1], entry[2]
            elif entry[0] == window - 1:
                previous = entry[1]
        left = self.window_s - elapsed
        weighted = previous * left / self.window_s + current
        allowed = math.floor(weighted) + 1 <= self.amount
        if allowed:
            current += 1
            weighted += 1
        self.counts[client] = (window, current, previous)
        remaining = max(0, self.amount - math.floor(weighted))
        reset_in = left % self.window_s if current else 0.0
        if previous:
            reset_in = min(reset_in if current else math.inf, left % (self.window_s / previous))
        return allowed, remaining, reset_in

    def _forget_before(self, window: int) -> None:
        stale = [client for client, entry in self.counts.items() if entry[0] < window]
        for client in stale:
            del self.counts[client]


class RateLimiter:
    """``check(client)`` spends one unit of that client's budget, if there is one left."""

    def __init__(
        self, limit: RateLimit, link: RedisLink | None = None, fallback: RateFallback = "local"
    ) -> None:
        self.item: RateLimitItem = parse(f"{limit.count}/{limit.unit}")
        self.window_s = self.item.get_expiry()
        self.link = link
        self.fallback = fallback
        self.local = LocalWindows(self.limit, self.window_s)
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

    def check_local(self, client: str) -> Verdict:
        """Spend from this process's budget (no Redis, or Redis down with ``local`` fallback)."""
        allowed, remaining, reset_in = self.local.hit(client)
        reset = math.ceil(reset_in)
        return Verdict(allowed, self.limit, remaining, reset if allowed else max(1, reset),
                       self.window_s)  # fmt: skip

    async def check(self, client: str) -> Verdict:
        if self.shared is None or self.link is None:
            return self.check_local(client)
        shared = self.shared
        verdict = await self.link.call("rate limit", lambda _: self._shared(shared, client))
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
        return self.check_local(client)

    async def _shared(self, limiter: SlidingWindowCounterRateLimiter, client: str) -> Verdict:
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
