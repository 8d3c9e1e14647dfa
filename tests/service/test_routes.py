"""Routes with a fake model: shapes, cache flags, headers, health, model info and metrics."""

from __future__ import annotations

import threading

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from service_fakes import (
    AppFactory,
    FakePredictor,
    fake_info,
    fake_prediction,
    quiet,
    ready_client,
    wait_until_settled,
)

from clfserve.runtime import ModelLoadError
from clfserve.service import create_app
from clfserve.service.gateway import WARMUP_TEXTS


def test_predict_answers_with_label_scores_and_model(
    client: TestClient[Litestar], fake: FakePredictor
) -> None:
    response = client.post("/predict", json={"text": "a good movie"})
    assert response.status_code == 200
    body = response.json()
    expected = fake_prediction("a good movie")
    assert body == {
        "label": expected.label,
        "score": expected.score,
        "scores": expected.scores,
        "truncated": False,
        "cached": False,
        "model": {"name": "fake-sentiment", "version": "v1"},
        "prediction_id": body["prediction_id"],
    }
    assert body["prediction_id"].startswith("p1.")
    assert response.headers["x-model-version"] == "v1"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.content))
    assert fake.calls == [["a good movie"]]


def test_the_model_is_warmed_up_through_the_gateway_before_it_is_ready(
    client: TestClient[Litestar], fake: FakePredictor
) -> None:
    assert fake.warmups == [list(WARMUP_TEXTS)]
    assert fake.calls == []
    lines = set(client.get("/metrics").text.splitlines())
    # Two calls: the warm-up texts, then the reference answers recorded at export.
    assert 'clfserve_inference_seconds_count{kind="warmup"} 2.0' in lines


def test_repeat_is_served_from_the_cache(client: TestClient[Litestar], fake: FakePredictor) -> None:
    first = client.post("/predict", json={"text": "again"}).json()
    second = client.post("/predict", json={"text": "again"}).json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["scores"] == second["scores"]
    assert fake.calls == [["again"]]


def test_cache_is_exact_text(client: TestClient[Litestar], fake: FakePredictor) -> None:
    client.post("/predict", json={"text": "Again"})
    assert client.post("/predict", json={"text": "again"}).json()["cached"] is False
    assert client.post("/predict", json={"text": "again "}).json()["cached"] is False
    assert len(fake.calls) == 3


def test_disabled_cache_always_asks_the_model(make_app: AppFactory, fake: FakePredictor) -> None:
    client = ready_client(make_app(cache_enabled=False))
    try:
        for _ in range(3):
            assert client.post("/predict", json={"text": "same"}).json()["cached"] is False
        assert (
            client.post("/batch_predict", json={"texts": ["same"]}).json()["predictions"][0][
                "cached"
            ]
            is False
        )
    finally:
        client.__exit__(None, None, None)
    assert len(fake.calls) == 4


def test_batch_keeps_order_and_only_sends_misses(
    client: TestClient[Litestar], fake: FakePredictor
) -> None:
    client.post("/predict", json={"text": "known good"})
    texts = ["zeta", "known good", "a good one", "zeta", "b"]
    response = client.post("/batch_predict", json={"texts": texts})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == {"name": "fake-sentiment", "version": "v1"}
    assert [p["scores"] for p in body["predictions"]] == [fake_prediction(t).scores for t in texts]
    assert [p["cached"] for p in body["predictions"]] == [False, True, False, False, False]
    assert fake.calls[-1] == ["b", "zeta", "a good one"]  # misses, once each, shortest first
    again = client.post("/batch_predict", json={"texts": texts}).json()
    assert all(p["cached"] for p in again["predictions"])
    assert len(fake.calls) == 2


def test_new_model_version_never_gets_old_answers(make_app: AppFactory) -> None:
    """Cache keys carry the model identity: a second app on v2 sharing nothing else agrees."""
    v1 = FakePredictor(info=fake_info("v1", checksum="aaa"))
    app = make_app(v1)
    client = ready_client(app)
    try:
        assert client.post("/predict", json={"text": "x"}).json()["cached"] is False
        from clfserve.service.app import context_of

        ctx = context_of(app)
        v2 = FakePredictor(info=fake_info("v2", checksum="bbb"))
        ctx.model.ready(v2)  # what a model reload does
        after = client.post("/predict", json={"text": "x"})
        assert after.json()["cached"] is False
        assert after.json()["model"]["version"] == "v2"
        assert after.headers["x-model-version"] == "v2"
        assert v2.calls == [["x"]]
    finally:
        client.__exit__(None, None, None)


def test_every_response_carries_the_model_version(client: TestClient[Litestar]) -> None:
    responses = [
        client.get("/health/live"),
        client.get("/health/ready"),
        client.get("/model"),
        client.get("/metrics"),
        client.get("/nope"),
        client.post("/predict", json={"text": ""}),
        client.post("/predict", json={"text": "ok"}),
    ]
    assert {r.headers.get("x-model-version") for r in responses} == {"v1"}


