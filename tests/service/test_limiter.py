"""The rate-limit budget: O(1) per client, one budget across processes through a real Redis,
and what happens when Redis dies or hangs."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import pytest
from prometheus_client import CollectorRegistry

from clfserve.service.limiter import LocalWindows, RateLimiter
from clfserve.service.redislink import RedisLink
from clfserve.service.settings import RateFallback, RateLimit
from redis_process import RedisProcess

pytestmark = pytest.mark.anyio
TIMEOUT_S = 0.2


def link(redis: RedisProcess, timeout_s: float = TIMEOUT_S) -> RedisLink:
    """One "process": its own connection pool and gauge, like a replica."""
    return RedisLink(
        redis.url, prefix="t", timeout_s=timeout_s, retry_s=0.2, registry=CollectorRegistry()
    )


def replicas(
    redis: RedisProcess,
    count: int,
    limit: RateLimit,
    fallback: RateFallback = "local",
    timeout_s: float = TIMEOUT_S,
) -> list[RateLimiter]:
    return [RateLimiter(limit, link(redis, timeout_s), fallback) for _ in range(count)]


async def allowed(limiter: RateLimiter, client: str, n: int) -> int:
    return sum([(await limiter.check(client)).allowed for _ in range(n)])


async def test_local_budget_counts_down_and_refuses_with_a_reset() -> None:
    limiter = RateLimiter(RateLimit(3, "minute"))
    verdicts = [await limiter.check("a") for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    assert 1 <= verdicts[-1].reset_s <= 60
    assert (verdicts[0].limit, verdicts[0].window_s) == (3, 60)
    assert (await limiter.check("b")).allowed  # another client, another budget


async def test_a_huge_limit_keeps_one_small_entry_per_client_not_a_history() -> None:
    limiter = RateLimiter(RateLimit(100_000_000, "minute"))
    await allowed(limiter, "a", 2000)
    assert list(limiter.local.counts) == ["a"]
    assert limiter.local.counts["a"][1:] == (2000, 0)  # this window's hits, the last one's


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_previous_window_counts_by_how_much_of_it_still_overlaps() -> None:
    clock = Clock(600.0)  # the start of a 60 s window
    windows = LocalWindows(10, 60, clock)
    assert sum(windows.hit("a")[0] for _ in range(10)) == 10
    assert not windows.hit("a")[0]
    clock.now = 660.0 + 15  # a quarter into the next window: 7.5 of the 10 still count
    assert [windows.hit("a")[0] for _ in range(4)] == [True, True, True, False]
    clock.now = 660.0 + 45  # three quarters in: 2.5 of the old 10, plus the 3 new ones
    allowed_now, remaining, _ = windows.hit("a")
    assert (allowed_now, remaining) == (True, 4)


def test_idle_clients_are_forgotten_after_two_windows() -> None:
    clock = Clock(0.0)
    windows = LocalWindows(5, 1, clock)
    windows.hit("old")
    clock.now = 1.5
    windows.hit("new")
    assert set(windows.counts) == {"old", "new"}  # "old" still weighs on this window
    clock.now = 2.5
    windows.hit("new")
    assert set(windows.counts) == {"new"}


async def test_local_windows_decide_as_the_limits_library_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same hits at the same (simulated) times: limits' sliding window counter on its memory
    storage and `LocalWindows` admit the same requests and report the same headers."""
    from limits import parse
    from limits.aio.storage import MemoryStorage
    from limits.aio.strategies import SlidingWindowCounterRateLimiter

    clock = Clock(1_000_000.0 + 17.3)
    monkeypatch.setattr(time, "time", clock)
    reference = SlidingWindowCounterRateLimiter(MemoryStorage())
    item = parse("7/minute")
    ours = LocalWindows(7, 60, clock)
    rng = random.Random(5)
    for step in range(400):
        clock.now += rng.choice([0.1, 0.5, 2.0, 7.0, 13.0, 61.0]) if step % 3 == 0 else 0.01
        client = rng.choice("ab")
        expected_allowed = await reference.hit(item, client)
        stats = await reference.get_window_stats(item, client)
        allowed_now, remaining, reset_in = ours.hit(client)
        assert (allowed_now, remaining) == (expected_allowed, stats.remaining), step
        assert reset_in == pytest.approx(stats.reset_time - clock.now, abs=1e-6), step


