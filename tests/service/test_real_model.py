"""The service around the real runtime on the tiny artefact (built offline by tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from service_fakes import ready_client, wait_until_settled

from clfserve.runtime import Classifier
from clfserve.service import Settings, create_app

pytestmark = pytest.mark.slow

TEXTS = [
    "a gorgeous, witty, seductive movie",
    "dull, lifeless and far too long",
    "ok",
    "the performances are wonderful but the script falls apart in the second half " * 3,
]


@pytest.fixture(scope="module")
def classifier(tiny_artefact: Path) -> Classifier:
    return Classifier.load(tiny_artefact)


@pytest.fixture(scope="module")
def real(tiny_artefact: Path) -> Iterator[TestClient[Litestar]]:
    settings = Settings().replace(model_uri=str(tiny_artefact), rate_limit=None)
    client = ready_client(create_app(settings))
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
    settings = Settings().replace(model_uri=str(tiny_artefact), variant="fp32", rate_limit=None)
    client = ready_client(create_app(settings))
    try:
        assert client.get("/model").json()["variant"] == "fp32"
        assert client.post("/predict", json={"text": "fine"}).status_code == 200
    finally:
        client.__exit__(None, None, None)


def test_missing_folder_fails_with_the_reason(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    settings = Settings().replace(model_uri=str(missing), rate_limit=None)
    with TestClient(create_app(settings)) as client:
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
    settings = Settings().replace(model_uri=str(broken), rate_limit=None)
    with TestClient(create_app(settings)) as client:
        assert wait_until_settled(client) == "failed"
        detail = client.get("/health/ready").json()["detail"]
        assert "checksum mismatch" in detail


@pytest.mark.parametrize(("configured", "expected"), [(None, 8), (16, 16)])
def test_batch_size_defaults_to_eight_rows_on_cpu(
    tiny_artefact: Path, configured: int | None, expected: int
) -> None:
    from clfserve.service.predictor import load_classifier

    settings = Settings().replace(model_uri=str(tiny_artefact), device="cpu", batch_size=configured)
    loaded = load_classifier(settings)
    assert isinstance(loaded, Classifier)
    assert loaded.batch_size == expected
