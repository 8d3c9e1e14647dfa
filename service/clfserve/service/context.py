"""The objects one app instance is made of, handed to routes and lifespan hooks."""

from __future__ import annotations

from dataclasses import dataclass

from clfserve.service.batcher import MicroBatcher
from clfserve.service.cache import PredictionCache
from clfserve.service.metrics import Metrics
from clfserve.service.model_state import ModelState
from clfserve.service.predictions import PredictionService
from clfserve.service.schemas import Limits
from clfserve.service.settings import Settings


@dataclass(frozen=True)
class ServiceContext:
    """Available to extensions (e.g. the staleness monitor) as ``app.state.clfserve``."""

    settings: Settings
    model: ModelState
    cache: PredictionCache
    batcher: MicroBatcher
    metrics: Metrics
    predictions: PredictionService
    limits: Limits

    @classmethod
    def build(cls, settings: Settings) -> ServiceContext:
        metrics = Metrics()
        model = ModelState(uri=settings.model_uri)
        cache = PredictionCache(
            settings.cache_size, settings.cache_ttl_s, enabled=settings.cache_enabled
        )
        batcher = MicroBatcher(
            lambda texts: model.require().predict(texts),
            metrics,
            max_size=settings.microbatch_max_size,
            max_wait=settings.microbatch_max_wait_ms / 1000.0,
            workers=settings.inference_workers,
            max_queue=settings.max_queue,
        )
        return cls(
            settings=settings,
            model=model,
            cache=cache,
            batcher=batcher,
            metrics=metrics,
            predictions=PredictionService(model, cache, batcher, metrics, settings.batch_size),
            limits=Limits(settings.max_text_chars, settings.max_batch_items),
        )
