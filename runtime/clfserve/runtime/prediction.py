"""What a prediction is, and how logits become predictions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clfserve.runtime.manifest import ProblemType


@dataclass(frozen=True, slots=True)
class Prediction:
    """The classifier's answer for one text."""

    label: str
    """The top label."""
    score: float
    """Probability of the top label."""
    scores: dict[str, float]
    """Probability of every label (softmax; independent sigmoids for multi-label models)."""
    truncated: bool
    """True when the text had more tokens than the model's max_length and was cut."""
    n_tokens: int
    """Tokens the model saw, special tokens included."""


def probabilities(
    logits: npt.NDArray[np.floating], problem_type: ProblemType
) -> npt.NDArray[np.float64]:
    """Softmax over labels, or an independent sigmoid per label for multi-label models."""
    z = logits.astype(np.float64)
    if problem_type == "multi_label":
        out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-z))
        return out
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out = e / e.sum(axis=-1, keepdims=True)
    return out


def to_predictions(
    probs: npt.NDArray[np.float64],
    labels: Sequence[str],
    truncated: Sequence[bool],
    lengths: Sequence[int],
) -> list[Prediction]:
    top = probs.argmax(axis=-1)
    rows = probs.tolist()
    return [
        Prediction(
            label=labels[int(top[i])],
            score=row[int(top[i])],
            scores=dict(zip(labels, row, strict=True)),
            truncated=truncated[i],
            n_tokens=lengths[i],
        )
        for i, row in enumerate(rows)
    ]
