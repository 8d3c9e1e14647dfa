"""`clfserve.client` against the real app in process (a fake model behind it)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient, TestClient
from service_fakes import FakePredictor, fake_prediction, loader_for, quiet, ready_client

import clfserve.client
from clfserve.client import (
    AsyncClient,
    BatchPrediction,
    Client,
    Feedback,
    Health,
    InvalidRequest,
    ModelInfo,
    ModelRef,
    NotAuthorized,
    Prediction,
    RateLimited,
    RetryPolicy,
    Unavailable,
)
from clfserve.service import RateLimit, create_app
from clfserve.service.model_state import Model
from clfserve.service.settings import Settings


@pytest.fixture
def app() -> Litestar:
    return create_app(quiet(max_batch_items=4), loader=loader_for(FakePredictor()))


@pytest.fixture
def client(app: Litestar) -> Iterator[Client]:
    http = ready_client(app)
    try:
        yield Client(http=http)
    finally:
        http.__exit__(None, None, None)


def test_public_surface() -> None:
    assert sorted(clfserve.client.__all__) == [
        "ApiError", "AsyncClient", "BatchPrediction", "Client", "ClientError", "Feedback", "Health",
        "InvalidRequest", "ModelInfo", "ModelRef", "NotAuthorized", "Prediction", "RateLimited",
        "RetryPolicy", "ServerError", "Unavailable",
    ]  # fmt: skip


# Each result type, the route whose answer it reads, and whether it reads every field.
RESULTS = [
    (Prediction, "post", "/predict", "200", True),
    (BatchPrediction, "post", "/batch_predict", "200", True),
    (Feedback, "post", "/feedback", "201", True),
    (Health, "get", "/health/ready", "200", True),
    (ModelInfo, "get", "/model", "200", False),
]


@pytest.mark.parametrize(("result", "method", "path", "status", "every"), RESULTS)
def test_results_mirror_the_servers_openapi_schemas(
    app: Litestar, result: type, method: str, path: str, status: str, every: bool
) -> None:
    """The client declares the answers again (it must install without the service): this pins
    those declarations to the server's own schemas, nested `ModelRef` included."""
    spec = app.openapi_schema.to_schema()

    def properties(schema: dict[str, Any]) -> set[str]:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return set(spec["components"]["schemas"][name]["properties"])

    answer = spec["paths"][path][method]["responses"][status]["content"]["application/json"]
    served = properties(answer["schema"])
    read = {f.name for f in dataclasses.fields(result)} - {"raw"}
    assert read <= served
    if every:
        assert read == served
    assert {f.name for f in dataclasses.fields(ModelRef)} == properties(
        {"$ref": "#/components/schemas/ModelRef"}
    )


def test_predict_returns_a_typed_answer(client: Client) -> None:
    answer = client.predict("a good movie")
    expected = fake_prediction("a good movie")
    assert isinstance(answer, Prediction)
    assert (answer.label, answer.score, answer.scores) == (
        expected.label, expected.score, expected.scores,
    )  # fmt: skip
    assert (answer.model.name, answer.model.version, answer.cached) == ("fake-sentiment", "v1",
                                                                         False)  # fmt: skip
    assert client.predict("a good movie").cached is True


def test_feedback_names_the_answer_it_corrects(client: Client) -> None:
    answer = client.predict("a good movie")
    assert answer.prediction_id is not None
    stored = client.feedback("a good movie", "negative", answer.prediction_id)
    assert (stored.model_version, stored.predicted) == ("v1", "positive")
    assert client.feedback("dull", "negative").id == stored.id + 1
    with pytest.raises(InvalidRequest, match="negative, positive"):
        client.feedback("dull", "neutral")


def test_batch_model_and_health(client: Client) -> None:
    batch = client.batch_predict(["good", "dull", "good again"])
    assert batch.labels == [fake_prediction(t).label for t in ("good", "dull", "good again")]
    assert batch.model.version == "v1"
    info = client.model()
    assert (info.status, info.name, info.labels) == ("ready", "fake-sentiment",
                                                     ["negative", "positive"])  # fmt: skip
    assert info.raw["providers"] == ["CPUExecutionProvider"]
    health = client.health()
    assert health.ready
    assert health.status == "ready"
    assert client.live() is True


def test_errors_carry_the_server_detail_and_are_not_retried(app: Litestar) -> None:
    waits: list[float] = []
    http = ready_client(app)
    try:
        api = Client(http=http, sleep=waits.append)
        with pytest.raises(InvalidRequest) as empty:
            api.predict("   ")
        with pytest.raises(InvalidRequest) as many:
            api.batch_predict(["a"] * 5)
    finally:
        http.__exit__(None, None, None)
    assert empty.value.status_code == 422
    assert empty.value.detail == "text must not be empty or only whitespace"
    assert "the limit is 4" in many.value.detail
    assert waits == []


def test_admin_refusal_is_not_authorized() -> None:
    app = create_app(quiet(admin_token="secret"), loader=loader_for(FakePredictor()))
    http = ready_client(app)
    try:
        response = http.post("/admin/reload")
        from clfserve.client.calls import Call, read

        error = read(Call("POST", "/admin/reload", dict), response)
    finally:
        http.__exit__(None, None, None)
    assert isinstance(error, NotAuthorized)
    assert "Bearer" in error.detail


