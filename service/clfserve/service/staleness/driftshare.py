"""`SharedDriftWindows`: every replica's drift window, merged through the shared Redis.

Each replica writes its own window's bin counts (a few dozen integers) into one hash per model,
``{prefix}:drift:{model}``, field = the replica's name, at every drift check and every
``GET /staleness``; the same pipelined round trip reads the other replicas' fields. Fields older
than ``stale_s`` (a replica that stopped or serves another model now) are left out and deleted,
and the whole hash expires when no replica writes to it. The model is named by a hash of its
identity (`answers.model_key`), so a new version starts from empty windows everywhere.

The verdict turning to drifted is alerted once for the cluster: each replica that finds it
drifted swaps ``{prefix}:drift:{model}:verdict`` to ``drifted`` with ``SET ... GET``; only the one
that read a different previous value alerts. Every call is bounded and never raises (see
`redislink`): while Redis is unreachable the caller uses this replica's window alone.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from redis.asyncio import Redis

from clfserve.evaluation.drift import Binning, Profile
from clfserve.runtime import ModelInfo
from clfserve.service.answers import model_key
from clfserve.service.redislink import UNAVAILABLE, RedisLink
from clfserve.service.staleness.cluster import replica_name

COMPONENT = "drift window"


@dataclass(frozen=True)
class Shared:
    """Every live replica's window for one model."""

    windows: dict[str, Profile]
    """By replica name, this replica's included."""


@dataclass(eq=False)
class SharedDriftWindows:
    """Publishes this replica's window and reads the others' (see the module docstring)."""

    link: RedisLink
    stale_s: float
    _: KW_ONLY
    replica: str = field(default_factory=lambda: f"{replica_name()}:{secrets.token_hex(3)}")
    """This window's field: host:pid and a random tag (apps sharing one process differ)."""
    clock: Callable[[], float] = time.time

    def _key(self, info: ModelInfo, *more: str) -> str:
        digest = hashlib.sha256(json.dumps(model_key(info)).encode()).hexdigest()[:16]
        return self.link.key("drift", digest, *more)

    async def exchange(self, info: ModelInfo, own: Profile, binning: Binning) -> Shared | None:
        """Write ``own`` and read every live replica's window; None when Redis is unreachable."""
        key = self._key(info)
        now = self.clock()
        entry = json.dumps({"at": now, **own.to_json()}, separators=(",", ":"))
        ttl = max(1, round(self.stale_s))

        async def swap(client: Redis) -> dict[Any, Any]:
            async with client.pipeline(transaction=True) as pipe:
                pipe.hset(key, self.replica, entry)
                pipe.expire(key, ttl)
                pipe.hgetall(key)
                *_, everything = await pipe.execute()
            return dict(everything)

        raw = await self.link.call(COMPONENT, swap)
        if raw is UNAVAILABLE:
            return None
        assert isinstance(raw, dict)
        windows: dict[str, Profile] = {self.replica: own}
        gone: list[str] = []
        for name, value in raw.items():
            replica = name.decode() if isinstance(name, bytes) else str(name)
            if replica == self.replica:
                continue
            try:
                parsed = json.loads(value)
                if now - float(parsed["at"]) > self.stale_s:
                    gone.append(replica)
                    continue
                windows[replica] = Profile.from_json(parsed, binning)
            except (ValueError, KeyError, TypeError):
                gone.append(replica)  # written by something else: not a window we can merge
        if gone:
            await self.link.call(COMPONENT, lambda client: client.hdel(key, *gone))
        return Shared(windows)

    async def turned_drifted(self, info: ModelInfo, drifted: bool) -> bool | None:
        """Record the cluster's verdict; True when this call turned it to drifted (alert),
        None when Redis is unreachable (the caller decides for this replica alone)."""
        key = self._key(info, "verdict")
        value = "drifted" if drifted else "stable"

        async def swap(client: Redis) -> Any:
            return await client.set(key, value, get=True, ex=max(1, round(self.stale_s * 10)))

        previous = await self.link.call(COMPONENT, swap)
        if previous is UNAVAILABLE:
            return None
        if isinstance(previous, bytes):
            previous = previous.decode()
        return drifted and previous != "drifted"
