"""`evaluate`: batched predictions scored against a dataset, through any `Scorer`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clfserve.runtime.classifier import Classifier
from clfserve.evaluation.datasets import Dataset, load_split
from clfserve.evaluation.evaluate import evaluate
from clfserve.runtime.prediction import Prediction


@dataclass(frozen=True)
class _Info:
    name: str = "fake"
    version: str = "0"
    variant: str = "int8"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    labels: tuple[str, ...] = ("negative", "positive")


class KeywordModel:
    """Says positive when the text contains 'good'; records the batch sizes it was given."""

    def __init__(self) -> None:
        self.info = _Info()
        self.batches: list[int] = []

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        self.batches.append(len(texts))
        return [
            Prediction(
                label="positive" if "good" in t else "negative",
                score=1.0,
                scores={},
                truncated=False,
                n_tokens=1,
            )
            for t in texts
        ]


def test_scores_in_chunks_and_reports_unknown_labels() -> None:
    texts = ("good", "good", "bad", "bad", "good meh")
    labels = ("positive", "negative", "negative", "negative", "neutral")
    model = KeywordModel()
    result = evaluate(model, Dataset(texts, labels, name="toy"), chunk_size=2)
    assert model.batches == [2, 2, 1]
    assert result.accuracy == 3 / 5
    assert result.unknown_labels == {"neutral": 1}
    assert result.confusion == [[2, 1], [0, 1]]
    assert result.predicted == ("positive", "positive", "negative", "negative", "positive")
    out = result.to_dict()
    assert "predicted" not in out
    assert out["model_name"] == "fake"
    assert out["provider"] == "CPUExecutionProvider"
    assert out["dataset"] == "toy"


def test_real_classifier_on_the_validation_split(tiny_artefact: Path) -> None:
    classifier = Classifier.load(tiny_artefact, device="cpu", variant="fp32")
    validation = load_split("rotten_tomatoes", "validation")
    subset = validation.subset(range(256))
    result = evaluate(classifier, subset)
    assert result.n_samples == 256
    assert result.variant == "fp32"
    assert result.labels == ("negative", "positive")
    recorded = classifier.manifest.validation["variants"]["fp32"]
    # The fixture validated on the first 256 validation texts: the same numbers come back.
    assert result.accuracy == recorded["accuracy"]
    assert result.macro_f1 == recorded["macro_f1"]
