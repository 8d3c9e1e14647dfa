"""The API's calls, shared by `Client` and `AsyncClient`: what to send, how to read the answer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from clfserve.client.errors import ApiError, error_for
from clfserve.client.results import BatchPrediction, Feedback, Health, ModelInfo, Prediction
from clfserve.client.retry import parse_retry_after

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:5000"


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the parser of its successful answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    ok: frozenset[int] = frozenset({200})
    """Statuses whose body `parse` reads (``/health/ready`` reads its 503 too)."""
    retry: bool = True


def predict(text: str) -> Call[Prediction]:
    return Call("POST", "/predict", Prediction.from_json, json={"text": text})


def batch_predict(texts: Sequence[str]) -> Call[BatchPrediction]:
    return Call("POST", "/batch_predict", BatchPrediction.from_json, json={"texts": list(texts)})


def feedback(text: str, label: str, prediction_id: str | None) -> Call[Feedback]:
    body = {"text": text, "label": label}
    if prediction_id is not None:
        body["prediction_id"] = prediction_id
    return Call("POST", "/feedback", Feedback.from_json, json=body, ok=frozenset({201}))


def model() -> Call[ModelInfo]:
    return Call("GET", "/model", ModelInfo.from_json)


def health() -> Call[Health]:
    return Call("GET", "/health/ready", Health.from_json, ok=frozenset({200, 503}), retry=False)


def live() -> Call[bool]:
    return Call("GET", "/health/live", lambda body: body.get("status") == "alive", retry=False)


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def read(call: Call[T], response: httpx.Response) -> T | ApiError:
    """The parsed answer, or the error to raise (or retry) for it."""
    body = _body(response)
    if response.status_code in call.ok and isinstance(body, dict):
        return call.parse(body)
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    return error_for(response.status_code, body, retry_after)