def test_health(client: TestClient[Litestar]) -> None:
    assert client.get("/health/live").json() == {"status": "alive"}
    assert client.get("/health/ready").json() == {"status": "ready"}


def test_model_describes_what_is_served(client: TestClient[Litestar]) -> None:
    body = client.get("/model").json()
    assert body["status"] == "ready"
    assert body["name"] == "fake-sentiment"
    assert body["version"] == "v1"
    assert body["variant"] == "int8"
    assert body["providers"] == ["CPUExecutionProvider"]
    assert body["device"] == "cpu"
    assert body["labels"] == ["negative", "positive"]
    assert body["max_length"] == 64
    assert body["load_seconds"] == 0.01
    assert body["staleness"] is None


def test_model_shows_the_staleness_verdict_once_set(make_app: AppFactory) -> None:
    from clfserve.service.app import context_of

    app = make_app()
    client = ready_client(app)
    try:
        context_of(app).model.staleness = {"stale": True, "f1": 0.5}
        assert client.get("/model").json()["staleness"] == {"stale": True, "f1": 0.5}
    finally:
        client.__exit__(None, None, None)


def test_metrics_count_requests_predictions_and_cache(client: TestClient[Litestar]) -> None:
    client.post("/predict", json={"text": "m"})
    client.post("/predict", json={"text": "m"})
    client.post("/batch_predict", json={"texts": ["m", "n"]})
    client.post("/predict", json={"text": ""})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    expected = {
        'clfserve_http_requests_total{method="POST",route="/predict",status="200"} 2.0',
        'clfserve_http_requests_total{method="POST",route="/predict",status="422"} 1.0',
        "clfserve_cache_hits_total 2.0",
        "clfserve_cache_misses_total 2.0",
        'clfserve_predictions_total{source="cache"} 2.0',
        'clfserve_predictions_total{source="model"} 2.0',
        "clfserve_microbatch_size_count 1.0",
        "clfserve_microbatch_queue_wait_seconds_count 1.0",
        'clfserve_inference_seconds_count{kind="batch"} 1.0',
        'clfserve_inference_seconds_count{kind="microbatch"} 1.0',
        "clfserve_model_ready 1.0",
    }
    missing = expected - set(text.splitlines())
    assert not missing, sorted(missing)
    assert "clfserve_http_request_duration_seconds_bucket" in text
    assert 'clfserve_model_info{name="fake-sentiment",provider="CPUExecutionProvider"' in text


def test_openapi_documents_the_request_bodies(client: TestClient[Litestar]) -> None:
    schema = client.get("/schema/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["required"] == ["text"]
    batch = schema["paths"]["/batch_predict"]["post"]["requestBody"]["content"]
    assert batch["application/json"]["schema"]["properties"]["texts"]["type"] == "array"
    assert {"/health/live", "/health/ready", "/model", "/metrics"} <= set(schema["paths"])


def test_model_not_loaded_yet_means_503_everywhere_but_live(make_app: AppFactory) -> None:
    gate = threading.Event()
    release = FakePredictor()

    def slow_loader(_settings: object) -> FakePredictor:
        gate.wait(timeout=10)
        return release

    app = create_app(quiet(), loader=slow_loader)
    with TestClient(app) as client:
        try:
            assert client.get("/health/live").status_code == 200
            ready = client.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json() == {"status": "loading", "detail": "the model is loading"}
            predict = client.post("/predict", json={"text": "x"})
            assert predict.status_code == 503
            assert "loading" in predict.json()["detail"]
            assert predict.headers["retry-after"]
            assert predict.headers["x-model-version"] == "none"
            assert client.post("/batch_predict", json={"texts": ["x"]}).status_code == 503
            assert client.get("/model").json()["status"] == "loading"
        finally:
            gate.set()
        for _ in range(500):
            if client.get("/health/ready").status_code == 200:
                break
            threading.Event().wait(0.01)
        assert client.post("/predict", json={"text": "x"}).status_code == 200


MISSING = "/models/x/manifest.json: missing; is this an artefact folder?"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ModelLoadError(MISSING), MISSING),
        (RuntimeError("out of memory"), "RuntimeError: out of memory"),  # a crash names its type
    ],
    ids=["load error", "unexpected crash"],
)
def test_failed_load_keeps_the_reason_and_answers_503(error: Exception, reason: str) -> None:
    def broken(_settings: object) -> FakePredictor:
        raise error

    app = create_app(quiet(), loader=broken)
    with TestClient(app) as client:
        assert wait_until_settled(client) == "failed"
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "failed"
        assert ready.json()["detail"] == reason
        predict = client.post("/predict", json={"text": "x"})
        assert predict.status_code == 503
        assert reason in predict.json()["detail"]
        assert client.get("/health/live").status_code == 200
        assert "clfserve_model_ready 0.0" in client.get("/metrics").text


