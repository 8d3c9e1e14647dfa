"""The service around the real runtime on the tiny artefact (built offline by tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from service_fakes import quiet, ready_client, wait_until_settled

from clfserve.runtime import Classifier
from clfserve.service import create_app
from reviews import REVIEWS

pytestmark = pytest.mark.slow

TEXTS = REVIEWS


@pytest.fixture(scope="module")
def classifier(tiny_artefact: Path) -> Classifier:
    return Classifier.load(tiny_artefact)


@pytest.fixture(scope="module")
def real(tiny_artefact: Path) -> Iterator[TestClient[Litestar]]:
    client = ready_client(create_app(quiet(model_uri=str(tiny_artefact))))
    try:
        yield client
    finally:
        client.__exit__(None, None, None)


def test_predict_equals_the_runtime(real: TestClient[Litestar], classifier: Classifier) -> None:
    for text in TEXTS:
        body = real.post("/predict", json={"text": text}).json()
        (expected,) = classifier.predict([text])
        assert body["label"] == expected.label
        assert body["scores"] == pytest.approx(expected.scores, abs=1e-6)
        assert body["truncated"] == expected.truncated


def test_batch_equals_the_runtime_in_order(
    real: TestClient[Litestar], classifier: Classifier
) -> None:
    texts = [f"{t} (batch)" for t in TEXTS]
    body = real.post("/batch_predict", json={"texts": texts}).json()
    expected = classifier.predict(texts)
    assert [p["label"] for p in body["predictions"]] == [e.label for e in expected]
    for got, want in zip(body["predictions"], expected, strict=True):
        assert got["scores"] == pytest.approx(want.scores, abs=1e-6)


def test_batch_over_the_batch_size_equals_the_runtime_in_order(
    real: TestClient[Litestar], classifier: Classifier
) -> None:
    """More texts than the model's batch size: tokenized once, planned and run chunk by chunk
    through the gateway, answered in the caller's order."""
    texts = [f"{TEXTS[i % len(TEXTS)]} ({i} big batch)" for i in range(4 * 8 * 2 + 5)]
    texts += texts[:3]  # repeats
    body = real.post("/batch_predict", json={"texts": texts}).json()
    # The gateway runs each distinct text once; the runtime on the same distinct texts plans the
    # same chunks (int8 scores depend slightly on a text's chunk-mates, so compare like with like).
    unique = list(dict.fromkeys(texts))
    by_text = dict(zip(unique, classifier.predict(unique), strict=True))
    expected = [by_text[t] for t in texts]
    assert [p["label"] for p in body["predictions"]] == [e.label for e in expected]
    for got, want in zip(body["predictions"], expected, strict=True):
        assert got["scores"] == pytest.approx(want.scores, abs=1e-6)
        assert got["truncated"] == want.truncated
    metrics = real.get("/metrics").text
    assert 'clfserve_inference_seconds_count{kind="encode"}' in metrics


def test_long_text_is_truncated_and_says_so(real: TestClient[Litestar]) -> None:
    body = real.post("/predict", json={"text": "good " * 500}).json()
    assert body["truncated"] is True


def test_model_reports_the_real_artefact(
    real: TestClient[Litestar], classifier: Classifier
) -> None:
    body = real.get("/model").json()
    info = classifier.info
    assert body["status"] == "ready"
    assert (body["name"], body["version"], body["checksum"]) == (
        info.name,
        info.version,
        info.checksum,
    )
    assert body["variant"] == "int8"
    assert body["providers"][0] == "CPUExecutionProvider"
    assert body["labels"] == ["negative", "positive"]
    assert body["max_length"] == 64
    response = real.get("/health/live")
    assert response.headers["x-model-version"] == info.version


def test_fp32_variant_is_served_when_asked(tiny_artefact: Path) -> None:
    client = ready_client(create_app(quiet(model_uri=str(tiny_artefact), variant="fp32")))
    try:
        assert client.get("/model").json()["variant"] == "fp32"
        assert client.post("/predict", json={"text": "fine"}).status_code == 200
    finally:
        client.__exit__(None, None, None)


