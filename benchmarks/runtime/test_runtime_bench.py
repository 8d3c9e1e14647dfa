"""Latency of the runtime on the default model, grouped by texts per call.

Each ``batch NN`` group holds, for short (~16 tokens) and long (~128 tokens) real review texts:
``tokenize`` (`TextEncoder.encode`), ``pad`` (`Classifier.chunks`), ``session.run`` (the ONNX
calls alone, per variant), ``postprocess`` (logits to predictions), ``predict`` (the whole
`Classifier.predict`, per variant) and ``torch`` (PyTorch eager on the same checkpoint).
``extra_info["seqs_per_s"]`` is texts per second at the median. The ``target`` groups measure
the issue's speed-up targets on real reviews.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from benchmarks.workload import Texts

BATCHES = (1, 8, 32, 64)
LENGTHS = ("short", "long")
VARIANTS = ("fp32", "int8")
BIG = 1024
"""Texts in the one-call throughput target."""
BATCH1_TEXTS = 64
"""Real reviews scored one call each in the batch-1 target."""
BIG_ROUNDS = int(os.environ.get("CLFSERVE_BENCH_BIG_ROUNDS", "3"))


def _group(batch: int) -> str:
    return f"batch {batch:02d}"


def _record(benchmark: Any, kind: str, texts: int, **info: object) -> None:
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(kind=kind, texts=texts, **info)
    benchmark.extra_info["seqs_per_s"] = round(texts / median, 1)


def _tokens(clf: Any, texts: Sequence[str]) -> dict[str, object]:
    encoded = clf.encoder.encode(texts)
    chunks = clf.chunks(encoded)
    return {
        "tokens_mean": round(sum(encoded.lengths) / len(texts), 1),
        "padded_width": max(c.input_ids.shape[1] for c in chunks),
        "chunks": len(chunks),
    }


params = pytest.mark.parametrize
by_batch = params("batch", BATCHES, ids=lambda b: f"b{b:02d}")
by_length = params("length", LENGTHS)
by_variant = params("variant", VARIANTS)


@by_batch
@by_length
@by_variant
def test_predict(
    benchmark: Any,
    classifier: Callable[[str], Any],
    texts: Texts,
    variant: str,
    length: str,
    batch: int,
) -> None:
    clf = classifier(variant)
    batch_texts = texts.of(length, batch)
    clf.predict(batch_texts)  # first call of a shape allocates; keep it out of the timing
    benchmark.group = _group(batch)
    benchmark(clf.predict, batch_texts)
    _record(
        benchmark, "predict", batch, variant=variant, length=length, **_tokens(clf, batch_texts)
    )


@by_batch
@by_length
@by_variant
def test_session_run(
    benchmark: Any,
    classifier: Callable[[str], Any],
    texts: Texts,
    variant: str,
    length: str,
    batch: int,
) -> None:
    clf = classifier(variant)
    chunks = clf.chunks(clf.encoder.encode(texts.of(length, batch)))

    def run_all() -> list[Any]:
        return [clf.run(chunk) for chunk in chunks]

    run_all()
    benchmark.group = _group(batch)
    benchmark(run_all)
    _record(benchmark, "session.run", batch, variant=variant, length=length, chunks=len(chunks))


@by_batch
@by_length
def test_tokenize(
    benchmark: Any, classifier: Callable[[str], Any], texts: Texts, length: str, batch: int
) -> None:
    encoder = classifier("int8").encoder
    batch_texts = texts.of(length, batch)
    benchmark.group = _group(batch)
    benchmark(encoder.encode, batch_texts)
    _record(benchmark, "tokenize", batch, length=length)


@by_batch
@by_length
def test_pad(
    benchmark: Any, classifier: Callable[[str], Any], texts: Texts, length: str, batch: int
) -> None:
    clf = classifier("int8")
    encoded = clf.encoder.encode(texts.of(length, batch))
    benchmark.group = _group(batch)
    benchmark(clf.chunks, encoded)
    _record(benchmark, "pad", batch, length=length)


@by_batch
@by_length
def test_postprocess(
    benchmark: Any, classifier: Callable[[str], Any], texts: Texts, length: str, batch: int
) -> None:
    """Logits to `Prediction`s: softmax, argmax, one object per text."""
    from clfserve.runtime.prediction import probabilities, to_predictions

    clf = classifier("int8")
    encoded = clf.encoder.encode(texts.of(length, batch))
    logits = np.zeros((batch, len(clf.manifest.labels)), dtype=np.float32)
    for chunk in clf.chunks(encoded):
        logits[chunk.indices] = clf.run(chunk)
    labels, kind = clf.manifest.labels, clf.manifest.problem_type

    def post() -> list[Any]:
        return to_predictions(
            probabilities(logits, kind), labels, encoded.truncated, encoded.lengths
        )

    benchmark.group = _group(batch)
    benchmark(post)
    _record(benchmark, "postprocess", batch, length=length)


@by_batch
@by_length
def test_torch(benchmark: Any, eager: Any, texts: Texts, length: str, batch: int) -> None:
    batch_texts = texts.of(length, batch)
    eager.predict(batch_texts)
    benchmark.group = _group(batch)
    benchmark(eager.predict, batch_texts)
    _record(benchmark, "torch", batch, length=length)


# -- the targets, on real reviews as they come (unsorted, natural lengths) ------------


def _one_by_one(predict: Callable[[list[str]], Any], batch_texts: list[str]) -> Callable[[], None]:
    def run() -> None:
        for text in batch_texts:
            predict([text])

    return run


@params("engine", ["int8", "fp32", "torch"])
def test_target_batch1(
    benchmark: Any, classifier: Callable[[str], Any], request: pytest.FixtureRequest, texts: Texts,
    engine: str,
) -> None:  # fmt: skip
    """``BATCH1_TEXTS`` real reviews, one call each (a user scoring texts as they arrive)."""
    predict = (
        request.getfixturevalue("eager").predict
        if engine == "torch"
        else classifier(engine).predict
    )
    batch_texts = texts.of("natural", BATCH1_TEXTS)
    run = _one_by_one(predict, batch_texts)
    run()
    benchmark.group = f"target: {BATCH1_TEXTS} real reviews, batch 1"
    benchmark.pedantic(run, rounds=BIG_ROUNDS + 2, iterations=1)
    _record(benchmark, "target_batch1", BATCH1_TEXTS, engine=engine)


@params("engine", ["int8", "fp32", "torch"])
def test_target_1024(
    benchmark: Any, classifier: Callable[[str], Any], request: pytest.FixtureRequest, texts: Texts,
    engine: str,
) -> None:  # fmt: skip
    """One call with 1,024 real reviews (the runtime sorts and chunks; torch chunks of 32)."""
    predict = (
        request.getfixturevalue("eager").predict
        if engine == "torch"
        else classifier(engine).predict
    )
    batch_texts = texts.of("natural", BIG)
    predict(batch_texts[:64])
    benchmark.group = f"target: {BIG:,} real reviews, one call"
    benchmark.pedantic(predict, args=(batch_texts,), rounds=BIG_ROUNDS, iterations=1)
    _record(benchmark, "target_1024", BIG, engine=engine)
