"""A bounded, expiring prediction cache keyed by model identity and the exact text."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from cachetools import TTLCache

from clfserve.runtime import ModelInfo, Prediction

CacheKey = tuple[str, str, str]


def model_key(info: ModelInfo) -> tuple[str, str]:
    """Identity of the answers a model gives: its weights' checksum and the variant that runs."""
    return (info.checksum, info.variant)


class PredictionCache:
    """`TTLCache` behind a lock (cachetools is not thread-safe); a disabled cache is a no-op.

    Keys carry the model identity, so answers of a previous model are never served after a
    model change; they just age out.
    """

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

    def get(self, info: ModelInfo, text: str) -> Prediction | None:
        return self.get_many(info, (text,))[0]

    def put(self, info: ModelInfo, text: str, prediction: Prediction) -> None:
        self.put_many(info, (text,), (prediction,))

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)
