"""Answering texts: the cache first, then the model (micro-batched for single texts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clfserve.runtime import ModelInfo, Prediction
from clfserve.service.batcher import MicroBatcher
from clfserve.service.cache import PredictionCache
from clfserve.service.metrics import Metrics
from clfserve.service.model_state import ModelState

DEFAULT_CHUNK_SIZE = 32
"""Texts per /batch_predict runtime call when ``CLFSERVE_BATCH_SIZE`` is auto; the runtime
splits each call further into its own length-sorted chunks."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A prediction and whether it came from the cache."""

    prediction: Prediction
    cached: bool


class PredictionService:
    """What the routes call; owns no model, only how texts reach it."""

    def __init__(
        self,
        model: ModelState,
        cache: PredictionCache,
        batcher: MicroBatcher,
        metrics: Metrics,
        chunk_size: int | None = None,
    ) -> None:
        self.model = model
        self.chunk_size = chunk_size or DEFAULT_CHUNK_SIZE
        self.cache = cache
        self.batcher = batcher
        self.metrics = metrics

    def _info(self) -> ModelInfo:
        return self.model.require().info

    async def predict(self, text: str) -> tuple[ModelInfo, Answer]:
        info = self._info()
        hit = self.cache.get(info, text)
        if hit is not None:
            self._count(hits=1, misses=0)
            return info, Answer(hit, True)
        self._count(hits=0, misses=1)
        prediction = await self.batcher.submit(text)
        self.cache.put(info, text, prediction)
        return info, Answer(prediction, False)

    async def predict_many(self, texts: Sequence[str]) -> tuple[ModelInfo, list[Answer]]:
        info = self._info()
        found = self.cache.get_many(info, texts)
        misses = sum(hit is None for hit in found)
        self._count(hits=len(texts) - misses, misses=misses)
        missing = list(dict.fromkeys(t for t, hit in zip(texts, found, strict=True) if hit is None))
        fresh: dict[str, Prediction] = {}
        # Shortest first, one runtime chunk per call: padding stays low, and micro-batches of
        # concurrent /predict calls get the model between chunks instead of waiting for all.
        ordered = sorted(missing, key=len)
        for start in range(0, len(ordered), self.chunk_size):
            chunk = ordered[start : start + self.chunk_size]
            predictions = await self.batcher.run(chunk)
            fresh.update(zip(chunk, predictions, strict=True))
            self.cache.put_many(info, chunk, predictions)
        answers = [
            Answer(hit, True) if hit is not None else Answer(fresh[text], False)
            for text, hit in zip(texts, found, strict=True)
        ]
        return info, answers

    def _count(self, *, hits: int, misses: int) -> None:
        if self.cache.enabled:
            self.metrics.cache_hits.inc(hits)
            self.metrics.cache_misses.inc(misses)
        self.metrics.predictions.labels("cache").inc(hits)
        self.metrics.predictions.labels("model").inc(misses)
