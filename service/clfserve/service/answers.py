"""Answering texts: the prediction cache first, then the model through the gateway.

The cache is a bounded TTL cache (cachetools, behind a lock) keyed by the model's identity
(weights checksum and variant) and the exact text, so a different model never serves another
model's answers; those just age out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cachetools import TTLCache

from clfserve.runtime import ModelInfo, Prediction
from clfserve.service.gateway import InferenceGateway
from clfserve.service.metrics import ServiceMetrics

CacheKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Answer:
    """A prediction and whether it came from the cache."""

    prediction: Prediction
    cached: bool


def model_key(info: ModelInfo) -> tuple[str, str]:
    """Identity of the answers a model gives: its weights' checksum and the variant that runs."""
    return (info.checksum, info.variant)


class PredictionCache:
    """`TTLCache` behind a lock (cachetools is not thread-safe); a disabled cache is a no-op."""

    def __init__(
        self,
        maxsize: int,
        ttl: float,
        *,
        enabled: bool = True,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.maxsize = maxsize
        self.ttl = ttl
        self._cache: TTLCache[CacheKey, Prediction] = TTLCache(
            maxsize=maxsize, ttl=ttl, timer=timer
        )
        self._lock = threading.Lock()

    def get_many(self, info: ModelInfo, texts: Sequence[str]) -> list[Prediction | None]:
        if not self.enabled:
            return [None] * len(texts)
        identity = model_key(info)
        with self._lock:
            return [self._cache.get((*identity, text)) for text in texts]

    def put_many(
        self, info: ModelInfo, texts: Sequence[str], predictions: Sequence[Prediction]
    ) -> None:
        if not self.enabled:
            return
        identity = model_key(info)
        with self._lock:
            for text, prediction in zip(texts, predictions, strict=True):
                self._cache[(*identity, text)] = prediction

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)


class AnswerService:
    """What the prediction routes call: cache hits answer at once, misses go to the gateway."""

    def __init__(
        self, gateway: InferenceGateway, cache: PredictionCache, metrics: ServiceMetrics
    ) -> None:
        self.gateway = gateway
        self.cache = cache
        self.metrics = metrics

    async def answer(self, text: str) -> tuple[ModelInfo, Answer]:
        info = self.gateway.current()
        (hit,) = self.cache.get_many(info, (text,))
        if hit is not None:
            self._count(hits=1, misses=0)
            return info, Answer(hit, True)
        self._count(hits=0, misses=1)
        info, prediction = await self.gateway.predict(text)
        self.cache.put_many(info, (text,), (prediction,))
        return info, Answer(prediction, False)

    async def answer_many(self, texts: Sequence[str]) -> tuple[ModelInfo, list[Answer]]:
        info = self.gateway.current()
        found = self.cache.get_many(info, texts)
        missing = [text for text, hit in zip(texts, found, strict=True) if hit is None]
        self._count(hits=len(texts) - len(missing), misses=len(missing))
        if not missing:
            return info, [Answer(hit, True) for hit in found if hit is not None]
        info, fresh = await self.gateway.predict_texts(missing)
        self.cache.put_many(info, missing, fresh)
        by_text = dict(zip(missing, fresh, strict=True))
        return info, [
            Answer(hit, True) if hit is not None else Answer(by_text[text], False)
            for text, hit in zip(texts, found, strict=True)
        ]

    def _count(self, *, hits: int, misses: int) -> None:
        if self.cache.enabled:
            self.metrics.cache_hits.inc(hits)
            self.metrics.cache_misses.inc(misses)
        self.metrics.predictions.labels("cache").inc(hits)
        self.metrics.predictions.labels("model").inc(misses)
