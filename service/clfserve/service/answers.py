"""Answering texts: the prediction cache first, then the model through the gateway.

The cache is a bounded TTL cache (cachetools, behind a lock) keyed by the model's identity
(name, version, weights checksum and variant) and the exact text, so a different model never
serves another model's answers; those just age out. With Redis configured, a shared layer
(`sharedcache.SharedPredictionCache`) sits behind it: what this process lacks is looked up there
(and kept here), and every fresh answer is written to both. Fresh answers (not cache hits) are
also handed to the `AnswerService.observers`, e.g. the drift window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cachetools import TTLCache

from clfserve.runtime import ModelInfo, Prediction
from clfserve.service.gateway import InferenceGateway
from clfserve.service.metrics import ServiceMetrics

CacheKey = tuple[str, str, str, str, str]
Observer = Callable[[ModelInfo, Sequence[Prediction]], None]
"""Told of every fresh model answer, on the event loop (e.g. the drift window); must be cheap
and must not raise."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A prediction and whether it came from the cache."""

    prediction: Prediction
    cached: bool


def model_key(info: ModelInfo) -> tuple[str, str, str, str]:
    """Identity of the answers a model gives: its name and version (a new registry version is a
    new model, even with identical files), its weights' checksum and the variant that runs."""
    return (info.name, info.version, info.checksum, info.variant)


class SharedCache(Protocol):
    """A cache layer other processes see too (`sharedcache.SharedPredictionCache`); it never
    raises: an unreachable store answers misses and drops writes."""

    async def get_many(self, info: ModelInfo, texts: Sequence[str]) -> list[Prediction | None]:
        """The cached answer of each text, or None."""

    async def put_many(
        self, info: ModelInfo, texts: Sequence[str], predictions: Sequence[Prediction]
    ) -> None:
        """Cache ``predictions`` of ``texts``."""


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


@dataclass(eq=False)
class AnswerService:
    """What the prediction routes call: cache hits answer at once, misses go to the gateway."""

    gateway: InferenceGateway
    cache: PredictionCache
    metrics: ServiceMetrics
    shared: SharedCache | None = None
    """Ignored (None) while the local cache is off."""
    observers: list[Observer] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.cache.enabled:
            self.shared = None

    async def answer(self, text: str) -> tuple[ModelInfo, Answer]:
        info = self.gateway.current()
        (hit,) = await self._lookup(info, (text,))
        if hit is not None:
            self._count(hits=1, misses=0)
            return info, Answer(hit, True)
        self._count(hits=0, misses=1)
        info, prediction = await self.gateway.predict(text)
        await self._store(info, (text,), (prediction,))
        return info, Answer(prediction, False)

    async def answer_many(self, texts: Sequence[str]) -> tuple[ModelInfo, list[Answer]]:
        info = self.gateway.current()
        found = await self._lookup(info, texts)
        missing = [text for text, hit in zip(texts, found, strict=True) if hit is None]
        self._count(hits=len(texts) - len(missing), misses=len(missing))
        if not missing:
            return info, [Answer(hit, True) for hit in found if hit is not None]
        info, fresh = await self.gateway.predict_texts(missing)
        await self._store(info, missing, fresh)
        by_text = dict(zip(missing, fresh, strict=True))
        return info, [
            Answer(hit, True) if hit is not None else Answer(by_text[text], False)
            for text, hit in zip(texts, found, strict=True)
        ]

    async def _lookup(self, info: ModelInfo, texts: Sequence[str]) -> list[Prediction | None]:
        """This process's cache, then the shared layer for what it lacks (kept here too)."""
        found = self.cache.get_many(info, texts)
        if self.shared is None or all(hit is not None for hit in found):
            return found
        lacking = [i for i, hit in enumerate(found) if hit is None]
        shared = await self.shared.get_many(info, [texts[i] for i in lacking])
        known = [(texts[i], hit) for i, hit in zip(lacking, shared, strict=True) if hit]
        if known:
            self.cache.put_many(info, [t for t, _ in known], [h for _, h in known])
        for i, hit in zip(lacking, shared, strict=True):
            found[i] = hit
        return found

    async def _store(
        self, info: ModelInfo, texts: Sequence[str], predictions: Sequence[Prediction]
    ) -> None:
        self.cache.put_many(info, texts, predictions)
        for observe in self.observers:
            observe(info, predictions)
        if self.shared is not None:
            await self.shared.put_many(info, texts, predictions)

    def _count(self, *, hits: int, misses: int) -> None:
        if hits:
            self.metrics.from_cache.inc(hits)
            if self.cache.enabled:
                self.metrics.cache_hits.inc(hits)
        if misses:
            self.metrics.from_model.inc(misses)
            if self.cache.enabled:
                self.metrics.cache_misses.inc(misses)
