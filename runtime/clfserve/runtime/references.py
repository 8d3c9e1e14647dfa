"""Smoke-checking a loaded model against the reference answers its export recorded.

Export stores a handful of validation texts with their fp32 probabilities in the manifest
(`Manifest.references`). A model that loads but answers them differently (wrong weights, wrong
tokenizer, swapped labels, a broken runtime) must not serve. fp32 reproduces them to ~1e-6; fp16
rounds every activation to 11 significant bits; the int8 graph quantizes activations per call
and differs by a few hundredths on confident texts, which is what the references are chosen to be.
"""

from __future__ import annotations

from collections.abc import Sequence

from clfserve.runtime.manifest import Manifest
from clfserve.runtime.prediction import Prediction

TOLERANCE = {"fp32": 1e-3, "fp16": 0.02, "int8": 0.15}
"""Largest allowed |probability - reference| per variant."""
DEFAULT_TOLERANCE = 0.15


def reference_texts(manifest: Manifest) -> list[str]:
    return [reference.text for reference in manifest.references]


def reference_mismatches(
    manifest: Manifest, variant: str, predictions: Sequence[Prediction]
) -> list[str]:
    """What differs between ``predictions`` (of `reference_texts`, in order) and the references;
    empty when the model reproduces them within its variant's tolerance."""
    tolerance = TOLERANCE.get(variant, DEFAULT_TOLERANCE)
    problems = []
    for reference, prediction in zip(manifest.references, predictions, strict=True):
        expected = max(reference.scores, key=reference.scores.__getitem__)
        labels = set(reference.scores) | set(prediction.scores)
        worst = max(
            abs(prediction.scores.get(label, 0.0) - reference.scores.get(label, 0.0))
            for label in labels
        )
        if prediction.label != expected or not worst <= tolerance:
            problems.append(
                f"{reference.text[:48]!r}: expected {expected}, got {prediction.label} "
                f"(max |probability diff| {worst:.3g}, {variant} allows {tolerance:g})"
            )
    return problems