def test_429_is_retried_after_the_servers_retry_after() -> None:
    app = create_app(quiet(rate_limit=RateLimit(1, "second")), loader=loader_for(FakePredictor()))
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    http = ready_client(app)  # its readiness polls are exempt from the limit
    try:
        api = Client(http=http, sleep=sleep)
        assert api.predict("first").label
        second = api.predict("second")  # refused once, then let through after Retry-After
    finally:
        http.__exit__(None, None, None)
    assert second.label == fake_prediction("second").label
    assert waits, waits
    assert all(1 <= w <= 2 for w in waits), waits


def test_429_after_the_retry_limit_raises_rate_limited() -> None:
    app = create_app(quiet(rate_limit=RateLimit(1, "minute")), loader=loader_for(FakePredictor()))
    waits: list[float] = []
    http = ready_client(app)
    try:
        api = Client(http=http, retry=RetryPolicy(retries=2, max_wait_s=3600), sleep=waits.append)
        api.predict("first")
        with pytest.raises(RateLimited) as refused:
            api.predict("second")
    finally:
        http.__exit__(None, None, None)
    assert len(waits) == 2  # two retries, then the error
    assert refused.value.retry_after is not None
    assert refused.value.retry_after >= 1
    assert "rate limit" in refused.value.detail or "retry after" in refused.value.detail


def loading_app(release: threading.Event) -> Litestar:
    def slow_loader(_: Settings) -> Model:
        release.wait(timeout=30)
        return FakePredictor()

    return create_app(quiet(), loader=slow_loader)


def test_503_while_loading_is_retried_until_the_model_serves() -> None:
    release = threading.Event()
    http = TestClient(loading_app(release))
    http.__enter__()
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the server says 5 s; load the model instead of waiting
        waits.append(seconds)
        release.set()
        for _ in range(500):
            if http.get("/health/ready").status_code == 200:
                return
            time.sleep(0.01)

    try:
        api = Client(http=http, sleep=sleep)
        assert api.health().status == "loading"  # health is reported, never retried
        answer = api.predict("good")
    finally:
        release.set()
        http.__exit__(None, None, None)
    assert waits == [5.0]
    assert answer.label == "positive"


def test_retry_limit_and_max_wait_bound_the_retries() -> None:
    release = threading.Event()
    http = TestClient(loading_app(release))
    http.__enter__()
    waits: list[float] = []
    try:
        patient = Client(http=http, retry=RetryPolicy(retries=2), sleep=waits.append)
        with pytest.raises(Unavailable) as gave_up:
            patient.predict("x")
        hasty = Client(http=http, retry=RetryPolicy(max_wait_s=1), sleep=waits.append)
        with pytest.raises(Unavailable):
            hasty.predict("x")  # Retry-After 5 is longer than it may wait: no retry
    finally:
        release.set()
        http.__exit__(None, None, None)
    assert waits == [5.0, 5.0]
    assert gave_up.value.status_code == 503
    assert "loading" in gave_up.value.detail
    assert gave_up.value.retry_after == 5.0


def test_backoff_without_retry_after_doubles_up_to_its_cap() -> None:
    answers = iter([503, 503, 503, 200])
    ok = {"label": "positive", "score": 0.9, "scores": {"positive": 0.9, "negative": 0.1},
          "truncated": False, "cached": False, "model": {"name": "m", "version": "1"}}  # fmt: skip

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        body = ok if status == 200 else {"status_code": status, "detail": "busy"}
        return httpx.Response(status, json=body)

    waits: list[float] = []
    http = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://clfserve")
    policy = RetryPolicy(retries=3, backoff_s=0.5, max_backoff_s=1.5)
    answer = Client(http=http, retry=policy, sleep=waits.append).predict("x")
    assert waits == [0.5, 1.0, 1.5]
    assert answer.label == "positive"
    assert RetryPolicy(retries=0).delay(1, 503, None) is None
    assert RetryPolicy().delay(1, 500, None) is None


@pytest.mark.anyio
async def test_async_client_predicts_and_retries(app: Litestar) -> None:
    async with AsyncTestClient(app) as http:
        for _ in range(500):
            if (await http.get("/health/ready")).status_code == 200:
                break
            time.sleep(0.01)
        async with AsyncClient(http=http) as api:
            answer = await api.predict("good")
            batch = await api.batch_predict(["good", "bad"])
            info = await api.model()
            health = await api.health()
            with pytest.raises(InvalidRequest) as error:
                await api.predict("")
    assert answer.label == "positive"
    assert batch.labels == ["positive", "negative"]
    assert info.version == "v1"
    assert health.ready
    assert error.value.detail == "text must not be empty or only whitespace"


@pytest.mark.anyio
async def test_async_client_honours_retry_after() -> None:
    answers = iter([(429, "2"), (503, "1"), (200, None)])
    ok = {"predictions": [], "model": {"name": "m", "version": "1"}}

    def handler(request: httpx.Request) -> httpx.Response:
        status, after = next(answers)
        headers = {"Retry-After": after} if after else {}
        return httpx.Response(status, json=ok if status == 200 else {"detail": "wait"},
                              headers=headers)  # fmt: skip

    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    transport = httpx.MockTransport(handler)
    async with httpx.AsyncClient(transport=transport, base_url="http://clfserve") as http:
        batch = await AsyncClient(http=http, sleep=sleep).batch_predict([])
    assert waits == [2.0, 1.0]
    assert batch.predictions == []
