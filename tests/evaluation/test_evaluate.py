"""`evaluate`: batched predictions scored against a dataset, through any `Scorer`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from clfserve.evaluation.datasets import Dataset, load_split
from clfserve.evaluation.evaluate import LabelMismatch, evaluate
from clfserve.runtime.classifier import Classifier
from clfserve.runtime.prediction import Prediction


@dataclass(frozen=True)
class _Info:
    name: str = "fake"
    version: str = "0"
    variant: str = "int8"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    labels: tuple[str, ...] = ("negative", "positive", "neutral")


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


def test_scores_one_call_and_reports_labels_without_data() -> None:
    texts = ("good", "good", "bad", "bad", "good meh")
    labels = ("positive", "negative", "negative", "negative", "positive")
    model = KeywordModel()
    result = evaluate(model, Dataset(texts, labels, name="toy"))
    assert model.batches == [5]  # the model chunks; evaluate hands it the whole dataset
    assert result.accuracy == 4 / 5
    assert result.confusion == [[2, 1, 0], [0, 2, 0], [0, 0, 0]]
    assert result.labels_without_data == ("neutral",)
    assert result.predicted == ("positive", "positive", "negative", "negative", "positive")
    out = result.to_dict()
    assert "predicted" not in out
    assert out["model_name"] == "fake"
    assert out["provider"] == "CPUExecutionProvider"
    assert out["dataset"] == "toy"
    assert out["labels_without_data"] == ("neutral",)


def test_foreign_labels_are_refused_before_predicting() -> None:
    model = KeywordModel()
    data = Dataset(("good", "bad", "so-so"), ("sports", "politics", "positive"), name="news.csv")
    with pytest.raises(LabelMismatch) as caught:
        evaluate(model, data)
    message = str(caught.value)
    assert "politics, sports" in message  # the foreign ones
    assert "Data labels: politics, positive, sports" in message
    assert "model labels: negative, positive, neutral" in message
    assert model.batches == []  # nothing ran: no score of 0 that reads as "stale"


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