def test_missing_folder_fails_with_the_reason(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with TestClient(create_app(quiet(model_uri=str(missing)))) as client:
        assert wait_until_settled(client) == "failed"
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert "no-such-model" in ready.json()["detail"]
        assert client.post("/predict", json={"text": "x"}).status_code == 503


def test_broken_artefact_fails_with_the_reason(tiny_artefact: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_artefact, broken)
    (broken / "model.int8.onnx").write_bytes(b"not a model")
    with TestClient(create_app(quiet(model_uri=str(broken)))) as client:
        assert wait_until_settled(client) == "failed"
        detail = client.get("/health/ready").json()["detail"]
        assert "checksum mismatch" in detail


@pytest.mark.parametrize(("configured", "expected"), [(None, 8), (16, 16)])
def test_batch_size_defaults_to_eight_rows_on_cpu(
    tiny_artefact: Path, configured: int | None, expected: int
) -> None:
    from clfserve.service.loading import load_model

    settings = quiet(model_uri=str(tiny_artefact), device="cpu", batch_size=configured)
    loaded = load_model(settings)
    assert isinstance(loaded, Classifier)
    assert loaded.batch_size == expected


@pytest.mark.parametrize(("configured", "expected"), [("auto", 8.0), (None, None), (3.5, 3.5)])
def test_the_run_cost_reaches_the_runtime(
    tiny_artefact: Path, configured: float | str | None, expected: float | None
) -> None:
    from clfserve.service.loading import load_model

    loaded = load_model(quiet(model_uri=str(tiny_artefact), device="cpu", run_cost=configured))
    assert isinstance(loaded, Classifier)
    assert loaded.run_cost == expected


def test_the_served_row_budget_is_the_configured_batch_size(tiny_artefact: Path) -> None:
    from clfserve.service.app import context_of

    settings = quiet(model_uri=str(tiny_artefact), device="cpu", batch_size=3, run_cost=None)
    app = create_app(settings)  # fixed chunks of 3: the count of runs below is known
    client = ready_client(app)
    try:
        assert context_of(app).gateway.row_budget() == 3
        texts = [f"{TEXTS[i % len(TEXTS)]} #{i}" for i in range(13)]  # over 4 chunks of 3
        assert client.post("/batch_predict", json={"texts": texts}).status_code == 200
        metrics = client.get("/metrics").text
    finally:
        client.__exit__(None, None, None)
    assert 'clfserve_inference_seconds_count{kind="batch"} 5.0' in metrics  # 3 + 3 + 3 + 3 + 1


def test_drift_of_the_real_model_against_its_own_reference(tiny_artefact: Path) -> None:
    """Its own validation texts read stable; the same texts padded to truncation drift on
    tokens and truncation (not on anything the model did not see change)."""
    from clfserve.evaluation.datasets import load_dataset
    from clfserve.service.staleness import StalenessSettings

    staleness = StalenessSettings().replace(
        initial_delay_s=None, tracking="off", scheduler="off", drift_window=256,
        drift_min_samples=200,
    )  # fmt: skip
    texts = load_dataset(str(tiny_artefact / "validation.jsonl")).texts
    client = ready_client(create_app(quiet(model_uri=str(tiny_artefact), staleness=staleness)))
    try:
        for start in range(0, len(texts), 128):
            client.post("/batch_predict", json={"texts": list(texts[start : start + 128])})
        same = client.get("/staleness").json()["drift"]
        assert (same["status"], same["count"]) == ("stable", 256)
        assert all(s["value"] < 0.05 for s in same["signals"].values()), same["signals"]
        long = [f"{text} {' and then the film goes on' * 12}" for text in texts]
        for start in range(0, len(long), 128):
            client.post("/batch_predict", json={"texts": long[start : start + 128]})
        shifted = client.get("/staleness").json()["drift"]
    finally:
        client.__exit__(None, None, None)
    assert shifted["status"] == "drifted"
    assert shifted["signals"]["truncated"]["drifted"] is True
    assert shifted["signals"]["tokens"]["drifted"] is True


@pytest.mark.parametrize(("spinning", "entry"), [(False, "0"), (True, None)])
def test_the_served_session_spins_only_when_told(
    tiny_artefact: Path, spinning: bool, entry: str | None
) -> None:
    from clfserve.registry import ResolvedModel
    from clfserve.service.loading import open_model

    settings = quiet(model_uri=str(tiny_artefact), thread_spinning=spinning)
    model = open_model(settings, ResolvedModel(tiny_artefact))
    assert isinstance(model, Classifier)
    options = model.session.get_session_options()
    try:
        got: str | None = options.get_session_config_entry("session.intra_op.allow_spinning")
    except Exception:  # never set: ONNX Runtime's default, spinning
        got = None
    assert got == entry