async def test_redis_verdicts_count_down_and_refuse_like_local_ones(
    redis_server: RedisProcess,
) -> None:
    (shared,) = replicas(redis_server, 1, RateLimit(5, "day"))
    local = RateLimiter(RateLimit(5, "day"))
    for limiter in (shared, local):
        verdicts = [await limiter.check("a") for _ in range(7)]
        assert [v.allowed for v in verdicts] == [True] * 5 + [False] * 2
        assert [v.remaining for v in verdicts] == [4, 3, 2, 1, 0, 0, 0]
        assert all(1 <= v.reset_s <= 86_400 for v in verdicts[5:])
        assert (verdicts[0].limit, verdicts[0].window_s) == (5, 86_400)
    assert shared.link is not None
    assert shared.link.up  # answered by Redis, not the fallback


async def test_replicas_share_one_budget(redis_server: RedisProcess) -> None:
    a, b, c = replicas(redis_server, 3, RateLimit(10, "minute"))
    total = 0
    for _ in range(10):
        for limiter in (a, b, c):
            total += (await limiter.check("client")).allowed
    assert total == 10
    assert (await a.check("other")).allowed


async def test_concurrent_bursts_on_many_replicas_never_overspend(
    redis_server: RedisProcess,
) -> None:
    limit = 50
    # A generous timeout: 200 checks in flight in one test loop on a busy machine is slow.
    many = replicas(redis_server, 4, RateLimit(limit, "minute"), timeout_s=5.0)
    verdicts = await asyncio.gather(*(many[i % 4].check("burst") for i in range(200)))
    assert all(limiter.link is not None and limiter.link.up for limiter in many)  # all shared
    assert sum(v.allowed for v in verdicts) == limit


async def test_redis_holds_two_small_keys_per_client_whatever_the_limit(
    redis_server: RedisProcess,
) -> None:
    (limiter,) = replicas(redis_server, 1, RateLimit(100_000_000, "minute"))
    await allowed(limiter, "a", 500)
    assert redis_server.dbsize() <= 2
    assert redis_server.command("TYPE", _only_key(redis_server)).strip() == b"+string"


def _only_key(redis: RedisProcess) -> str:
    reply = redis.command("KEYS", "*").decode()
    return next(line for line in reply.split("\r\n") if line.startswith("t:"))


async def test_redis_killed_degrades_to_local_with_a_warning_then_recovers(
    redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = replicas(redis_server, 2, RateLimit(4, "minute"))
    assert await allowed(a, "c", 2) + await allowed(b, "c", 2) == 4
    redis_server.kill()
    caplog.set_level(logging.WARNING, "clfserve.service.redislink")
    started = time.monotonic()
    local = await allowed(a, "c", 6)
    assert time.monotonic() - started < 2 * TIMEOUT_S + 1.0  # one bounded failure, then local
    assert local == 4  # a's own budget, counted in a from now on
    assert a.link is not None
    assert not a.link.up
    assert a.link.gauge._value.get() == 0  # type: ignore[attr-defined]
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1

    redis_server.start()  # same port
    assert b.link is not None
    assert await a.link.probe()
    assert await b.link.probe()
    assert a.link.up
    assert a.link.gauge._value.get() == 1  # type: ignore[attr-defined]
    assert await allowed(a, "fresh", 2) + await allowed(b, "fresh", 5) == 4  # shared again


@pytest.mark.parametrize(("fallback", "expected"), [("open", 5), ("closed", 0)])
async def test_fallback_open_or_closed(
    redis_server: RedisProcess, fallback: RateFallback, expected: int
) -> None:
    (limiter,) = replicas(redis_server, 1, RateLimit(2, "minute"), fallback)
    redis_server.kill()
    verdicts = [await limiter.check("c") for _ in range(5)]
    assert sum(v.allowed for v in verdicts) == expected
    if fallback == "closed":
        assert "unreachable" in verdicts[0].detail
        assert verdicts[0].reset_s >= 1


async def test_a_hung_redis_costs_one_bounded_wait(redis_server: RedisProcess) -> None:
    (limiter,) = replicas(redis_server, 1, RateLimit(100, "minute"))
    assert (await limiter.check("c")).allowed  # connected
    redis_server.pause()
    try:
        started = time.monotonic()
        verdicts = [await limiter.check("c") for _ in range(20)]
        elapsed = time.monotonic() - started
    finally:
        redis_server.resume()
    assert all(v.allowed for v in verdicts)
    assert elapsed < 2 * TIMEOUT_S + 1.0
