"""Score a model on labelled data: the one evaluation `clfserve evaluate`, export validation and
the service's staleness monitor all use (no torch, no mlflow).

A score is only meaningful when every label in the data is one the model can predict, so
`check_labels` runs before any prediction: data with foreign labels is an error, never a score
of 0 that reads as "stale".
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

from clfserve.evaluation.datasets import Dataset
from clfserve.evaluation.scores import Scores, compute_scores
from clfserve.runtime.errors import ClfserveError
from clfserve.runtime.prediction import Prediction


class LabelMismatch(ClfserveError):
    """The evaluation data holds labels the model does not have; the message names both sets."""


class ModelIdentity(Protocol):
    """What an evaluation records about the model (`clfserve.runtime.ModelInfo` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def variant(self) -> str: ...
    @property
    def providers(self) -> tuple[str, ...]: ...
    @property
    def labels(self) -> tuple[str, ...]: ...


class Scorer(Protocol):
    """What `evaluate` needs: `clfserve.runtime.Classifier` is one."""

    @property
    def info(self) -> ModelIdentity: ...

    def predict(self, texts: Sequence[str]) -> list[Prediction]: ...


@dataclass(frozen=True)
class EvaluationResult(Scores):
    """`Scores` of one model variant on one dataset, with what was evaluated and how long."""

    duration_s: float
    model_name: str
    model_version: str
    variant: str
    provider: str
    dataset: str
    labels_without_data: tuple[str, ...] = ()
    """Labels of the model that no row of the data has (fine, but their scores say nothing)."""
    predicted: tuple[str, ...] = ()
    """The predicted label of every text, in dataset order (left out of `to_dict`)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["predicted"]
        return out


def check_labels(dataset: Dataset, model_labels: Sequence[str]) -> None:
    """Raise `LabelMismatch` when ``dataset`` has labels outside ``model_labels``."""
    foreign = sorted(set(dataset.labels) - set(model_labels))
    if foreign:
        raise LabelMismatch(
            f"{dataset.name or 'the data'} has labels the model does not have: "
            f"{', '.join(foreign)}. Data labels: {', '.join(dataset.classes)}; model labels: "
            f"{', '.join(model_labels)}. A score on it would be meaningless; evaluate on data "
            "labelled for this model."
        )


def evaluate(classifier: Scorer, dataset: Dataset) -> EvaluationResult:
    """Check the labels, predict every text of ``dataset`` and score against its labels."""
    check_labels(dataset, classifier.info.labels)
    started = time.perf_counter()
    predictions = classifier.predict(dataset.texts)
    return result_of(
        dataset, [p.label for p in predictions], classifier.info, time.perf_counter() - started
    )


def result_of(
    dataset: Dataset, predicted: Sequence[str], model: ModelIdentity, duration_s: float
) -> EvaluationResult:
    """Score ``predicted`` (one label per text of ``dataset``) for ``model``."""
    scores = compute_scores(dataset.labels, predicted, model.labels)
    present = set(dataset.labels)
    return EvaluationResult(
        **{f.name: getattr(scores, f.name) for f in fields(Scores)},
        duration_s=duration_s,
        model_name=model.name,
        model_version=model.version,
        variant=model.variant,
        provider=model.providers[0] if model.providers else "",
        dataset=dataset.name,
        labels_without_data=tuple(label for label in model.labels if label not in present),
        predicted=tuple(predicted),
    )
