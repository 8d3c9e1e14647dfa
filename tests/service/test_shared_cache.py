"""The Redis layer of the prediction cache, on a real redis-server: shared, bounded, expiring,
never another model's or another text's answer, and silent when Redis is gone."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from prometheus_client import CollectorRegistry
from service_fakes import fake_info, fake_prediction

from clfserve.service.redislink import RedisLink
from clfserve.service.sharedcache import SharedPredictionCache
from redis_process import RedisProcess

pytestmark = pytest.mark.anyio


def shared(redis: RedisProcess, slots: int = 1000, ttl_s: float = 60.0) -> SharedPredictionCache:
    registry = CollectorRegistry()
    link = RedisLink(redis.url, prefix="t", timeout_s=0.5, retry_s=0.2, registry=registry)
    return SharedPredictionCache(link, slots, ttl_s, registry)


async def test_an_answer_stored_by_one_replica_is_a_hit_on_another(
    redis_server: RedisProcess,
) -> None:
    a, b = shared(redis_server), shared(redis_server)
    info = fake_info()
    await a.put_many(info, ["x", "y"], [fake_prediction("x"), fake_prediction("y")])
    assert await b.get_many(info, ["y", "nope", "x"]) == [
        fake_prediction("y"), None, fake_prediction("x"),
    ]  # fmt: skip
    assert b.hits._value.get() == 2  # type: ignore[attr-defined]


async def test_another_model_or_variant_misses(redis_server: RedisProcess) -> None:
    cache = shared(redis_server)
    v1 = fake_info("v1", checksum="aaa")
    await cache.put_many(v1, ["a"], [fake_prediction("a")])
    assert await cache.get_many(fake_info("v2", checksum="bbb"), ["a"]) == [None]
    assert await cache.get_many(dataclasses.replace(v1, variant="fp32"), ["a"]) == [None]
    assert await cache.get_many(v1, ["a"]) == [fake_prediction("a")]


async def test_entries_expire(redis_server: RedisProcess) -> None:
    cache = shared(redis_server, ttl_s=0.3)
    await cache.put_many(fake_info(), ["a"], [fake_prediction("a")])
    assert await cache.get_many(fake_info(), ["a"]) == [fake_prediction("a")]
    await asyncio.sleep(0.6)
    assert await cache.get_many(fake_info(), ["a"]) == [None]


async def test_redis_holds_at_most_the_slots_and_never_a_wrong_answer(
    redis_server: RedisProcess,
) -> None:
    cache = shared(redis_server, slots=8)
    info = fake_info()
    texts = [f"text {i}" for i in range(200)]
    await cache.put_many(info, texts, [fake_prediction(t) for t in texts])
    assert redis_server.dbsize() <= 8
    found = await cache.get_many(info, texts)
    assert 1 <= sum(hit is not None for hit in found) <= 8
    assert all(hit in (None, fake_prediction(t)) for t, hit in zip(texts, found, strict=True))


async def test_redis_gone_means_misses_and_dropped_writes_not_errors(
    redis_server: RedisProcess,
) -> None:
    cache = shared(redis_server)
    await cache.put_many(fake_info(), ["a"], [fake_prediction("a")])
    redis_server.kill()
    assert await cache.get_many(fake_info(), ["a"]) == [None]
    await cache.put_many(fake_info(), ["b"], [fake_prediction("b")])
    assert not cache.link.up


@pytest.mark.parametrize(
    "junk",
    [
        "not json",
        '["a", "list"]',
        '{"t": "wrong shape"}',
        '{"t": "%s", "l": 1, "s": 0.5, "p": {}, "x": true, "n": 1}',  # the tag, a bad label
    ],
)
async def test_whatever_else_sits_in_a_slot_is_a_miss_until_overwritten(
    redis_server: RedisProcess, junk: str
) -> None:
    cache = shared(redis_server, slots=1)
    slot = cache.link.key("cache", "0")
    await cache.put_many(fake_info(), ["a"], [fake_prediction("a")])
    stored = redis_server.command("GET", slot).split(b"\r\n")[1]  # a bulk string: $N, value
    tag = json.loads(stored)["t"]
    assert redis_server.command("SET", slot, junk.replace("%s", tag)) == b"+OK\r\n"
    assert await cache.get_many(fake_info(), ["a"]) == [None]
    await cache.put_many(fake_info(), ["a"], [fake_prediction("a")])
    assert await cache.get_many(fake_info(), ["a"]) == [fake_prediction("a")]
