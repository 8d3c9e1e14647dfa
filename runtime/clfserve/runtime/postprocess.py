"""Logits to probabilities and predictions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from clfserve.runtime.manifest import ProblemType
from clfserve.runtime.prediction import Prediction


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
