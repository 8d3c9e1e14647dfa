"""Numbers: parity with PyTorch, batch invariance, order, truncation, concurrency."""

import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from clfserve.runtime import Classifier, InvalidInput, Prediction
from reviews import REVIEWS

TEXTS = REVIEWS


@pytest.fixture(scope="module")
def fp32(tiny_artefact: Path) -> Classifier:
    return Classifier.load(tiny_artefact, device="cpu", variant="fp32", batch_size=4)


def _probs(predictions: list[Prediction]) -> np.ndarray:
    return np.array([list(p.scores.values()) for p in predictions])


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
