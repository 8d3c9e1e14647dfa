"""Claims of staleness runs in a real Redis: one replica per run, safe when a holder dies,
skipped while Redis is gone; results shared, newest first."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from prometheus_client import CollectorRegistry
from service_fakes import fake_info

from clfserve.service.redislink import RedisLink
from clfserve.service.settings import Schedule
from clfserve.service.staleness.cluster import ClusterSchedule
from clfserve.service.staleness.record import Evaluation
from redis_process import RedisProcess

pytestmark = pytest.mark.anyio
EVERY_10_S = Schedule(seconds=10.0)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def replica(redis: RedisProcess, name: str, clock: Clock, history: int = 3) -> ClusterSchedule:
    link = RedisLink(
        redis.url, prefix="t", timeout_s=0.5, retry_s=0.2, registry=CollectorRegistry()
    )
    return ClusterSchedule(link, EVERY_10_S, history, replica=name, clock=clock)


async def test_each_scheduled_run_is_claimed_by_exactly_one_replica(
    redis_server: RedisProcess,
) -> None:
    clock = Clock(1_000_000.2)  # just after a multiple of 10 s, as every replica fires
    replicas = [replica(redis_server, f"r{i}", clock) for i in range(3)]
    won = [await r.claim("scheduled", None) for r in replicas]
    assert won.count(True) == 1
    clock.now += 0.5  # a late firing of the same run
    assert not any([await r.claim("scheduled", None) for r in replicas])
    clock.now = 1_000_010.1  # the next run: claimable again, even if its winner died
    assert [await r.claim("scheduled", None) for r in reversed(replicas)].count(True) == 1


async def test_startup_and_swap_run_once_per_model_admin_always(
    redis_server: RedisProcess,
) -> None:
    clock = Clock(2_000_000.0)
    a, b = replica(redis_server, "a", clock), replica(redis_server, "b", clock)
    v1, v2 = fake_info("v1", checksum="1"), fake_info("v2", checksum="2")
    assert await a.claim("startup", v1)
    assert not await b.claim("startup", v1)
    assert not await b.claim("swap", v1)  # already evaluated by a
    assert await b.claim("swap", v2)
    assert await a.claim("admin", v1)
    assert await b.claim("admin", v1)


async def test_redis_gone_skips_the_run_with_a_warning(
    redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    r = replica(redis_server, "a", Clock(3_000_000.0))
    redis_server.kill()
    caplog.set_level(logging.WARNING)
    assert not await r.claim("scheduled", None)
    assert any("skipped" in record.getMessage() for record in caplog.records)
    assert await r.shared_history() is None


async def test_results_are_shared_newest_first_and_trimmed(redis_server: RedisProcess) -> None:
    clock = Clock(4_000_000.0)
    a, b = replica(redis_server, "a", clock), replica(redis_server, "b", clock)
    for i in range(5):
        evaluation = Evaluation(i, "scheduled", "f1", 0.8, f"2026-11-27T00:00:0{i}Z")
        await (a if i % 2 else b).publish(dataclasses.replace(evaluation, error="no data"))
    history = await b.shared_history()
    assert history is not None
    assert [(e["id"], e["replica"]) for e in history] == [(4, "b"), (3, "a"), (2, "b")]
    assert history[0]["status"] == "error"


def test_runs_are_named_by_the_clock(redis_server: RedisProcess) -> None:
    clock = Clock(1_000_009.7)  # a firing at 1_000_010 that ran 0.3 s early (clock skew)
    r = replica(redis_server, "a", clock)
    assert r.first_fire_at(1_000_003.0) == 1_000_010.0
    assert r.run_name("scheduled", None) == "scheduled:100001"
    clock.now = 1_000_014.9  # ... or 4.9 s late
    assert r.run_name("scheduled", None) == "scheduled:100001"
    cron = ClusterSchedule(r.link, Schedule(cron="0 3 * * *"), 3, clock=Clock(180.0))
    assert (cron.run_s, cron.run_name("scheduled", None)) == (60.0, "scheduled:3")
