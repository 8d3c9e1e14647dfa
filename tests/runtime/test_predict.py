"""Numbers: parity with PyTorch, batch invariance, order, truncation, concurrency."""

import math
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from clfserve.runtime import Classifier, InvalidInput, Prediction
from clfserve.runtime.classifier import CPU_RUN_COST
from reviews import REVIEWS

TEXTS = REVIEWS


@pytest.fixture(scope="module")
def fp32(tiny_artefact: Path) -> Classifier:
    return Classifier.load(tiny_artefact, device="cpu", variant="fp32", batch_size=4)


def _probs(predictions: list[Prediction]) -> np.ndarray:
    return np.array([list(p.scores.values()) for p in predictions])


def test_an_io_binding_gives_the_same_logits(tiny_artefact: Path, fp32: Classifier) -> None:
    assert fp32.io_binding is False  # off by default: it measured no faster on CUDA either
    bound = Classifier.load(tiny_artefact, device="cpu", variant="fp32", io_binding=True)
    assert bound.io_binding is True
    chunk = fp32.chunks(fp32.encode(TEXTS))[0]
    np.testing.assert_array_equal(bound.run(chunk), fp32.run(chunk))
    assert _probs(bound.predict(TEXTS)) == pytest.approx(_probs(fp32.predict(TEXTS)), abs=1e-6)


