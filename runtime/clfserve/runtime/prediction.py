"""What a prediction is."""

from __future__ import annotations

from dataclasses import dataclass


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
