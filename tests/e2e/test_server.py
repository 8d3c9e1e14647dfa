"""End to end: `clfserve serve` as a real process on 127.0.0.1, serving the tiny artefact."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_process import Server, running_server, wait_listening

from clfserve.client import AsyncClient, Client, Prediction, RateLimited, RetryPolicy
from clfserve.runtime import Classifier

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

REVIEWS = [
    "a gorgeous, witty, seductive movie",
    "dull, lifeless and far too long",
    "the cast is wonderful",
    "a mess from start to finish",
    "not bad at all",
]

BAD_INPUTS = [
    # (route, body, status)
    ("/predict", b'{"text": ""}', 422),
    ("/predict", b'{"text": "   "}', 422),
    ("/predict", b'{"text": "' + b"a" * 2001 + b'"}', 422),
    ("/predict", b'{"text": 1}', 422),
    ("/predict", b"{}", 422),
    ("/predict", b'{"text": "a", "junk": true}', 422),
    ("/predict", b'{"text": "a"', 400),
    ("/predict", b'{"text": "\xff\xfe"}', 400),
    ("/predict", b"", 400),
    ("/predict", b'{"text": "' + b"a" * 70_000 + b'"}', 413),
    ("/batch_predict", b'{"texts": []}', 422),
    ("/batch_predict", b'{"texts": [' + b",".join([b'"x"'] * 9) + b"]}", 422),
    ("/batch_predict", b'{"texts": ["ok", 5]}', 422),
]


@pytest.fixture(scope="module")
def classifier(tiny_artefact: Path) -> Classifier:
    """The runtime called directly, fp32 like the server (batch-invariant, unlike int8)."""
    return Classifier.load(tiny_artefact, variant="fp32")


@pytest.fixture(scope="module")
def server(tiny_artefact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "CLFSERVE_MODEL_URI": str(tiny_artefact),
        "CLFSERVE_VARIANT": "fp32",
        "CLFSERVE_RATE_LIMIT": "100000/minute",
        "CLFSERVE_MAX_TEXT_CHARS": "2000",
        "CLFSERVE_MAX_BATCH_ITEMS": "8",
        "CLFSERVE_MAX_BODY_BYTES": "65536",
        "CLFSERVE_THREADS": "1",
    }
    with running_server(tmp_path_factory.mktemp("e2e-logs"), env) as running:
        yield running


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        yield client


@pytest.fixture
def api(server: Server) -> Iterator[Client]:
    with Client(server.url, timeout=30.0) as client:
        yield client


def test_predictions_equal_the_runtime(
    api: Client, http: httpx.Client, classifier: Classifier
) -> None:
    for text in REVIEWS:
        answer = api.predict(text)
        (expected,) = classifier.predict([text])
        assert answer.label == expected.label
        assert answer.scores == pytest.approx(expected.scores, abs=1e-5)
        assert answer.model.version == classifier.info.version
    response = http.post("/predict", json={"text": REVIEWS[0]})
    assert response.headers["x-model-version"] == classifier.info.version


def test_batch_keeps_the_order(api: Client, classifier: Classifier) -> None:
    texts = [f"{text} (in a batch)" for text in REVIEWS]
    batch = api.batch_predict(texts)
    expected = classifier.predict(texts)
    assert len(batch.predictions) == len(texts)
    for got, want in zip(batch.predictions, expected, strict=True):
        assert got.label == want.label
        assert got.scores == pytest.approx(want.scores, abs=1e-5)


def test_repeat_is_a_cache_hit(api: Client) -> None:
    text = "a repeat performance"
    first = api.predict(text)
    second = api.predict(text)
    assert (first.cached, second.cached) == (False, True)
    assert second.scores == first.scores
    batch = api.batch_predict([text, "something new"])
    assert [p.cached for p in batch.predictions] == [True, False]


@pytest.mark.parametrize(("route", "body", "status"), BAD_INPUTS)
def test_bad_input_gets_its_4xx_and_the_server_keeps_answering(
    http: httpx.Client, route: str, body: bytes, status: int
) -> None:
    response = http.post(route, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert http.post("/predict", json={"text": "still here"}).status_code == 200
    assert http.get("/health/live").status_code == 200


def test_64_concurrent_distinct_texts_each_get_their_own_answer(
    server: Server, classifier: Classifier
) -> None:
    texts = [f"{REVIEWS[i % len(REVIEWS)]} number {i} {'!' * (i % 7)}" for i in range(64)]
    expected = [classifier.predict([text])[0] for text in texts]
    # Distinct expected scores, so a mix-up between callers could not go unnoticed.
    assert len({round(p.scores["positive"], 6) for p in expected}) > 32

    async def fire() -> list[Prediction]:
        limits = httpx.Limits(max_connections=64)
        http = httpx.AsyncClient(base_url=server.url, timeout=60.0, limits=limits)
        async with http, AsyncClient(http=http) as client:
            return await asyncio.gather(*(client.predict(text) for text in texts))

    answers = asyncio.run(fire())
    for text, answer, want in zip(texts, answers, expected, strict=True):
        assert answer.label == want.label, text
        assert answer.scores == pytest.approx(want.scores, abs=1e-5), text
        assert answer.cached is False


def test_model_metrics_and_schema_answer(http: httpx.Client, classifier: Classifier) -> None:
    model = http.get("/model").json()
    assert (model["status"], model["version"], model["variant"]) == (
        "ready",
        classifier.info.version,
        "fp32",
    )
    metrics = http.get("/metrics").text
    assert "clfserve_http_requests_total" in metrics
    assert "clfserve_microbatch_size_bucket" in metrics
    assert http.get("/schema/openapi.json").json()["info"]["title"] == "clfserve"


def test_429_after_the_limit_while_health_answers(tiny_artefact: Path, tmp_path: Path) -> None:
    env = {"CLFSERVE_MODEL_URI": str(tiny_artefact), "CLFSERVE_RATE_LIMIT": "5/minute"}
    with (
        running_server(tmp_path, env) as server,
        httpx.Client(base_url=server.url, timeout=30.0) as http,
    ):
        statuses = [http.post("/predict", json={"text": f"t{i}"}).status_code for i in range(5)]
        assert statuses == [200] * 5
        refused = http.post(
            "/predict",
            json={"text": "one more"},
            headers={
                "x-forwarded-for": "203.0.113.7"  # not a trusted proxy: ignored
            },
        )
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-remaining"] == "0"
        assert "rate limit" in refused.json()["detail"]
        with pytest.raises(RateLimited) as raised:
            Client(http=http, retry=RetryPolicy(retries=0)).predict("and another")
        assert raised.value.retry_after is not None
        assert raised.value.retry_after >= 1
        assert "rate limit" in raised.value.detail
        for _ in range(10):
            assert http.get("/health/live").status_code == 200
        assert http.get("/health/ready").status_code == 200


def test_unloadable_model_stays_unready_with_the_reason(tmp_path: Path) -> None:
    env = {"CLFSERVE_MODEL_URI": str(tmp_path / "missing-model")}
    with running_server(tmp_path, env, ready=False) as server:
        wait_listening(server)
        with httpx.Client(base_url=server.url, timeout=10.0) as http:
            ready = http.get("/health/ready")
            for _ in range(300):
                if ready.json()["status"] != "loading":
                    break
                time.sleep(0.1)
                ready = http.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["status"] == "failed"
            assert "missing-model" in ready.json()["detail"]
            assert http.post("/predict", json={"text": "x"}).status_code == 503
            assert http.get("/health/live").status_code == 200


def test_sigterm_shuts_down_cleanly(tiny_artefact: Path, tmp_path: Path) -> None:
    env = {"CLFSERVE_MODEL_URI": str(tiny_artefact)}
    with running_server(tmp_path, env) as server:
        with httpx.Client(base_url=server.url, timeout=30.0) as http:
            assert http.post("/predict", json={"text": "bye"}).status_code == 200
        # uvicorn re-raises the SIGTERM after its graceful shutdown; a SIGKILL would be -9.
        assert server.stop() in (0, -signal.SIGTERM)
        log = server.log.read_text(errors="replace")
    assert "variant=int8" in log
    assert "provider=CPUExecutionProvider" in log
    assert "http://127.0.0.1:" in log
    assert "Application shutdown complete" in log
    assert "Finished server process" in log


def test_two_worker_processes_serve(tiny_artefact: Path, tmp_path: Path) -> None:
    env = {"CLFSERVE_MODEL_URI": str(tiny_artefact), "CLFSERVE_THREADS": "1"}
    with (
        running_server(tmp_path, env, "--workers", "2") as server,
        httpx.Client(base_url=server.url, timeout=30.0) as http,
    ):
        for i in range(6):
            response = http.post("/predict", json={"text": f"worker check {i}"})
            assert response.status_code == 200
        # Ready means one worker answers; the other may still be loading (it joins the socket
        # only once loaded), so wait, bounded, for both to say they serve.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if server.log.read_text(errors="replace").count("serving clfserve-sentiment") >= 2:
                break
            time.sleep(0.2)
        assert server.log.read_text(errors="replace").count("serving clfserve-sentiment") == 2
