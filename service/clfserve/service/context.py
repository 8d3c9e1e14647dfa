"""The objects one app instance is made of, handed to routes and lifespan hooks."""

from __future__ import annotations

from dataclasses import dataclass

from clfserve.service.answers import AnswerService, PredictionCache
from clfserve.service.gateway import InferenceGateway
from clfserve.service.metrics import ServiceMetrics
from clfserve.service.model_state import ModelState
from clfserve.service.releases import ModelFollower
from clfserve.service.settings import Settings


@dataclass(frozen=True)
class ServiceContext:
    """Available to extensions (e.g. the staleness monitor) as ``app.state.clfserve``."""

    settings: Settings
    model: ModelState
    gateway: InferenceGateway
    answers: AnswerService
    metrics: ServiceMetrics
    follower: ModelFollower

    @classmethod
    def build(cls, settings: Settings) -> ServiceContext:
        metrics = ServiceMetrics()
        model = ModelState(uri=settings.model_uri)
        gateway = InferenceGateway(
            model,
            metrics,
            workers=settings.inference_workers,
            microbatch=settings.microbatch,
            max_wait_s=settings.microbatch_max_wait_ms / 1000.0,
            max_queue=settings.max_queue,
        )
        cache = PredictionCache(
            settings.cache_size, settings.cache_ttl_s, enabled=settings.cache_enabled
        )
        answers = AnswerService(gateway, cache, metrics)
        follower = ModelFollower(settings, gateway, metrics)
        return cls(settings, model, gateway, answers, metrics, follower)
