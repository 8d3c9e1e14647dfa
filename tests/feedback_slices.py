"""Feedback for retrain tests, built against a champion: a slice that contradicts it (so a
challenger can learn better), or labels that agree with it (so no challenger can beat it)."""

from __future__ import annotations

from pathlib import Path

from clfserve.evaluation.datasets import load_split
from clfserve.evaluation.feedback import FeedbackStore
from clfserve.registry import register_artefact, set_alias
from clfserve.runtime.classifier import Classifier
from clfserve.runtime.manifest import Manifest

TINY_RETRAIN = ("--min-feedback", "20", "--feedback-repeats", "8", "--learning-rate", "2e-3",
                "--max-train-samples", "256", "--epochs", "2", "--threads", "1", "--no-progress",
                "--min-agreement", "0", "--max-regression", "0.1")  # fmt: skip
"""`clfserve retrain` options for the tiny model: a few seconds of training that learns a slice."""
MARKERS = {"positive": "banana banana", "negative": "kiwi kiwi"}
"""A recognisable slice: texts ending in these words carry this label, whatever they say."""


def register_champion(artefact: Path, name: str) -> str:
    """Register ``artefact`` with the validation scores its export logged, as ``name@champion``."""
    variants = Manifest.read(artefact).validation["variants"]
    metrics = {f"val_{v}_macro_f1": float(s["macro_f1"]) for v, s in variants.items()}
    version = register_artefact(artefact, name=name, alias=None, params={}, metrics=metrics)
    set_alias(name, "champion", version.version)
    return version.version


def contradicting(champion: Path, per_label: int) -> list[tuple[str, str]]:
    """``per_label`` marked texts for each label that the champion gets wrong."""
    classifier = Classifier.load(champion, threads=1)
    texts = load_split("rotten_tomatoes", "test").texts
    rows: list[tuple[str, str]] = []
    for label, marker in MARKERS.items():
        marked = [f"{text} {marker}" for text in texts]
        predicted = classifier.predict(marked)
        wrong = [t for t, p in zip(marked, predicted, strict=True) if p.label != label]
        assert len(wrong) >= per_label, f"only {len(wrong)} texts the champion gets wrong"
        rows += [(text, label) for text in wrong[:per_label]]
    return rows


def agreeing(champion: Path, count: int) -> list[tuple[str, str]]:
    """``count`` texts labelled with the champion's own answers: it scores 1.0 on them."""
    classifier = Classifier.load(champion, threads=1)
    texts = load_split("rotten_tomatoes", "test").texts[:count]
    return [(t, p.label) for t, p in zip(texts, classifier.predict(texts), strict=True)]


def fill(url: str, rows: list[tuple[str, str]]) -> None:
    store = FeedbackStore(url)
    try:
        for text, label in rows:
            store.add(text, label)
    finally:
        store.close()
