"""Classification metrics from true and predicted label names (numpy only).

True labels the model does not know (absent from ``labels``) are counted and reported, and
score as errors: they can never be predicted correctly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ClassScores:
    """Precision, recall and F1 of one label; ``support`` = how many true examples it has."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Scores:
    """Classification scores of predictions against true labels."""

    accuracy: float
    macro_f1: float
    """Unweighted mean F1 over the model's labels that have support or were predicted."""
    per_class: dict[str, ClassScores]
    labels: tuple[str, ...]
    """Row/column order of ``confusion``: the model's labels."""
    confusion: list[list[int]]
    """``confusion[i][j]``: true label i predicted as j (known true labels only)."""
    n_samples: int
    unknown_labels: dict[str, int]
    """True labels outside the model's label set, with their counts."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def compute_scores(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> Scores:
    """Accuracy, macro-F1, per-class scores and the confusion matrix over ``labels``."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    index = {label: i for i, label in enumerate(labels)}
    unknown = Counter(t for t in y_true if t not in index)
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        if t in index and p in index:
            confusion[index[t], index[p]] += 1
    # Predictions made for unknown-label rows are still false positives of the predicted label.
    extra_fp = np.zeros(len(labels), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        if t not in index and p in index:
            extra_fp[index[p]] += 1

    n = len(y_true)
    correct = int(np.trace(confusion))
    per_class, f1s = _per_class(confusion, extra_fp, labels)
    return Scores(
        accuracy=correct / n if n else 0.0,
        macro_f1=float(np.mean(f1s)) if f1s else 0.0,
        per_class=per_class,
        labels=tuple(labels),
        confusion=confusion.tolist(),
        n_samples=n,
        unknown_labels=dict(sorted(unknown.items())),
    )


def _per_class(
    confusion: npt.NDArray[np.int64], extra_fp: npt.NDArray[np.int64], labels: Sequence[str]
) -> tuple[dict[str, ClassScores], list[float]]:
    tp = np.diag(confusion)
    predicted = confusion.sum(axis=0) + extra_fp
    support = confusion.sum(axis=1)
    per_class: dict[str, ClassScores] = {}
    f1s: list[float] = []
    for i, label in enumerate(labels):
        precision = _ratio(tp[i], predicted[i])
        recall = _ratio(tp[i], support[i])
        f1 = _ratio(2 * precision * recall, precision + recall)
        per_class[label] = ClassScores(precision, recall, f1, int(support[i]))
        # A label never seen nor predicted says nothing about the model: leave it out of the mean.
        if support[i] or predicted[i]:
            f1s.append(f1)
    return per_class, f1s


def _ratio(num: float | np.integer, den: float | np.integer) -> float:
    return float(num) / float(den) if den else 0.0
