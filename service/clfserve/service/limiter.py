"""`RateLimiter`: one budget per client address, as a sliding window counter.

Two counters per client, this window's and the last one's (windows aligned to the Unix epoch);
the last one counts by the share of it still inside the last ``window`` seconds. A request is
admitted while that weighted count, rounded down, plus one stays within the limit. A check
costs the same whatever the limit, in memory and in Redis. It is the algorithm of the `limits`
library (which Flask-Limiter and slowapi build on), and `LocalWindows` is tested against it
decision by decision.

Without Redis the counters live in this process, in `LocalWindows`: a dict of three numbers per
client, checked synchronously on the event loop (one thread, so no lock): 2.7-5 µs per check,
where limits' async memory storage, behind its asyncio lock, took 15-25 µs (same process,
alternated rounds). With ``CLFSERVE_REDIS_URL`` they live in Redis (`RedisWindows`) and every
replica and worker spends one budget: each check is one Lua script that Redis runs atomically
and that answers the headers' numbers too (one round trip), so concurrent requests on any
number of processes cannot both take the last unit.

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
from typing import Any

from redis.asyncio import Redis

from clfserve.service.redislink import UNAVAILABLE, RedisLink
from clfserve.service.settings import RateFallback, RateLimit

WINDOW_S = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


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
        allowed = math.floor(previous * left / self.window_s + current) + 1 <= self.amount
        if allowed:
            current += 1
        self.counts[client] = (window, current, previous)
        return (allowed, *window_stats(self.amount, self.window_s, previous, left, current, left))

    def _forget_before(self, window: int) -> None:
        stale = [client for client, entry in self.counts.items() if entry[0] < window]
        for client in stale:
            del self.counts[client]


def window_stats(
    amount: int, window_s: float, previous: int, previous_left_s: float, current: int,
    current_left_s: float,
) -> tuple[int, float]:  # fmt: skip
    """(remaining, seconds until the budget next grows) after a check, as limits'
    ``get_window_stats`` computes them: ``*_left_s`` is how long each counter still counts."""
    remaining = max(0, amount - math.floor(previous * previous_left_s / window_s + current))
    reset_in = current_left_s % window_s if current else math.inf
    if previous:
        reset_in = min(reset_in, previous_left_s % (window_s / previous))
    return remaining, 0.0 if math.isinf(reset_in) else reset_in


_REDIS_HIT = """
-- KEYS[1]: the previous window's counter, KEYS[2]: the current one's; ARGV: limit, window (ms).
-- The current counter lives two windows; once one window is left it becomes the previous one.
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local current_ttl = tonumber(redis.call('pttl', KEYS[2]))
if current_ttl > 0 and current_ttl < window then
    redis.call('rename', KEYS[2], KEYS[1])
    redis.call('set', KEYS[2], 0, 'PX', current_ttl + window)
end
local previous = tonumber(redis.call('get', KEYS[1])) or 0
local previous_ttl = math.max(0, tonumber(redis.call('pttl', KEYS[1])))
local current = tonumber(redis.call('get', KEYS[2])) or 0
current_ttl = math.max(0, tonumber(redis.call('pttl', KEYS[2])))
local allowed = 0
if math.floor(previous * previous_ttl / window) + current + 1 <= limit then
    allowed = 1
    if redis.call('exists', KEYS[2]) == 1 then
        current = redis.call('incrby', KEYS[2], 1)
    else
        redis.call('set', KEYS[2], 1, 'PX', window * 2)
        current, current_ttl = 1, window * 2
    end
end
return {allowed, previous, previous_ttl, current, current_ttl}
"""


class RedisWindows:
    """The same counters in Redis, shared by every process naming it: one script per check."""

    def __init__(self, link: RedisLink, amount: int, window_s: int) -> None:
        self.link = link
        self.amount = amount
        self.window_s = window_s
        self._script: Any = None  # registered on the link's client at first use

    def keys(self, client: str) -> list[str]:
        base = self.link.key("ratelimit", f"{self.amount}/{self.window_s}s", client)
        return [f"{base}:previous", f"{base}:current"]

    async def check(self, redis: Redis, client: str) -> tuple[bool, int, float]:
        """(allowed, remaining, seconds until the next reset), like `LocalWindows.hit`."""
        if self._script is None:
            self._script = redis.register_script(_REDIS_HIT)
        reply = await self._script(
            keys=self.keys(client), args=[self.amount, self.window_s * 1000], client=redis
        )
        allowed, previous, previous_ms, current, current_ms = (int(x) for x in reply)
        stats = window_stats(
            self.amount, self.window_s, previous, previous_ms / 1000, current, current_ms / 1000
        )
        return (bool(allowed), *stats)


class RateLimiter:
    """``check(client)`` spends one unit of that client's budget, if there is one left."""

    def __init__(
        self, limit: RateLimit, link: RedisLink | None = None, fallback: RateFallback = "local"
    ) -> None:
        self.limit = limit.count
        self.window_s = WINDOW_S[limit.unit]
        self.link = link
        self.fallback = fallback
        self.local = LocalWindows(self.limit, self.window_s)
        self.shared = None if link is None else RedisWindows(link, self.limit, self.window_s)

    def check_local(self, client: str) -> Verdict:
        """Spend from this process's budget (no Redis, or Redis down with ``local`` fallback)."""
        return self._verdict(*self.local.hit(client))

    async def check(self, client: str) -> Verdict:
        if self.shared is None or self.link is None:
            return self.check_local(client)
        shared = self.shared
        outcome = await self.link.call("rate limit", lambda redis: shared.check(redis, client))
        if outcome is not UNAVAILABLE:
            assert isinstance(outcome, tuple)
            return self._verdict(*outcome)
        if self.fallback == "open":
            return Verdict(True, self.limit, self.limit, self.window_s, self.window_s)
        if self.fallback == "closed":
            retry = max(1, math.ceil(self.link.retry_s))
            return Verdict(
                False, self.limit, 0, retry, self.window_s,
                "the shared rate-limit store is unreachable and limits fail closed; retry later",
            )  # fmt: skip
        return self.check_local(client)

    def _verdict(self, allowed: bool, remaining: int, reset_in: float) -> Verdict:
        reset = math.ceil(reset_in)
        return Verdict(allowed, self.limit, remaining, reset if allowed else max(1, reset),
                       self.window_s)  # fmt: skip
