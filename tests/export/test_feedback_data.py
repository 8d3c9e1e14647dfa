"""Feedback as retrain data: usable rows, a held-out slice that is stable across runs, and the
judgement of a challenger (no model needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from clfserve.evaluation.feedback import Feedback
from clfserve.export.config import ReleaseConfig, RetrainConfig
from clfserve.export.errors import NotEnoughFeedback
from clfserve.export.feedback_data import held_out, require_enough, split_feedback
from clfserve.export.retrain import judge

LABELS = ("negative", "positive")


def rows(*pairs: tuple[str, str]) -> list[Feedback]:
    now = datetime.now(UTC)
    return [Feedback(i, text, label, now) for i, (text, label) in enumerate(pairs, 1)]


def test_the_held_out_slice_is_picked_by_text_and_stays_put_as_rows_arrive() -> None:
    first = [(f"review number {i}", LABELS[i % 2]) for i in range(400)]
    later = [(f"another review {i}", LABELS[i % 2]) for i in range(400)]
    before = split_feedback(rows(*first), LABELS, 0.2)
    after = split_feedback(rows(*later, *first), LABELS, 0.2)  # more rows, other ids
    assert set(before.holdout.texts) <= set(after.holdout.texts)
    assert not set(after.holdout.texts) & set(after.train.texts)
    assert 0.12 < len(before.holdout) / 400 < 0.28
    assert held_out("a text", 0.0) is False
    assert held_out("a text", 1.0) is True


def test_foreign_labels_are_dropped_and_a_relabelled_text_keeps_its_newest_label() -> None:
    split = split_feedback(
        rows(("dull", "positive"), ("great", "positive"), ("dull", "negative"), ("meh", "neutral")),
        LABELS,
        0.5,
    )
    kept = dict(zip(split.train.texts + split.holdout.texts,
                    split.train.labels + split.holdout.labels, strict=True))  # fmt: skip
    assert kept == {"great": "positive", "dull": "negative"}
    assert split.dropped == {"foreign_label": 1, "duplicate": 1}
    assert (split.stored, split.usable) == (4, 2)


def test_too_little_feedback_is_refused_with_the_counts() -> None:
    split = split_feedback(rows(*[(f"t{i}", "positive") for i in range(40)]), LABELS, 0.5)
    with pytest.raises(NotEnoughFeedback, match=r"40 stored, 40 usable .* at least 41 usable"):
        require_enough(split, 41, "sqlite:///feedback.db")
    require_enough(split, 40, "sqlite:///feedback.db")
    nothing_held_out = split_feedback(rows(("only one", "positive")), LABELS, 0.2)
    with pytest.raises(NotEnoughFeedback, match="rows on both sides"):
        require_enough(nothing_held_out, 1, "sqlite:///feedback.db")


def scores(feedback: tuple[float, float], validation: tuple[float, float]) -> Any:
    """``(champion, challenger)`` macro-F1 on each data set, as `judge` reads them."""
    return {
        f"{who}_{data}": SimpleNamespace(macro_f1=pair[i])
        for data, pair in (("feedback", feedback), ("validation", validation))
        for i, who in enumerate(("champion", "challenger"))
    }


@pytest.mark.parametrize(
    ("feedback", "validation", "better", "why"),
    [
        ((0.50, 0.80), (0.83, 0.83), True, "better: held-out feedback macro-F1 0.8000"),
        ((0.50, 0.80), (0.83, 0.826), True, "validation macro-F1 0.8260 vs champion 0.8300"),
        ((0.50, 0.80), (0.83, 0.82), False, "more than 0.005 below"),
        ((0.80, 0.80), (0.83, 0.90), False, "not above the champion's"),
        ((0.80, 0.70), (0.83, 0.90), False, "not above the champion's"),
    ],
)
def test_better_means_more_on_feedback_and_not_less_on_validation(
    feedback: tuple[float, float], validation: tuple[float, float], better: bool, why: str
) -> None:
    config = RetrainConfig(feedback_url="", release=ReleaseConfig(max_regression=0.005))
    verdict, reason = judge(scores(feedback, validation), config)
    assert verdict is better
    assert why in reason


def test_a_minimum_gain_must_be_exceeded() -> None:
    config = RetrainConfig(feedback_url="", min_gain=0.05)
    assert judge(scores((0.70, 0.74), (0.8, 0.8)), config)[0] is False
    assert judge(scores((0.70, 0.76), (0.8, 0.8)), config)[0] is True
