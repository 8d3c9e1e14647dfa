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
import base64
import logging
import os
import pickle
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.exceptions import TooManyRequestsException
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.types import Message, Scope

from clfserve.runtime import ClfserveError
from clfserve.service.context import ServiceContext
from clfserve.service.errors import error_response, throttled_handler
from clfserve.service.feedback_routes import build_feedback_routes
from clfserve.service.loading import load_model
from clfserve.service.metrics import MetricsMiddleware
from clfserve.service.model_state import Model
from clfserve.service.openapi import openapi_config
from clfserve.service.routes import build_routes
from clfserve.service.settings import Settings
from clfserve.service.throttle import RateLimitMiddleware

log = logging.getLogger(__name__)

Loader = Callable[[Settings], Model]
LifespanHook = Callable[[ServiceContext], AbstractAsyncContextManager[None]]
"""Runs inside the app's lifespan after the model load has started, e.g. a scheduler."""

STATE_KEY = "clfserve"
VERSION_HEADER = "X-Model-Version"
_VERSION_NAME = VERSION_HEADER.lower().encode()
SETTINGS_HANDOFF = "CLFSERVE_SETTINGS_HANDOFF"
"""Set by `clfserve serve --workers N` for its worker processes: the settings it parsed, so
workers use them as they are instead of parsing the environment again."""


def create_app(
    settings: Settings | None = None,
    *,
    loader: Loader = load_model,
    route_handlers: Sequence[HTTPRouteHandler] = (),
    lifespan: Sequence[LifespanHook] = (),
) -> Litestar:
    """The service app; ``loader`` opens the model (a fake in unit tests).

    The staleness monitor (``GET /staleness``, ``POST /admin/evaluate``, gauges, schedule) is
    installed unless ``settings.staleness.enabled`` is false.
    """
    settings = settings or Settings()
    ctx = ServiceContext.build(settings)
    if settings.staleness.enabled:
        from clfserve.service.staleness.extension import install

        extension = install(ctx)
        route_handlers = [*route_handlers, *extension.routes]
        lifespan = [*lifespan, extension.lifespan]

    @asynccontextmanager
    async def run(_: Litestar) -> AsyncIterator[None]:
        await ctx.gateway.start()
        loading = asyncio.create_task(_load(ctx, loader), name="clfserve-load-model")
        if settings.workers > 1:
            await loading  # see the module docstring; load_model never raises
        try:
            async with AsyncExitStack() as stack:
                if ctx.redis is not None:
                    await stack.enter_async_context(ctx.redis.watch())
                for hook in lifespan:
                    await stack.enter_async_context(hook(ctx))
                yield
        finally:
            loading.cancel()
            await ctx.follower.stop()
            await ctx.gateway.stop()
            ctx.feedback.close()

    async def add_version_header(message: Message, scope: Scope) -> None:
        if message["type"] == "http.response.start":  # no handler sets it: append, raw
            version = (_VERSION_NAME, ctx.model.version.encode("latin-1"))
            message["headers"] = [*message.get("headers", ()), version]

    def count_throttled(request: Any) -> None:
        ctx.metrics.throttled.labels(request.scope.get("path_template", "unknown")).inc()

    middleware: list[Any] = [DefineMiddleware(MetricsMiddleware, metrics=ctx.metrics)]
    if ctx.limiter is not None:
        middleware.append(
            DefineMiddleware(
                RateLimitMiddleware, limiter=ctx.limiter, proxies=settings.trusted_proxies
            )
        )

    return Litestar(
        route_handlers=[*build_routes(ctx), *build_feedback_routes(ctx), *route_handlers],
        middleware=middleware,
        exception_handlers={
            TooManyRequestsException: throttled_handler(count_throttled),
            Exception: error_response,
        },
        before_send=[add_version_header],
        lifespan=[run],
        state=State({STATE_KEY: ctx}),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(),
        logging_config=None,
    )


async def _load(ctx: ServiceContext, loader: Loader) -> None:
    """Load the model off the event loop, vet it through the gateway, and record ready or
    failed (never raises). A server following an alias then polls the registry, also after a
    failed start: it serves as soon as there is a good version to serve."""
    uri = ctx.settings.model_uri
    log.info("loading model %s (device=%s, variant=%s)", uri, ctx.settings.device,
             ctx.settings.variant or "auto")  # fmt: skip
    try:
        if loader is load_model:  # the real thing: registry versions, local copies, follow
            await ctx.follower.load_first()
        else:  # a model given by the embedding code (tests): loaded once
            await ctx.gateway.serve(await asyncio.to_thread(loader, ctx.settings))
    except ClfserveError as exc:
        _failed(ctx, str(exc))
    except Exception as exc:  # anything else is a bug or an environment problem; say which
        log.exception("loading %s crashed", uri)
        _failed(ctx, f"{type(exc).__name__}: {exc}")
    else:
        info = ctx.gateway.current()
        ctx.metrics.set_model(info)
        log.info(
            "serving %s v%s: variant=%s provider=%s threads=%d labels=%s (loaded in %.2fs)",
            info.name, info.version, info.variant, info.providers[0] if info.providers else "?",
            info.threads, ",".join(info.labels), info.load_seconds,
        )  # fmt: skip
    if loader is load_model:
        ctx.follower.start()


def _failed(ctx: ServiceContext, reason: str) -> None:
    ctx.model.failed(reason)
    ctx.metrics.set_model(None)
    retry = (
        "until the alias names a version that loads"
        if ctx.follower.follows and ctx.settings.reload_interval_s is not None
        else "until it is restarted with a loadable model"
    )
    log.error(
        "model %s could not be loaded: %s. The server keeps running: /health/ready and the "
        "prediction routes answer 503 %s.",
        ctx.settings.model_uri, reason, retry,
    )  # fmt: skip


def context_of(app: Litestar) -> ServiceContext:
    """The `ServiceContext` of an app made by `create_app`."""
    ctx = app.state[STATE_KEY]
    assert isinstance(ctx, ServiceContext)
    return ctx


def create_app_from_env() -> Litestar:
    """Factory for ``uvicorn --factory``: the settings `clfserve serve` handed over, else this
    process's ``CLFSERVE_*`` variables."""
    handed = os.environ.get(SETTINGS_HANDOFF)
    if handed:
        settings = pickle.loads(base64.b64decode(handed))  # written by our own parent process
        if isinstance(settings, Settings):
            return create_app(settings)
    return create_app(Settings.from_env(os.environ))


def handoff(settings: Settings) -> str:
    """The value of `SETTINGS_HANDOFF` for worker processes of ``settings``."""
    return base64.b64encode(pickle.dumps(settings)).decode("ascii")
