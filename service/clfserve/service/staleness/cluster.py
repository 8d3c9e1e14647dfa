"""`ClusterSchedule`: one staleness evaluation per interval across replicas sharing a Redis.

Every replica runs the schedule; before an evaluation, a replica claims it with
``SET {prefix}:staleness:claim:{run} NX EX ttl``. Only the replica whose SET succeeded evaluates;
the others skip. A claim names its run, not its holder's life: a replica that dies holding one
blocks nothing (the next run has another key, and each key expires by itself).

Which run a firing belongs to:

- ``scheduled``: interval schedules fire on the clock's multiples of the interval (every replica
  computes the same instants), and the run is ``round(now / interval)``; cron schedules fire on
  the same minute everywhere, and the run is that minute. Replica clocks must agree to within
  half an interval (NTP does).
- ``startup`` and ``swap``: the model's identity, so a rolling restart or a new version is
  evaluated once, not once per replica (claims last one interval, at most a day).
- ``admin``: never claimed; the replica asked evaluates.

Every evaluation is published (``{prefix}:staleness:history``, newest first, trimmed to
``CLFSERVE_STALENESS_HISTORY``), so ``GET /staleness`` on any replica shows the latest result.
While Redis is unreachable, scheduled, startup and swap runs are skipped with a WARNING (rather
than run once per replica) and ``GET /staleness`` shows this replica's own results.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from clfserve.runtime import ModelInfo
from clfserve.service.answers import model_key
from clfserve.service.redislink import UNAVAILABLE, RedisLink
from clfserve.service.settings import Schedule
from clfserve.service.staleness.monitor import StalenessMonitor
from clfserve.service.staleness.record import Evaluation, Trigger

log = logging.getLogger(__name__)

COMPONENT = "staleness schedule"
MAX_CLAIM_S = 86_400.0
CRON_RUN_S = 60.0
SUMMARY_KEYS = ("status", "verdict", "stale", "metric", "value", "threshold", "accuracy",
                "macro_f1", "n_samples", "finished_at", "error", "stale_on")  # fmt: skip
"""What ``GET /model`` shows of the latest evaluation (`Evaluation.summary`)."""


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(eq=False)
class ClusterSchedule:
    """Claims runs and shares results through ``link`` (see the module docstring)."""

    link: RedisLink
    schedule: Schedule
    history: int
    _: KW_ONLY
    replica: str = field(default_factory=replica_name)
    clock: Callable[[], float] = time.time

    @property
    def run_s(self) -> float:
        """How long one scheduled run lasts: the interval, or a minute for cron schedules."""
        return self.schedule.seconds if self.schedule.seconds is not None else CRON_RUN_S

    def first_fire_at(self, now: float) -> float:
        """The next multiple of the interval: where every replica's interval trigger starts."""
        return math.ceil(now / self.run_s) * self.run_s

    def run_name(self, trigger: Trigger, info: ModelInfo | None) -> str | None:
        """The name of the run a firing belongs to, or None when it is not claimed."""
        if trigger == "scheduled":
            return f"scheduled:{round(self.clock() / self.run_s)}"
        if trigger in ("startup", "swap"):
            identity = "-" if info is None else ":".join(model_key(info))
            return f"model:{identity}"
        return None

    async def claim(self, trigger: Trigger, info: ModelInfo | None) -> bool:
        """True when this replica should run the evaluation; False when another does (or
        Redis is unreachable, so nobody can tell: skipped, with a WARNING)."""
        name = self.run_name(trigger, info)
        if name is None:
            return True
        key = self.link.key("staleness", "claim", name)
        ttl = max(1, math.ceil(min(MAX_CLAIM_S, 2 * self.run_s)))

        async def take(client: Redis) -> bool:
            return bool(await client.set(key, self.replica, nx=True, ex=ttl))

        won = await self.link.call(COMPONENT, take)
        if won is UNAVAILABLE:
            log.warning(
                "%s staleness evaluation skipped: Redis is unreachable, so this replica cannot "
                "tell whether another one runs it", trigger,
            )  # fmt: skip
            return False
        if not won:
            log.debug("%s evaluation %s is run by another replica", trigger, name)
        return bool(won)

    async def publish(self, evaluation: Evaluation) -> None:
        entry = json.dumps({**evaluation.to_json(), "replica": self.replica})
        key = self.link.key("staleness", "history")

        async def push(client: Redis) -> None:
            async with client.pipeline(transaction=True) as pipe:
                pipe.lpush(key, entry)
                pipe.ltrim(key, 0, self.history - 1)
                await pipe.execute()

        await self.link.call(COMPONENT, push)

    async def shared_history(self) -> list[dict[str, Any]] | None:
        """Every replica's latest evaluations, newest first; None when Redis is unreachable."""
        key = self.link.key("staleness", "history")

        async def read(client: Redis) -> list[bytes | str]:
            return list(await client.lrange(key, 0, self.history - 1))

        raw = await self.link.call(COMPONENT, read)
        if raw is UNAVAILABLE:
            return None
        assert isinstance(raw, list)
        out = []
        for item in raw:
            try:
                entry = json.loads(item)
            except ValueError:
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out

    async def sync(self, monitor: StalenessMonitor) -> list[dict[str, Any]] | None:
        """The shared history (None when unreachable); its newest entry, when newer than this
        replica's own latest, becomes this replica's ``GET /model`` verdict and gauges."""
        history = await self.shared_history()
        if history:
            adopt(monitor, history[0])
        return history


def adopt(monitor: StalenessMonitor, entry: dict[str, Any]) -> None:
    """Show another replica's newer evaluation in this replica's ``/model`` and gauges."""
    finished = entry.get("finished_at")
    own = monitor.latest
    if not isinstance(finished, str) or (own is not None and (own.finished_at or "") >= finished):
        return
    monitor.gateway.state.staleness = {key: entry.get(key) for key in SUMMARY_KEYS}
    gauges = monitor.gauges
    try:
        gauges.last_timestamp.set(datetime.fromisoformat(finished).timestamp())
        if entry.get("verdict") is not None:
            gauges.accuracy.set(float(entry["accuracy"]))
            gauges.f1.set(float(entry["macro_f1"]))
            gauges.stale.set(1 if entry.get("stale") or entry.get("stale_on") else 0)
    except (KeyError, TypeError, ValueError):
        log.debug("shared staleness entry without scores: %s", entry.get("id"))