def test_probabilities_match_pytorch(fp32: Classifier, tiny_checkpoint: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    batch = tokenizer(
        TEXTS, padding=True, truncation=True, max_length=fp32.info.max_length, return_tensors="pt"
    )
    with torch.inference_mode():
        expected = torch.softmax(model(**batch).logits, dim=-1).numpy()

    got = fp32.predict(TEXTS)
    np.testing.assert_allclose(_probs(got), expected, atol=1e-4)
    labels = [model.config.id2label[int(i)] for i in expected.argmax(axis=-1)]
    assert [p.label for p in got] == labels


def test_text_alone_equals_text_in_a_padded_batch(fp32: Classifier) -> None:
    alone = [fp32.predict([text])[0] for text in TEXTS]
    together = fp32.predict(TEXTS)
    np.testing.assert_allclose(_probs(together), _probs(alone), atol=1e-5)


def test_results_follow_the_callers_order(fp32: Classifier) -> None:
    reference = {text: p for text, p in zip(TEXTS, fp32.predict(TEXTS), strict=True)}
    shuffled = TEXTS * 3
    random.Random(1).shuffle(shuffled)
    got = fp32.predict(shuffled)
    assert len(got) == len(shuffled)
    for text, prediction in zip(shuffled, got, strict=True):
        assert prediction.scores == pytest.approx(reference[text].scores, abs=1e-5)
        assert prediction.n_tokens == reference[text].n_tokens


def test_prediction_fields(fp32: Classifier) -> None:
    (p,) = fp32.predict(["a gorgeous, witty, seductive movie"])
    assert set(p.scores) == set(fp32.info.labels)
    assert p.label == max(p.scores, key=lambda k: p.scores[k])
    assert p.score == p.scores[p.label]
    assert sum(p.scores.values()) == pytest.approx(1.0)
    assert not p.truncated
    assert 2 < p.n_tokens < fp32.info.max_length


def test_long_text_is_truncated_and_flagged(fp32: Classifier) -> None:
    long_text = "an endless parade of scenes " * 200
    short, long = fp32.predict(["a fine film", long_text])
    assert long.truncated
    assert long.n_tokens == fp32.info.max_length
    assert not short.truncated


def test_empty_list_returns_empty(fp32: Classifier) -> None:
    assert fp32.predict([]) == []


@pytest.mark.parametrize("bad", [[None], ["ok", 3], [b"bytes"], "a bare string"])
def test_non_string_items_are_invalid_input(fp32: Classifier, bad: object) -> None:
    with pytest.raises(InvalidInput):
        fp32.predict(bad)  # type: ignore[arg-type]


def test_empty_and_unicode_texts_predict(fp32: Classifier) -> None:
    got = fp32.predict(["", "   ", "élégant et drôle 🎬", "\u0000\ufffd"])
    assert len(got) == 4
    assert all(p.label in fp32.info.labels for p in got)


def test_eight_threads_get_the_sequential_answers(fp32: Classifier) -> None:
    jobs = [TEXTS[i:] + TEXTS[:i] for i in range(len(TEXTS))] * 4
    expected = [fp32.predict(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(fp32.predict, jobs))
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_allclose(_probs(have), _probs(want), atol=1e-6)


def test_int8_variant_agrees_with_fp32_on_most_labels(
    fp32: Classifier, tiny_artefact: Path
) -> None:
    int8 = Classifier.load(tiny_artefact, device="cpu", variant="int8")
    assert int8.info.variant == "int8"
    a = [p.label for p in fp32.predict(TEXTS)]
    b = [p.label for p in int8.predict(TEXTS)]
    assert sum(x == y for x, y in zip(a, b, strict=True)) >= len(TEXTS) - 2


def test_a_token_budget_changes_the_chunks_not_the_answers(
    fp32: Classifier, tiny_artefact: Path
) -> None:
    budgeted = Classifier.load(
        tiny_artefact, device="cpu", variant="fp32", batch_size=16, token_budget=48,
        spinning=False,
    )  # fmt: skip
    texts = TEXTS * 3
    random.Random(2).shuffle(texts)
    encoded = budgeted.encode(texts)
    plan = budgeted.plan(encoded)
    assert plan != fp32.plan(encoded)  # a different plan, or this test proves nothing
    assert sorted(i for rows in plan for i in rows.tolist()) == list(range(len(texts)))
    for rows in plan:
        width = max(encoded.lengths[i] for i in rows)
        assert len(rows) <= 16
        assert len(rows) == 1 or len(rows) * width <= 48
    got, want = budgeted.predict(texts), fp32.predict(texts)
    assert [p.label for p in got] == [p.label for p in want]
    np.testing.assert_allclose(_probs(got), _probs(want), atol=1e-5)


def test_token_budget_must_be_positive(tiny_artefact: Path) -> None:
    with pytest.raises(ValueError, match="token_budget"):
        Classifier.load(tiny_artefact, device="cpu", token_budget=0, warmup=False)


def test_a_run_cost_changes_the_chunks_not_the_answers(tiny_artefact: Path) -> None:
    fixed = Classifier.load(tiny_artefact, device="cpu", variant="fp32", run_cost=None)
    cut = Classifier.load(tiny_artefact, device="cpu", variant="fp32", run_cost=2)
    assert (fixed.run_cost, cut.run_cost) == (None, 2)
    texts = [*TEXTS, "a long review " * 20]
    encoded = cut.encode(texts)
    plan, rows_only = cut.plan(encoded), fixed.plan(encoded)
    assert len(plan) > len(rows_only)  # the long text runs without the short ones padding to it
    padded = [len(rows) * max(encoded.lengths[i] for i in rows) for rows in plan]
    assert sum(padded) < sum(len(r) * max(encoded.lengths[i] for i in r) for r in rows_only)
    got, want = cut.predict(texts), fixed.predict(texts)
    assert [p.label for p in got] == [p.label for p in want]
    np.testing.assert_allclose(_probs(got), _probs(want), atol=1e-5)


def test_the_run_cost_is_measured_on_cpu_by_default(tiny_artefact: Path) -> None:
    assert Classifier.load(tiny_artefact, device="cpu", warmup=False).run_cost == CPU_RUN_COST


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan])
def test_run_cost_must_be_a_number_from_zero(tiny_artefact: Path, bad: float) -> None:
    with pytest.raises(ValueError, match="run_cost"):
        Classifier.load(tiny_artefact, device="cpu", run_cost=bad, warmup=False)
