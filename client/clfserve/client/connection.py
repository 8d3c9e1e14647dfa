"""`Connection`: what `Client` and `AsyncClient` hold, and the retry decision they both follow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import httpx

from clfserve.client import calls
from clfserve.client.errors import ApiError
from clfserve.client.retry import RetryPolicy

T = TypeVar("T")
H = TypeVar("H", httpx.Client, httpx.AsyncClient)
W = TypeVar("W")
"""What waiting returns: None (blocking) or an awaitable (asyncio)."""


@dataclass(frozen=True)
class Wait:
    """Send the call again after ``seconds``."""

    seconds: float


def outcome(
    call: calls.Call[T], response: httpx.Response, attempt: int, retry: RetryPolicy
) -> T | Wait:
    """The parsed answer to try ``attempt`` (1-based), or how long to wait before the next
    try; raises the `ApiError` when the answer is final."""
    result = calls.read(call, response)
    if not isinstance(result, ApiError):
        return result
    wait = retry.delay(attempt, result.status_code, result.retry_after)
    if not call.retry or wait is None:
        raise result
    return Wait(wait)


class Connection(Generic[H, W]):
    """A clfserve server at ``base_url``; ``http`` replaces the httpx client (then its own base
    URL is used and closing is left to its owner), ``retry`` sets how 429 and 503 answers are
    retried, ``sleep`` replaces the wait between tries."""

    def __init__(
        self,
        base_url: str = calls.DEFAULT_URL,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http: H | None = None,
        sleep: Callable[[float], W] | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._own = http is None
        self.http: H = http or self._open(base_url, timeout)
        self._sleep = sleep or self._wait

    def _open(self, base_url: str, timeout: float) -> H:
        raise NotImplementedError

    def _wait(self, seconds: float) -> W:
        raise NotImplementedError
