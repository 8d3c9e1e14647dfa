"""clfserve.client: a typed Python client of the clfserve HTTP API, sync and async (httpx only).

    from clfserve.client import Client

    with Client("http://127.0.0.1:5000") as clf:
        answer = clf.predict("a gorgeous, witty, seductive movie")
        answer.label, answer.score          # ('positive', 0.99)

Errors carry the server's ``detail``; 429 and 503 answers are retried with bounded backoff that
honours ``Retry-After`` (`RetryPolicy`).
"""

from __future__ import annotations

from clfserve.client.aio import AsyncClient
from clfserve.client.errors import (
    ApiError,
    ClientError,
    InvalidRequest,
    NotAuthorized,
    RateLimited,
    ServerError,
    Unavailable,
)
from clfserve.client.results import (
    BatchPrediction,
    Feedback,
    Health,
    ModelInfo,
    ModelRef,
    Prediction,
)
from clfserve.client.retry import RetryPolicy
from clfserve.client.sync import Client

__all__ = [
    "ApiError",
    "AsyncClient",
    "BatchPrediction",
    "Client",
    "ClientError",
    "Feedback",
    "Health",
    "InvalidRequest",
    "ModelInfo",
    "ModelRef",
    "NotAuthorized",
    "Prediction",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "Unavailable",
]
