"""Metrics agree with scikit-learn, and unknown labels are counted, not fatal."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from clfserve.evaluation.scores import compute_scores

LABELS = ("neg", "neu", "pos")


def test_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y_true = [LABELS[i] for i in rng.integers(0, 3, 200)]
    y_pred = [LABELS[i] for i in rng.integers(0, 3, 200)]
    m = compute_scores(y_true, y_pred, LABELS)
    assert m.accuracy == pytest.approx(accuracy_score(y_true, y_pred))
    assert m.macro_f1 == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m.confusion == confusion_matrix(y_true, y_pred, labels=list(LABELS)).tolist()
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=list(LABELS))
    for i, label in enumerate(LABELS):
        c = m.per_class[label]
        assert (c.precision, c.recall, c.f1) == pytest.approx((p[i], r[i], f[i]))
        assert c.support == s[i]


def test_unknown_true_labels_are_counted_and_scored_as_errors() -> None:
    m = compute_scores(["neg", "pos", "meh", "meh"], ["neg", "pos", "pos", "neg"], ("neg", "pos"))
    assert m.unknown_labels == {"meh": 2}
    assert m.n_samples == 4
    assert m.accuracy == 0.5
    assert m.confusion == [[1, 0], [0, 1]]
    # The wrong predictions on unknown rows are false positives of what was predicted.
    assert m.per_class["pos"].precision == 0.5
    assert m.per_class["pos"].recall == 1.0


def test_a_label_never_seen_nor_predicted_stays_out_of_macro_f1() -> None:
    m = compute_scores(["neg", "pos"], ["neg", "pos"], LABELS)
    assert m.macro_f1 == 1.0
    assert m.per_class["neu"].support == 0


def test_empty_input_and_length_mismatch() -> None:
    assert compute_scores([], [], LABELS).accuracy == 0.0
    with pytest.raises(ValueError, match="2 true labels but 1"):
        compute_scores(["neg", "pos"], ["neg"], LABELS)
