"""The objects one app instance is made of, handed to routes and lifespan hooks."""

from __future__ import annotations

from dataclasses import dataclass

from clfserve.service.answers import AnswerService, PredictionCache
from clfserve.service.feedback import FeedbackDesk, feedback_url
from clfserve.service.gateway import InferenceGateway
from clfserve.service.limiter import RateLimiter
from clfserve.service.loading import inference_workers
from clfserve.service.metrics import ServiceMetrics
from clfserve.service.model_state import ModelState
from clfserve.service.predictionid import PredictionIds
from clfserve.service.redislink import RedisLink
from clfserve.service.releases import ModelFollower
from clfserve.service.settings import Settings
from clfserve.service.sharedcache import SharedPredictionCache


@dataclass(frozen=True)
class ServiceContext:
    """Available to extensions (e.g. the staleness monitor) as ``app.state.clfserve``."""

    settings: Settings
    model: ModelState
    gateway: InferenceGateway
    answers: AnswerService
    metrics: ServiceMetrics
    follower: ModelFollower
    feedback: FeedbackDesk
    """Production labels (``POST /feedback``), also scored by the staleness monitor."""
    ids: PredictionIds
    """Mints the ``prediction_id`` of every answer and reads those posted back."""
    redis: RedisLink | None = None
    """The Redis every replica shares (``CLFSERVE_REDIS_URL``), or None: all state is local."""
    limiter: RateLimiter | None = None
    """The per-client budget (None when ``CLFSERVE_RATE_LIMIT`` is off)."""

    @classmethod
    def build(cls, settings: Settings) -> ServiceContext:
        metrics = ServiceMetrics()
        model = ModelState(uri=settings.model_uri)
        gateway = InferenceGateway(
            model,
            metrics,
            workers=inference_workers(settings),
            microbatch=settings.microbatch,
            max_wait_s=settings.microbatch_max_wait_ms / 1000.0,
            max_queue=settings.max_queue,
        )
        cache = PredictionCache(
            settings.cache_size, settings.cache_ttl_s, enabled=settings.cache_enabled
        )
        redis = None
        shared = None
        if settings.redis_url is not None:
            redis = RedisLink(
                settings.redis_url,
                prefix=settings.redis_prefix,
                timeout_s=settings.redis_timeout_s,
                retry_s=settings.redis_retry_s,
                registry=metrics.registry,
            )
            shared = SharedPredictionCache(
                redis, settings.shared_cache_size, settings.cache_ttl_s, metrics.registry
            )
        answers = AnswerService(gateway, cache, metrics, shared)
        follower = ModelFollower(settings, gateway, metrics)
        limiter = None
        if settings.rate_limit is not None:
            limiter = RateLimiter(settings.rate_limit, redis, settings.rate_limit_fallback)
        feedback = FeedbackDesk(feedback_url(settings.feedback_db))
        ids = PredictionIds(settings.prediction_id_key)
        return cls(
            settings, model, gateway, answers, metrics, follower, feedback, ids, redis, limiter
        )
