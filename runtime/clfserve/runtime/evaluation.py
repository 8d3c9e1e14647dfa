"""Score a loaded classifier on a labelled dataset (no torch, no mlflow: the service calls this)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

from clfserve.runtime.data import Dataset
from clfserve.runtime.metrics import Metrics, compute_metrics
from clfserve.runtime.prediction import Prediction


class _Info(Protocol):
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
    """What `evaluate` needs: `Classifier` satisfies it, and so can a fake."""

    @property
    def info(self) -> _Info: ...

    def predict(self, texts: Sequence[str]) -> list[Prediction]: ...


@dataclass(frozen=True)
class EvaluationResult(Metrics):
    """`Metrics` of one model variant on one dataset, with what was evaluated and how long."""

    duration_s: float
    model_name: str
    model_version: str
    variant: str
    provider: str
    dataset: str
    predicted: tuple[str, ...] = ()
    """The predicted label of every text, in dataset order (left out of `to_dict`)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["predicted"]
        return out


def evaluate(classifier: Scorer, dataset: Dataset, chunk_size: int = 256) -> EvaluationResult:
    """Predict every text of ``dataset`` in chunks and score against its labels."""
    started = time.perf_counter()
    predicted: list[str] = []
    for start in range(0, len(dataset.texts), chunk_size):
        batch = dataset.texts[start : start + chunk_size]
        predicted.extend(p.label for p in classifier.predict(batch))
    duration = time.perf_counter() - started
    info = classifier.info
    metrics = compute_metrics(dataset.labels, predicted, info.labels)
    return EvaluationResult(
        **{f.name: getattr(metrics, f.name) for f in fields(Metrics)},
        duration_s=duration,
        model_name=info.name,
        model_version=info.version,
        variant=info.variant,
        provider=info.providers[0] if info.providers else "",
        dataset=dataset.name,
        predicted=tuple(predicted),
    )
