"""`AsyncClient`: the asyncio client, the same calls as `Client`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TypeVar

import httpx

from clfserve.client import calls
from clfserve.client.connection import Connection, Wait, outcome
from clfserve.client.results import BatchPrediction, Feedback, Health, ModelInfo, Prediction

T = TypeVar("T")


class AsyncClient(Connection[httpx.AsyncClient, Awaitable[None]]):
    """A clfserve server at ``base_url``, for asyncio code: `Client`'s calls, awaited; the
    options are `Connection`'s (``sleep`` returns an awaitable)."""

    def _open(self, base_url: str, timeout: float) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def _wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def predict(self, text: str) -> Prediction:
        """``POST /predict``: one text's label and scores."""
        return await self._send(calls.predict(text))

    async def batch_predict(self, texts: Sequence[str]) -> BatchPrediction:
        """``POST /batch_predict``: answers in the order of ``texts``."""
        return await self._send(calls.batch_predict(texts))

    async def feedback(self, text: str, label: str, prediction_id: str | None = None) -> Feedback:
        """``POST /feedback``: the right ``label`` of ``text``, naming the answer it corrects by
        its ``prediction_id`` when given; returns the stored row."""
        return await self._send(calls.feedback(text, label, prediction_id))

    async def model(self) -> ModelInfo:
        """``GET /model``: what is being served."""
        return await self._send(calls.model())

    async def health(self) -> Health:
        """``GET /health/ready`` (never retried; ``.ready`` says whether it serves)."""
        return await self._send(calls.health())

    async def live(self) -> bool:
        """``GET /health/live``: whether the process answers."""
        return await self._send(calls.live())

    async def _send(self, call: calls.Call[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            response = await self.http.request(call.method, call.path, json=call.json)
            result = outcome(call, response, attempt, self.retry)
            if not isinstance(result, Wait):
                return result
            await self._sleep(result.seconds)

    async def aclose(self) -> None:
        if self._own:
            await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
