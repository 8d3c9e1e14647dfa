"""The drift math shared by export and the service: bins, population stability index, the
reference file."""

from __future__ import annotations

import math

import pytest

from clfserve.evaluation.drift import (
    CONFIDENCE_BINS,
    EPSILON,
    SIGNALS,
    TOKEN_BINS,
    Binning,
    DriftReference,
    DriftReferenceError,
    Profile,
    divergences,
    merge,
    profile,
    psi,
)
from clfserve.runtime.prediction import Prediction

LABELS = ("neg", "neu", "pos")
BINNING = Binning.of(LABELS, 64)


def answer(label: str, score: float, n_tokens: int = 10, truncated: bool = False) -> Prediction:
    return Prediction(label, score, {label: score}, truncated, n_tokens)


def test_identical_distributions_diverge_by_zero() -> None:
    assert psi([5, 3, 2], [5, 3, 2]) == 0.0
    assert psi([5, 3, 2], [50, 30, 20]) == pytest.approx(0.0, abs=1e-12)  # proportions count
    assert psi([4, 0, 6], [2, 0, 3]) == pytest.approx(0.0, abs=1e-12)  # an empty bin on both


def test_psi_matches_its_formula() -> None:
    expected, actual = [60, 30, 10], [30, 30, 40]
    e = [c / 100 for c in expected]
    a = [c / 100 for c in actual]
    by_hand = sum((ai - ei) * math.log(ai / ei) for ai, ei in zip(a, e, strict=True))
    assert psi(expected, actual) == pytest.approx(by_hand)
    assert psi(expected, actual) == pytest.approx(psi(actual, expected))  # symmetric


def test_a_shift_is_above_the_default_threshold_and_a_wobble_is_not() -> None:
    assert psi([50, 50], [80, 20]) > 0.2
    assert psi([50, 50], [52, 48]) < 0.1


def test_empty_bins_are_floored_not_infinite() -> None:
    value = psi([10, 0], [5, 5])
    e, a = [1.0, EPSILON], [0.5, 0.5]
    assert value == pytest.approx(sum((y - x) * math.log(y / x) for x, y in zip(e, a, strict=True)))
    assert math.isfinite(psi([0, 10], [10, 0]))
    assert psi([0, 0], [3, 4]) == psi([3, 4], [0, 0]) == 0.0  # nothing to compare


def test_bin_counts_must_agree() -> None:
    with pytest.raises(ValueError, match="3 bins against 2"):
        psi([1, 2, 3], [1, 2])


def test_answers_land_in_fixed_bins() -> None:
    index = BINNING.indexer()
    assert index("neg", 1 / 3, 0, False) == (0, 0, 0, 0)
    assert index("pos", 1.0, 64, True) == (2, CONFIDENCE_BINS - 1, TOKEN_BINS - 1, 1)
    assert index("neu", 0.1, 32, False) == (1, 0, 5, 0)  # below 1/n: the first bin
    assert index("other", 0.9, 5, False) is None
    edges = BINNING.edges()
    assert edges["confidence"][0] == pytest.approx(1 / 3)
    assert edges["confidence"][-1] == 1.0
    assert edges["tokens"] == pytest.approx([6.4 * i for i in range(TOKEN_BINS + 1)])


def test_profile_counts_every_signal_and_skips_foreign_labels() -> None:
    got = profile([answer("neg", 0.9), answer("pos", 0.5, 64, True), answer("zzz", 0.9)], BINNING)
    assert got.n == 2
    assert got.counts["label"] == (1, 0, 1)
    assert got.counts["truncated"] == (1, 1)
    assert sum(got.counts["confidence"]) == sum(got.counts["tokens"]) == 2
    assert set(got.counts) == set(SIGNALS)


def test_merge_adds_bin_by_bin() -> None:
    one = profile([answer("neg", 0.9)], BINNING)
    two = profile([answer("pos", 0.9), answer("pos", 0.4)], BINNING)
    both = merge([one, two, Profile.empty(BINNING)], BINNING)
    assert both.n == 3
    assert both.counts["label"] == (1, 0, 2)


def test_divergences_per_signal() -> None:
    reference = profile([answer(LABELS[i % 3], 0.9) for i in range(300)], BINNING)
    shifted = profile([answer("pos", 0.9) for _ in range(300)], BINNING)
    values = divergences(reference, shifted)
    assert set(values) == set(SIGNALS)
    assert values["label"] > 0.2
    assert values["confidence"] == values["tokens"] == values["truncated"] == 0.0


def test_reference_round_trip_and_foreign_binning() -> None:
    answers = [answer(LABELS[i % 3], 0.5 + i / 100, i) for i in range(40)]
    reference = DriftReference(BINNING, {"fp32": profile(answers, BINNING)}, "validation")
    parsed = DriftReference.parse(reference.to_json(), BINNING)
    assert parsed == reference
    assert parsed.for_variant("int8") == ("fp32", reference.profiles["fp32"])  # falls back
    with pytest.raises(DriftReferenceError, match="not this model's"):
        DriftReference.parse(reference.to_json(), Binning.of(LABELS, 128))
    with pytest.raises(DriftReferenceError, match="malformed"):
        DriftReference.parse('{"binning": 3}', BINNING)
