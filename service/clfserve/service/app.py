"""`create_app`: a Litestar app serving one model, with its lifespan.

Model loading starts in the lifespan but runs in a thread, so the server answers at once:
``/health/live`` is 200, ``/health/ready`` is 503 with the reason until the model is loaded and
warmed, and prediction routes answer 503 JSON. If loading fails the process keeps running in
that state and logs why (an orchestrator sees it not ready; ``GET /model`` shows the reason),
rather than exiting: a crash loop would hide the reason and drop the health endpoints.

With several worker processes (``CLFSERVE_WORKERS`` > 1) every worker shares one listening
socket, so a worker still loading would take its share of the traffic and answer 503. There,
each worker finishes loading (or failing) before its startup completes, and uvicorn only lets a
worker accept connections after that.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.datastructures import MutableScopeHeaders, State
from litestar.exceptions import TooManyRequestsException
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.types import Message, Scope

from clfserve.runtime import ClfserveError
from clfserve.service.context import ServiceContext
from clfserve.service.errors import error_response, throttled_handler
from clfserve.service.metrics import MetricsMiddleware
from clfserve.service.predictor import Predictor, load_classifier
from clfserve.service.routes import build_routes
from clfserve.service.settings import Settings
from clfserve.service.staleness.config import StalenessSettings
from clfserve.service.throttle import rate_limit_config

log = logging.getLogger(__name__)

Loader = Callable[[Settings], Predictor]
LifespanHook = Callable[[ServiceContext], AbstractAsyncContextManager[None]]
"""Runs inside the app's lifespan after the model load has started, e.g. a scheduler."""

STATE_KEY = "clfserve"
VERSION_HEADER = "X-Model-Version"


def create_app(
    settings: Settings | None = None,
    *,
    loader: Loader = load_classifier,
    route_handlers: Sequence[HTTPRouteHandler] = (),
    lifespan: Sequence[LifespanHook] = (),
    staleness: StalenessSettings | None = None,
) -> Litestar:
    """The service app; ``loader`` builds the predictor (a fake in unit tests).

    ``staleness`` installs the staleness monitor (``GET /staleness``, ``POST /admin/evaluate``,
    gauges, schedule) unless None or disabled.
    """
    settings = settings or Settings()
    ctx = ServiceContext.build(settings)
    if staleness is not None and staleness.enabled:
        from clfserve.service.staleness.extension import install

        extension = install(ctx, staleness)
        route_handlers = [*route_handlers, *extension.routes]
        lifespan = [*lifespan, extension.lifespan]

    @asynccontextmanager
    async def run(_: Litestar) -> AsyncIterator[None]:
        await ctx.batcher.start()
        loading = asyncio.create_task(load_model(ctx, loader), name="clfserve-load-model")
        if settings.workers > 1:
            await loading  # see the module docstring; load_model never raises
        try:
            async with AsyncExitStack() as stack:
                for hook in lifespan:
                    await stack.enter_async_context(hook(ctx))
                yield
        finally:
            loading.cancel()
            await ctx.batcher.stop()

    async def add_version_header(message: Message, scope: Scope) -> None:
        if message["type"] == "http.response.start":
            MutableScopeHeaders.from_message(message)[VERSION_HEADER] = ctx.model.version

    def count_throttled(request: Any) -> None:
        ctx.metrics.throttled.labels(request.scope.get("path_template", "unknown")).inc()

    middleware: list[Any] = [DefineMiddleware(MetricsMiddleware, metrics=ctx.metrics)]
    if settings.rate_limit is not None:
        middleware.append(
            rate_limit_config(settings.rate_limit, settings.trusted_proxies).middleware
        )

    return Litestar(
        route_handlers=[*build_routes(ctx), *route_handlers],
        middleware=middleware,
        exception_handlers={
            TooManyRequestsException: throttled_handler(count_throttled),
            Exception: error_response,
        },
        before_send=[add_version_header],
        lifespan=[run],
        state=State({STATE_KEY: ctx}),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="clfserve",
            version="1",
            description="Text classification with an ONNX model.",
            path="/schema",
        ),
        logging_config=None,
    )


async def load_model(ctx: ServiceContext, loader: Loader) -> None:
    """Load the model off the event loop; record ready or failed (never raises)."""
    uri = ctx.settings.model_uri
    log.info("loading model %s (device=%s, variant=%s)", uri, ctx.settings.device,
             ctx.settings.variant or "auto")  # fmt: skip
    try:
        predictor = await asyncio.to_thread(loader, ctx.settings)
    except ClfserveError as exc:
        _failed(ctx, str(exc))
        return
    except Exception as exc:  # anything else is a bug or an environment problem; say which
        log.exception("loading %s crashed", uri)
        _failed(ctx, f"{type(exc).__name__}: {exc}")
        return
    ctx.model.ready(predictor)
    ctx.metrics.set_model(predictor.info)
    info = predictor.info
    log.info(
        "serving %s v%s: variant=%s provider=%s threads=%d labels=%s (loaded in %.2fs)",
        info.name, info.version, info.variant, info.providers[0] if info.providers else "?",
        info.threads, ",".join(info.labels), info.load_seconds,
    )  # fmt: skip


def _failed(ctx: ServiceContext, reason: str) -> None:
    ctx.model.failed(reason)
    ctx.metrics.set_model(None)
    log.error(
        "model %s could not be loaded: %s. The server keeps running: /health/ready and the "
        "prediction routes answer 503 until it is restarted with a loadable model.",
        ctx.settings.model_uri, reason,
    )  # fmt: skip


def context_of(app: Litestar) -> ServiceContext:
    """The `ServiceContext` of an app made by `create_app`."""
    ctx = app.state[STATE_KEY]
    assert isinstance(ctx, ServiceContext)
    return ctx


def create_app_from_env() -> Litestar:
    """Factory for ``uvicorn --factory``: settings from this process's ``CLFSERVE_*`` variables."""
    return create_app(
        Settings.from_env(os.environ), staleness=StalenessSettings.from_env(os.environ)
    )
