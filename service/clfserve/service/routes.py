"""The HTTP routes, bound to one `ServiceContext`."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from clfserve.runtime import ModelInfo
from clfserve.service import contract
from clfserve.service.admin import check_admin
from clfserve.service.context import ServiceContext
from clfserve.service.jsonanswer import JsonAnswer
from clfserve.service.model_state import ModelStatus
from clfserve.service.openapi import documented
from clfserve.service.schemas import (
    BatchPredictionOut,
    BatchPredictRequest,
    Health,
    Limits,
    ModelOut,
    ModelRef,
    PredictionOut,
    PredictRequest,
    decode_batch,
    decode_predict,
    prediction_out,
)
from clfserve.service.throttle import EXEMPT_OPT

EXEMPT = {EXEMPT_OPT: True}
EXAMPLE = "a gorgeous, witty, seductive movie"
METRICS_MEDIA_TYPE = "text/plain; version=1.0.0"
"""Prometheus text format; Litestar adds ``charset=utf-8``."""


def _ref(info: ModelInfo) -> ModelRef:
    return ModelRef(name=info.name, version=info.version)


def build_routes(ctx: ServiceContext) -> list[HTTPRouteHandler]:
    """Route handlers closing over ``ctx`` (no globals, so several apps can coexist in tests)."""
    limits = Limits(ctx.settings.max_text_chars, ctx.settings.max_batch_items)

    @post(
        "/predict",
        status_code=HTTP_200_OK,
        tags=["predict"],
        summary="Classify one text",
        **documented(
            contract.PREDICT,
            body=(limits.request_schema(PredictRequest), {"text": EXAMPLE}),
            answer=PredictionOut,
        ),
    )
    async def predict(request: Request[Any, Any, Any]) -> JsonAnswer:
        text = decode_predict(await request.body(), limits)
        info, answer = await ctx.answers.answer(text)
        label = answer.prediction.label
        return JsonAnswer(
            prediction_out(
                answer.prediction, answer.cached, _ref(info), ctx.ids.mint(info.version, label)
            )
        )

    @post(
        "/batch_predict",
        status_code=HTTP_200_OK,
        tags=["predict"],
        summary="Classify texts (answers in the same order)",
        **documented(
            contract.PREDICT,
            body=(limits.request_schema(BatchPredictRequest), {"texts": [EXAMPLE, "dull"]}),
            answer=BatchPredictionOut,
        ),
    )
    async def batch_predict(request: Request[Any, Any, Any]) -> JsonAnswer:
        texts = decode_batch(await request.body(), limits)
        info, answers = await ctx.answers.answer_many(texts)
        ref = _ref(info)
        return JsonAnswer(
            BatchPredictionOut(
                predictions=[
                    prediction_out(
                        a.prediction, a.cached, ref, ctx.ids.mint(info.version, a.prediction.label)
                    )
                    for a in answers
                ],
                model=ref,
            )
        )

    @get(
        "/health/live",
        tags=["health"],
        opt=EXEMPT,
        summary="The process is up",
        **documented(contract.EXEMPT, throttled=False),
    )
    async def live() -> Health:
        return Health(status="alive")

    @get(
        "/health/ready",
        tags=["health"],
        opt=EXEMPT,
        summary="A model is loaded and warmed",
        **documented(contract.READY, throttled=False),
    )
    async def ready() -> Response[Health]:
        model = ctx.model
        if model.status is ModelStatus.READY and ctx.gateway.running:
            return Response(Health(status="ready"))
        return Response(
            Health(status=str(model.status), detail=model.reason or "starting"),
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
        )

    @get(
        "/model",
        tags=["model"],
        summary="What is being served, and how",
        **documented(contract.READ),
    )
    async def model() -> ModelOut:
        state = ctx.model
        out = ModelOut(
            status=str(state.status),
            uri=state.uri,
            detail=state.reason,
            staleness=dict(state.staleness) if state.staleness is not None else None,
            **ctx.follower.describe(),
        )
        if (info := state.info) is not None:
            out.name, out.version, out.checksum, out.variant = (
                info.name, info.version, info.checksum, info.variant,
            )  # fmt: skip
            out.device, out.providers, out.labels = (
                info.device,
                list(info.providers),
                list(info.labels),
            )
            out.max_length, out.threads, out.load_seconds = (
                info.max_length, info.threads, round(info.load_seconds, 3),
            )  # fmt: skip
        return out

    @get(
        "/metrics",
        tags=["health"],
        opt=EXEMPT,
        summary="Prometheus metrics",
        media_type=METRICS_MEDIA_TYPE,
        **documented(contract.EXEMPT, throttled=False),
    )
    async def metrics() -> Response[str]:
        return Response(ctx.metrics.render().decode(), media_type=METRICS_MEDIA_TYPE)

    @post(
        "/admin/reload",
        status_code=HTTP_200_OK,
        tags=["admin"],
        summary="Check the registry for a new version of the alias now, and swap to it "
        "(Authorization: Bearer <CLFSERVE_ADMIN_TOKEN>)",
        **documented(contract.ADMIN, admin=True),
    )
    async def admin_reload(request: Request[Any, Any, Any]) -> dict[str, Any]:
        check_admin(request, ctx.settings.admin_token)
        return (await ctx.follower.check(force=True)).to_json()

    return [predict, batch_predict, live, ready, model, metrics, admin_reload]
