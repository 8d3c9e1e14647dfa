"""`Client`: the blocking client."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TypeVar

import httpx

from clfserve.client import calls
from clfserve.client.connection import Connection, Wait, outcome
from clfserve.client.results import BatchPrediction, Feedback, Health, ModelInfo, Prediction

T = TypeVar("T")


class Client(Connection[httpx.Client, None]):
    """A clfserve server at ``base_url``, blocking; the options are `Connection`'s."""

    def _open(self, base_url: str, timeout: float) -> httpx.Client:
        return httpx.Client(base_url=base_url, timeout=timeout)

    def _wait(self, seconds: float) -> None:
        time.sleep(seconds)

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
            result = outcome(call, response, attempt, self.retry)
            if not isinstance(result, Wait):
                return result
            self._sleep(result.seconds)

    def close(self) -> None:
        if self._own:
            self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
