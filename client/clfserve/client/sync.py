"""`Client`: the blocking client."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TypeVar

import httpx

from clfserve.client import calls
from clfserve.client.errors import ApiError
from clfserve.client.results import BatchPrediction, Feedback, Health, ModelInfo, Prediction
from clfserve.client.retry import RetryPolicy

T = TypeVar("T")


class Client:
    """A clfserve server at ``base_url``; ``http`` replaces the httpx client (then its own base
    URL is used), ``retry`` sets how 429 and 503 answers are retried."""

    def __init__(
        self,
        base_url: str = calls.DEFAULT_URL,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._own = http is None
        self.http = http or httpx.Client(base_url=base_url, timeout=timeout)
        self._sleep = sleep

    def predict(self, text: str) -> Prediction:
        """``POST /predict``: one text's label and scores."""
        return self._send(calls.predict(text))

    def batch_predict(self, texts: Sequence[str]) -> BatchPrediction:
        """``POST /batch_predict``: answers in the order of ``texts``."""
        return self._send(calls.batch_predict(texts))

    def feedback(self, text: str, label: str, prediction_id: str | None = None) -> Feedback:
        """``POST /feedback``: the right ``label`` of ``text``, naming the answer it corrects by
        its ``prediction_id`` when given; returns the stored row."""
        return self._send(calls.feedback(text, label, prediction_id))

    def model(self) -> ModelInfo:
        """``GET /model``: what is being served."""
        return self._send(calls.model())

    def health(self) -> Health:
        """``GET /health/ready`` (never retried; ``.ready`` says whether it serves)."""
        return self._send(calls.health())

    def live(self) -> bool:
        """``GET /health/live``: whether the process answers."""
        return self._send(calls.live())

    def _send(self, call: calls.Call[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            response = self.http.request(call.method, call.path, json=call.json)
            result = calls.read(call, response)
            if not isinstance(result, ApiError):
                return result
            wait = self.retry.delay(attempt, result.status_code, result.retry_after)
            if not call.retry or wait is None:
                raise result
            self._sleep(wait)

    def close(self) -> None:
        if self._own:
            self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
