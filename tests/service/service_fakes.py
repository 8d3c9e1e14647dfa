"""Test helpers of the service: a fake predictor at the runtime seam, ready test clients."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from litestar import Litestar
from litestar.testing import TestClient

from clfserve.runtime import InvalidInput, ModelInfo, Prediction
from clfserve.service import Settings
from clfserve.service.predictor import Predictor

LABELS = ("negative", "positive")


def fake_info(version: str = "v1", checksum: str = "c0ffee") -> ModelInfo:
    return ModelInfo(
        name="fake-sentiment",
        version=version,
        checksum=checksum,
        variant="int8",
        providers=("CPUExecutionProvider",),
        labels=LABELS,
        max_length=64,
        threads=1,
        load_seconds=0.01,
        path="/nowhere",
    )


def fake_prediction(text: str) -> Prediction:
    """Deterministic: 'positive' when the text holds 'good', score from the text length."""
    positive = 0.9 if "good" in text else 0.1 + (len(text) % 7) / 100
    label = "positive" if positive >= 0.5 else "negative"
    scores = {"negative": 1 - positive, "positive": positive}
    return Prediction(label, scores[label], scores, truncated=len(text) > 200, n_tokens=len(text))


@dataclass
class FakePredictor:
    """Records every call; optional ``gate`` blocks calls until set (to build up a queue)."""

    info: ModelInfo = field(default_factory=fake_info)
    calls: list[list[str]] = field(default_factory=list)
    gate: threading.Event | None = None
    fail_on: str | None = None

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if self.gate is not None:
            self.gate.wait(timeout=10)
        self.calls.append(list(texts))
        if self.fail_on is not None and self.fail_on in texts:
            raise InvalidInput(f"cannot classify {self.fail_on!r}")
        return [fake_prediction(text) for text in texts]


def loader_for(predictor: Predictor) -> Callable[[Settings], Predictor]:
    return lambda _settings: predictor


AppFactory = Callable[..., Litestar]


def ready_client(app: Litestar) -> TestClient[Litestar]:
    """A started test client whose model has finished loading (bounded wait)."""
    client = TestClient(app)
    client.__enter__()
    for _ in range(500):
        if client.get("/health/ready").status_code == 200:
            return client
        threading.Event().wait(0.01)
    client.__exit__(None, None, None)
    raise AssertionError("the app never became ready")


def wait_until_settled(client: TestClient[Litestar], attempts: int = 3000) -> str:
    """Poll ``GET /model`` (every 10 ms, bounded) until the model is no longer loading."""
    for _ in range(attempts):
        status = str(client.get("/model").json()["status"])
        if status != "loading":
            return status
        threading.Event().wait(0.01)
    raise AssertionError("the model is still loading")
