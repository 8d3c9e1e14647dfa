"""Prometheus instruments of one app (own registry, so several apps can live in one process).

With ``--workers N`` every process counts for itself; a scrape sees the process that answers.
"""

from __future__ import annotations

import time
from typing import Any

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from clfserve.runtime import ModelInfo

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class ServiceMetrics:
    """Every instrument the service exports; ``registry`` is what ``GET /metrics`` renders."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created doubles a scrape
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "clfserve_http_requests", "HTTP requests answered",
            ["route", "method", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "clfserve_http_request_duration_seconds", "Time to answer an HTTP request",
            ["route", "method", "status"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.predictions = Counter(
            "clfserve_predictions", "Texts predicted, by where the answer came from",
            ["source"], registry=r,
        )  # fmt: skip
        self.from_cache = self.predictions.labels("cache")
        self.from_model = self.predictions.labels("model")
        """The two series, resolved once (``labels()`` locks and checks on every call)."""
        self.cache_hits = Counter("clfserve_cache_hits", "Prediction cache hits", registry=r)
        self.cache_misses = Counter("clfserve_cache_misses", "Prediction cache misses", registry=r)
        self.batch_size = Histogram(
            "clfserve_microbatch_size", "Texts per runtime call made by the micro-batcher",
            buckets=SIZE_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "clfserve_microbatch_queue_wait_seconds",
            "Time a /predict text waited before its runtime call started",
            buckets=WAIT_BUCKETS, registry=r,
        )  # fmt: skip
        self.inference = Histogram(
            "clfserve_inference_seconds", "Duration of one runtime call",
            ["kind"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.throttled = Counter(
            "clfserve_throttled_requests", "Requests refused by the rate limit", ["route"],
            registry=r,
        )  # fmt: skip
        self.feedback = Counter(
            "clfserve_feedback", "Labels posted to /feedback, by outcome (stored, invalid, "
            "unauthorized, unavailable)", ["outcome"], registry=r,
        )  # fmt: skip
        self.reloads = Counter(
            "clfserve_model_reloads", "Checks for a new model version, by what they did",
            ["result"], registry=r,
        )  # fmt: skip
        self.model_ready = Gauge(
            "clfserve_model_ready", "1 when a model is loaded and warmed, else 0", registry=r
        )
        self.model_info = Gauge(
            "clfserve_model_info", "The model being served (value 1)",
            ["name", "version", "variant", "provider"], registry=r,
        )  # fmt: skip

    def set_model(self, info: ModelInfo | None) -> None:
        self.model_info.clear()
        self.model_ready.set(0 if info is None else 1)
        if info is not None:
            provider = info.providers[0] if info.providers else "unknown"
            self.model_info.labels(info.name, info.version, info.variant, provider).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every routed request by route template, method and status."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        """Labelled request counter and latency histogram, by (route, method, status)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe_send)
        except Exception as exc:  # answered by the exception handler outside this middleware
            status = exc.status_code if isinstance(exc, HTTPException) else 500
            raise
        finally:
            self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope: Any, status: int, seconds: float) -> None:
        labels = (scope.get("path_template") or scope["path"], scope["method"], status)
        children = self._children.get(labels)
        if children is None:  # prometheus_client's labels() takes a lock and checks every time
            named = (*labels[:2], str(status))
            children = (self.metrics.requests.labels(*named), self.metrics.latency.labels(*named))
            self._children[labels] = children
        children[0].inc()
        children[1].observe(seconds)
