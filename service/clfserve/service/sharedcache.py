"""`SharedPredictionCache`: the Redis layer of the prediction cache, shared by every replica.

Each answer lives in one of ``CLFSERVE_SHARED_CACHE_SIZE`` slots (a direct-mapped cache): the
slot is picked by a hash of the model's identity (`answers.model_key`) and the exact text, and
the entry carries a longer tag of the same hash, so a lookup only ever returns the answer of
that model for that text. Writing an answer into a slot replaces whatever was there; every entry
expires after ``CLFSERVE_CACHE_TTL``. So Redis holds at most that many entries, each lookup and
write is O(1) (one MGET, one pipelined SET per request), and nothing needs scanning or Lua.

A lookup or write that fails or times out counts as a miss / is skipped (see `redislink`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import msgspec
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis

from clfserve.runtime import ModelInfo, Prediction
from clfserve.service.answers import model_key
from clfserve.service.redislink import UNAVAILABLE, RedisLink

COMPONENT = "prediction cache"
_KEYS = {"tag": "t", "label": "l", "score": "s", "scores": "p", "truncated": "x", "n_tokens": "n"}
"""One-letter keys in Redis: entries stay small."""


class SharedPredictionCache:
    """Async ``get_many`` / ``put_many`` against Redis, bounded by ``slots`` entries."""

    def __init__(
        self, link: RedisLink, slots: int, ttl_s: float, registry: CollectorRegistry
    ) -> None:
        self.link = link
        self.slots = slots
        self.ttl_ms = max(1, round(ttl_s * 1000))
        self.hits = Counter(
            "clfserve_cache_shared_hits",
            "Prediction cache hits answered by the shared Redis layer (also counted in "
            "clfserve_cache_hits)",
            registry=registry,
        )

    def _locate(self, info: ModelInfo, text: str) -> tuple[str, str]:
        digest = hashlib.sha256(json.dumps([*model_key(info), text]).encode()).digest()
        slot = int.from_bytes(digest[:8], "big") % self.slots
        return self.link.key("cache", str(slot)), digest[8:24].hex()

    async def get_many(self, info: ModelInfo, texts: Sequence[str]) -> list[Prediction | None]:
        if not texts or not self.link.up:
            return [None] * len(texts)
        located = [self._locate(info, text) for text in texts]
        keys = [key for key, _ in located]

        async def fetch(client: Redis) -> list[bytes | str | None]:
            return list(await client.mget(keys))

        raw = await self.link.call(COMPONENT, fetch)
        if raw is UNAVAILABLE:
            return [None] * len(texts)
        assert isinstance(raw, list)
        found = [_decode(value, tag) for value, (_, tag) in zip(raw, located, strict=True)]
        self.hits.inc(sum(p is not None for p in found))
        return found

    async def put_many(
        self, info: ModelInfo, texts: Sequence[str], predictions: Sequence[Prediction]
    ) -> None:
        if not texts or not self.link.up:
            return
        entries = {
            key: _encode(tag, prediction)
            for text, prediction in zip(texts, predictions, strict=True)
            for key, tag in (self._locate(info, text),)
        }

        async def store(client: Redis) -> None:
            async with client.pipeline(transaction=False) as pipe:
                for key, value in entries.items():
                    pipe.set(key, value, px=self.ttl_ms)
                await pipe.execute()

        await self.link.call(COMPONENT, store)


class _Entry(msgspec.Struct, frozen=True, rename=_KEYS):
    """What a slot holds: the tag of the model and text it answers for, and the answer."""

    tag: str
    label: str
    score: float
    scores: dict[str, float]
    truncated: bool
    n_tokens: int


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(_Entry)


def _encode(tag: str, p: Prediction) -> bytes:
    return _ENCODER.encode(_Entry(tag, p.label, p.score, p.scores, p.truncated, p.n_tokens))


def _decode(raw: bytes | str | None, tag: str) -> Prediction | None:
    if raw is None:
        return None
    try:
        entry = _DECODER.decode(raw)
    except msgspec.DecodeError:  # includes ValidationError
        return None  # written by something else: a miss, and the next write replaces it
    if entry.tag != tag:  # another text (or model) owns this slot now
        return None
    return Prediction(entry.label, entry.score, entry.scores, entry.truncated, entry.n_tokens)
