"""``POST /feedback``: a production label for a text, optionally naming the answer it corrects.

The label must be one the served model has; the text obeys the prediction routes' limits; a
``prediction_id`` must be one this service issued (`predictionid`), and its model version and
predicted label are stored with the row. With ``CLFSERVE_FEEDBACK_TOKEN`` set, only callers with
that bearer token may post. The answer (201) comes after the row is committed.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, post
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import HTTPRouteHandler
from litestar.status_codes import HTTP_201_CREATED

from clfserve.service import contract
from clfserve.service.admin import bearer, same_token
from clfserve.service.context import ServiceContext
from clfserve.service.errors import InvalidRequest
from clfserve.service.openapi import documented
from clfserve.service.predictionid import ID_PATTERN, MAX_CHARS, MalformedId
from clfserve.service.schemas import Limits, check_text, decode_json

EXAMPLE = {"text": "a gorgeous, witty, seductive movie", "label": "positive"}


class FeedbackRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /feedback``."""

    text: str
    label: str
    prediction_id: str | None = None


class FeedbackOut(msgspec.Struct):
    """The stored row's id and time, and what the named answer had said (None without one)."""

    id: int
    received_at: str
    model_version: str | None
    predicted: str | None


_DECODER = msgspec.json.Decoder(FeedbackRequest)
_OUTCOMES = {401: "unauthorized", 503: "unavailable"}


def _check_token(request: Request[Any, Any, Any], token: str | None) -> None:
    if token is None:
        return
    given = bearer(request)
    if given is None or not same_token(given, token):
        raise NotAuthorizedException(
            "send Authorization: Bearer <CLFSERVE_FEEDBACK_TOKEN>"
            + ("" if given is None else " (the token given is wrong)"),
            headers={"WWW-Authenticate": "Bearer"},
        )


def build_feedback_routes(ctx: ServiceContext) -> list[HTTPRouteHandler]:
    limits = Limits(ctx.settings.max_text_chars, ctx.settings.max_batch_items)
    schema = limits.request_schema(FeedbackRequest)
    schema["properties"]["label"] = {
        "type": "string",
        "minLength": 1,
        "description": "one of the served model's labels (`GET /model`)",
    }
    schema["properties"]["prediction_id"] = {
        "anyOf": [{"type": "string", "pattern": ID_PATTERN, "maxLength": MAX_CHARS},
                  {"type": "null"}],
        "description": "the `prediction_id` of the answer this label corrects or confirms",
    }  # fmt: skip

    async def accept(request: Request[Any, Any, Any]) -> FeedbackOut:
        _check_token(request, ctx.settings.feedback_token)
        body: FeedbackRequest = decode_json(
            _DECODER,
            await request.body(),
            '{"text": "...", "label": "...", "prediction_id": "..."}',
        )
        text = check_text(body.text, limits, "text")
        labels = ctx.gateway.current().labels
        if body.label not in labels:
            raise InvalidRequest(
                f"label {body.label!r} is not one of the model's labels: {', '.join(labels)}"
            )
        answer = None
        if body.prediction_id is not None:
            try:
                answer = ctx.ids.read(body.prediction_id)
            except MalformedId as exc:
                raise InvalidRequest(str(exc)) from None
        # committed before this returns
        row = await ctx.feedback.using(lambda store: store.add(text, body.label, answer))
        return FeedbackOut(
            row.id,
            row.received_at.isoformat(timespec="seconds"),
            None if answer is None else answer.model_version,
            None if answer is None else answer.predicted,
        )

    @post(
        "/feedback",
        status_code=HTTP_201_CREATED,
        tags=["feedback"],
        summary="Store the right label for a text (a production label), optionally naming the "
        "answer it corrects by its prediction_id",
        **documented(contract.FEEDBACK, body=(schema, EXAMPLE)),
    )
    async def feedback(request: Request[Any, Any, Any]) -> FeedbackOut:
        try:
            out = await accept(request)
        except Exception as exc:
            status = getattr(exc, "status_code", 503)
            ctx.metrics.feedback.labels(_OUTCOMES.get(status, "invalid")).inc()
            raise
        ctx.metrics.feedback.labels("stored").inc()
        return out

    return [feedback]