def test_runtime_errors_map_to_json_not_tracebacks(make_app: AppFactory) -> None:
    class Exploding(FakePredictor):
        """Warms up fine, then every model call crashes."""

        def predict_rows(self, encoded: object, rows: object) -> list[object]:  # type: ignore[override]
            raise RuntimeError("segfault-ish")

    client = ready_client(make_app(Exploding()))
    try:
        response = client.post("/predict", json={"text": "x"})
        assert response.status_code == 500
        assert response.json() == {"status_code": 500, "detail": "internal server error"}
        batch = client.post("/batch_predict", json={"texts": ["x"]})
        assert batch.status_code == 500
        assert client.get("/health/live").status_code == 200
    finally:
        client.__exit__(None, None, None)


def test_invalid_input_from_the_runtime_is_422(make_app: AppFactory) -> None:
    client = ready_client(make_app(FakePredictor(fail_on="bad")))
    try:
        response = client.post("/predict", json={"text": "bad"})
        assert response.status_code == 422
        assert "cannot classify 'bad'" in response.json()["detail"]
    finally:
        client.__exit__(None, None, None)


def test_big_batches_reach_the_model_in_length_sorted_chunks(
    make_app: AppFactory, fake: FakePredictor
) -> None:
    """Over the call budget (`CHUNKS_PER_CALL` chunks of the batch size), texts are tokenized
    once, then each length-sorted chunk of at most batch_size rows is its own model call (the
    calls may run at once, in lanes, so their order is not checked)."""
    fake.batch_size = 2
    client = ready_client(make_app())
    try:
        texts = ["x" * (10 - i) for i in range(10)]
        body = client.post("/batch_predict", json={"texts": texts}).json()
    finally:
        client.__exit__(None, None, None)
    assert [p["scores"] for p in body["predictions"]] == [fake_prediction(t).scores for t in texts]
    assert fake.encodes == [texts]
    chunks = sorted(sorted(len(t) for t in call) for call in fake.calls)
    assert chunks == [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]


def test_big_batches_run_each_distinct_text_once(make_app: AppFactory, fake: FakePredictor) -> None:
    fake.batch_size = 1
    client = ready_client(make_app(cache_enabled=False))
    try:
        texts = ["bb", "a", "ccc", "a", "bb", "dddd", "a", "e"]
        body = client.post("/batch_predict", json={"texts": texts}).json()
    finally:
        client.__exit__(None, None, None)
    assert [p["label"] for p in body["predictions"]] == [fake_prediction(t).label for t in texts]
    assert [p["scores"] for p in body["predictions"]] == [fake_prediction(t).scores for t in texts]
    assert fake.encodes == [["bb", "a", "ccc", "dddd", "e"]]
    assert sorted(fake.calls) == [["a"], ["bb"], ["ccc"], ["dddd"], ["e"]]


def test_without_microbatching_each_predict_is_its_own_call(
    make_app: AppFactory, fake: FakePredictor
) -> None:
    client = ready_client(make_app(microbatch=False))
    try:
        for text in ("one", "two"):
            body = client.post("/predict", json={"text": text}).json()
            assert body["scores"] == fake_prediction(text).scores
        lines = set(client.get("/metrics").text.splitlines())
    finally:
        client.__exit__(None, None, None)
    assert fake.calls == [["one"], ["two"]]
    assert 'clfserve_inference_seconds_count{kind="single"} 2.0' in lines
    assert "clfserve_microbatch_size_count 0.0" in lines


def test_with_several_workers_startup_waits_for_the_model() -> None:
    """Each worker process takes connections only once its model is loaded (or failed)."""
    loaded = threading.Event()

    def slow_loader(_settings: object) -> FakePredictor:
        threading.Event().wait(0.2)
        loaded.set()
        return FakePredictor()

    app = create_app(quiet(workers=2), loader=slow_loader)
    with TestClient(app) as client:  # entering runs the lifespan startup
        assert loaded.is_set()
        assert client.get("/health/ready").status_code == 200


def test_a_model_that_does_not_reproduce_its_references_never_serves(
    make_app: AppFactory,
) -> None:
    fake = FakePredictor(mismatches=["'a fine film': expected positive, got negative"])
    with TestClient(make_app(fake)) as client:
        assert wait_until_settled(client) == "failed"
        answer = client.post("/predict", json={"text": "a fine film"})
        detail = client.get("/model").json()["detail"]
    assert answer.status_code == 503
    assert "does not reproduce its reference answers" in detail
    assert "expected positive, got negative" in detail
    assert fake.calls == []


def test_request_metrics_count_by_route_template_and_never_by_raw_path(
    client: TestClient[Litestar],
) -> None:
    for _ in range(3):
        assert client.post("/predict", json={"text": "a good movie"}).status_code == 200
    assert client.post("/predict", json={"text": ""}).status_code == 422
    for i in range(5):  # a scanner must not mint a series per path
        assert client.get(f"/no/such/path/{i}").status_code == 404
    metrics = client.get("/metrics").text
    series = 'clfserve_http_requests_total{method="POST",route="/predict",status="%s"} %s'
    assert series % (200, "3.0") in metrics
    assert series % (422, "1.0") in metrics
    assert "/no/such/path" not in metrics
