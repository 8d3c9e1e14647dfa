"""Test helpers of the service: a fake model at the runtime seam, ready test clients."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from litestar import Litestar
from litestar.testing import TestClient

from clfserve.evaluation import Dataset
from clfserve.evaluation.evaluate import result_of
from clfserve.runtime import Encoded, InvalidInput, ModelInfo, Prediction
from clfserve.runtime.inputs import Rows, plan_chunks
from clfserve.service import Settings, StalenessSettings
from clfserve.service.gateway import WARMUP_TEXTS
from clfserve.service.model_state import Model
from clfserve.service.staleness.record import ModelRef, Scored, Verdict

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


def fake_scored(verdict: Verdict) -> Scored:
    """What a staleness run of `fake_info`'s model found on two texts (half right), as
    ``verdict``."""
    info = fake_info()
    data = Dataset(("a good movie", "dull"), ("positive", "negative"), "two.csv")
    result = result_of(data, ["positive", "positive"], info, 0.01)
    model = ModelRef(info.name, info.version, info.variant, result.provider, "fake")
    return Scored(result, model, result.macro_f1, verdict)


def fake_prediction(text: str) -> Prediction:
    """Deterministic: 'positive' when the text holds 'good', score from the text length."""
    positive = 0.9 if "good" in text else 0.1 + (len(text) % 7) / 100
    label = "positive" if positive >= 0.5 else "negative"
    scores = {"negative": 1 - positive, "positive": positive}
    return Prediction(label, scores[label], scores, truncated=len(text) > 200, n_tokens=len(text))


@dataclass(frozen=True)
class FakeEncoded(Encoded):
    """`Encoded` that remembers its texts, so `FakePredictor.predict_rows` can answer them."""

    texts: tuple[str, ...] = ()


@dataclass
class FakePredictor:
    """A `Model`: one "token" per character, `fake_prediction` answers.

    ``calls`` records the texts of every model call (`predict_rows`, which `predict` runs per
    length-sorted chunk, as the runtime does); the gateway's warm-up goes to ``warmups``
    instead, and every `encode` to ``encodes``. An optional ``gate`` blocks model calls until
    set (to build up a queue); ``fail_on`` makes a call holding that text raise `InvalidInput`
    at once, without waiting for the gate.
    """

    info: ModelInfo = field(default_factory=fake_info)
    batch_size: int = 8
    calls: list[list[str]] = field(default_factory=list)
    warmups: list[list[str]] = field(default_factory=list)
    encodes: list[list[str]] = field(default_factory=list)
    gate: threading.Event | None = None
    fail_on: str | None = None
    mismatches: list[str] = field(default_factory=list)
    """What `check_references` reports (a model that answers differently from its export)."""

    def check_references(self) -> list[str]:
        return list(self.mismatches)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if tuple(texts) == WARMUP_TEXTS:
            self.warmups.append(list(texts))
            return [fake_prediction(text) for text in texts]
        encoded = self._encode(texts)
        answers: dict[int, Prediction] = {}
        for rows in self.plan(encoded):
            answers.update(zip(rows.tolist(), self.predict_rows(encoded, rows), strict=True))
        return [answers[i] for i in range(len(texts))]

    def encode(self, texts: Sequence[str]) -> Encoded:
        self.encodes.append(list(texts))
        return self._encode(texts)

    def plan(self, encoded: Encoded) -> list[Rows]:
        return list(plan_chunks(encoded.lengths, self.batch_size))

    def predict_rows(self, encoded: Encoded, rows: Rows) -> list[Prediction]:
        assert isinstance(encoded, FakeEncoded)
        assert len(rows) <= self.batch_size, f"{len(rows)} rows > batch size {self.batch_size}"
        texts = [encoded.texts[i] for i in rows.tolist()]
        failing = self.fail_on is not None and self.fail_on in texts
        if self.gate is not None and not failing:
            self.gate.wait(timeout=10)
        self.calls.append(texts)
        if failing:
            raise InvalidInput(f"cannot classify {self.fail_on!r}")
        return [fake_prediction(text) for text in texts]

    @staticmethod
    def _encode(texts: Sequence[str]) -> FakeEncoded:
        return FakeEncoded(
            ids=[[0] * max(1, len(text)) for text in texts],
            type_ids=[[0] * max(1, len(text)) for text in texts],
            truncated=[len(text) > 200 for text in texts],
            texts=tuple(texts),
        )


def loader_for(model: Model) -> Callable[[Settings], Model]:
    return lambda _settings: model


def quiet(**changes: object) -> Settings:
    """Settings for a test app: throttling and the staleness monitor off unless ``changes``
    (validated) say otherwise."""
    defaults = {"rate_limit": None, "staleness": StalenessSettings().replace(enabled=False)}
    return Settings().replace(**{**defaults, **changes})


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
