"""Latency of the runtime on the default model, grouped by texts per call.

Each ``batch NN`` group holds, for short (~16 tokens) and long (~128 tokens) real review texts:
``tokenize`` (`TextEncoder.encode`), ``pad`` (`Classifier.chunks`), ``session.run`` (the ONNX
calls alone, per variant), ``postprocess`` (logits to predictions), ``predict`` (the whole
`Classifier.predict`, per variant) and ``torch`` (PyTorch eager on the same checkpoint).
``extra_info["seqs_per_s"]`` is texts per second at the median. The ``target`` groups measure
the issue's speed-up targets on real reviews. Every int8 row also records ``int8_macs``: the
multiply-accumulates of the int8 graph's integer matrix products for the shapes that call
actually runs (`benchmarks.int8.Int8Macs`), and ``int8 peak`` times one large ``MatMulInteger``
with the same threads, the ceiling the summary compares those rates with.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
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
PEAK_ROUNDS = 10
"""Timed runs of the int8 peak MatMulInteger (its best and median are reported)."""


def _group(batch: int) -> str:
    return f"batch {batch:02d}"


def _record(benchmark: Any, kind: str, texts: int, **info: object) -> None:
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(kind=kind, texts=texts, **info)
    benchmark.extra_info["seqs_per_s"] = round(texts / median, 1)


def _measure(
    benchmark: Any, kind: str, batch: int, run: Callable[..., object], *args: object,
    **info: object,
) -> None:  # fmt: skip
    """Time ``run(*args)`` in the group of ``batch`` texts per call; record it as ``kind``."""
    benchmark.group = _group(batch)
    benchmark(run, *args)
    _record(benchmark, kind, batch, **info)


def _int8_work(
    variant: str, clf: Any, macs: Any, texts: Sequence[str], one_by_one: bool = False
) -> dict[str, object]:
    """``int8_macs`` of ``clf.predict(texts)`` (or of one call per text): nothing for fp32."""
    if variant != "int8":
        return {}
    calls = [[t] for t in texts] if one_by_one else [list(texts)]
    shapes = [
        chunk.input_ids.shape for call in calls for chunk in clf.chunks(clf.encoder.encode(call))
    ]
    return {"int8_macs": macs.for_shapes(shapes)}


def _tokens(clf: Any, texts: Sequence[str]) -> dict[str, object]:
    encoded = clf.encoder.encode(texts)
    chunks = clf.chunks(encoded)
    return {
        "tokens_mean": round(sum(encoded.lengths) / len(texts), 1),
        "padded_width": max(c.input_ids.shape[1] for c in chunks),
        "chunks": len(chunks),
    }


params = pytest.mark.parametrize
by_shape = params(
    ("length", "batch"),
    [(length, batch) for batch in BATCHES for length in LENGTHS],
    ids=lambda value: f"b{value:02d}" if isinstance(value, int) else str(value),
)
"""Every length at every batch size: ids ``long-b01`` ... ``short-b64``."""
by_variant = params("variant", VARIANTS)


@pytest.fixture
def batch_texts(texts: Texts, length: str, batch: int) -> list[str]:
    """The test's ``batch`` texts of its ``length``."""
    return texts.of(length, batch)


@dataclass(frozen=True)
class VariantCase:
    """One variant's cell of a batch group: its classifier, its texts and what its rows record."""

    clf: Any
    texts: list[str]
    batch: int
    info: dict[str, object]
    """``variant``, ``length`` and, for int8, ``int8_macs`` of one predict call on ``texts``."""


@pytest.fixture
def case(
    classifier: Callable[[str], Any], batch_texts: list[str], variant: str, length: str,
    batch: int, request: pytest.FixtureRequest,
) -> VariantCase:  # fmt: skip
    """The `Classifier` of the test's ``variant`` on its ``batch`` texts of its ``length``."""
    clf = classifier(variant)
    macs = request.getfixturevalue("int8_macs") if variant == "int8" else None
    info = {"variant": variant, "length": length, **_int8_work(variant, clf, macs, batch_texts)}
    return VariantCase(clf, batch_texts, batch, info)


@by_shape
@by_variant
def test_predict(benchmark: Any, case: VariantCase) -> None:
    clf, texts = case.clf, case.texts
    clf.predict(texts)  # first call of a shape allocates; keep it out of the timing
    _measure(
        benchmark, "predict", case.batch, clf.predict, texts, **case.info, **_tokens(clf, texts)
    )


@by_shape
@by_variant
def test_session_run(benchmark: Any, case: VariantCase) -> None:
    clf = case.clf
    chunks = clf.chunks(clf.encoder.encode(case.texts))

    def run_all() -> list[Any]:
        return [clf.run(chunk) for chunk in chunks]

    run_all()
    _measure(benchmark, "session.run", case.batch, run_all, **case.info, chunks=len(chunks))


@pytest.fixture
def int8(classifier: Callable[[str], Any]) -> Any:
    """The int8 `Classifier` (the CPU default), whose stages are timed one by one."""
    return classifier("int8")


@by_shape
def test_tokenize(
    benchmark: Any, int8: Any, batch_texts: list[str], length: str, batch: int
) -> None:
    _measure(benchmark, "tokenize", batch, int8.encoder.encode, batch_texts, length=length)


@by_shape
def test_pad(benchmark: Any, int8: Any, batch_texts: list[str], length: str, batch: int) -> None:
    encoded = int8.encoder.encode(batch_texts)
    _measure(benchmark, "pad", batch, int8.chunks, encoded, length=length)


@by_shape
def test_postprocess(
    benchmark: Any, int8: Any, batch_texts: list[str], length: str, batch: int
) -> None:
    """Logits to `Prediction`s: softmax, argmax, one object per text."""
    from clfserve.runtime.prediction import probabilities, to_predictions

    encoded = int8.encoder.encode(batch_texts)
    logits = np.zeros((batch, len(int8.manifest.labels)), dtype=np.float32)
    for chunk in int8.chunks(encoded):
        logits[chunk.indices] = int8.run(chunk)
    labels, kind = int8.manifest.labels, int8.manifest.problem_type

    def post() -> list[Any]:
        return to_predictions(
            probabilities(logits, kind), labels, encoded.truncated, encoded.lengths
        )

    _measure(benchmark, "postprocess", batch, post, length=length)


@by_shape
def test_torch(benchmark: Any, eager: Any, batch_texts: list[str], length: str, batch: int) -> None:
    eager.predict(batch_texts)
    _measure(benchmark, "torch", batch, eager.predict, batch_texts, length=length)


# -- the targets, on real reviews as they come (unsorted, natural lengths) ------------


def _one_by_one(predict: Callable[[list[str]], Any], batch_texts: list[str]) -> Callable[[], None]:
    def run() -> None:
        for text in batch_texts:
            predict([text])

    return run


@pytest.fixture
def engine_predict(
    engine: str, classifier: Callable[[str], Any], request: pytest.FixtureRequest
) -> Callable[[list[str]], Any]:
    """``predict`` of the test's ``engine``: the int8 or fp32 runtime, or PyTorch eager."""
    if engine == "torch":
        return request.getfixturevalue("eager").predict
    return classifier(engine).predict


by_engine = params("engine", ["int8", "fp32", "torch"])


def _engine_work(
    engine: str, classifier: Callable[[str], Any], request: pytest.FixtureRequest,
    texts: Sequence[str], one_by_one: bool = False,
) -> dict[str, object]:  # fmt: skip
    if engine != "int8":
        return {}
    macs = request.getfixturevalue("int8_macs")
    return _int8_work(engine, classifier(engine), macs, texts, one_by_one)


@by_engine
@params("one_by_one", [True, False])
def test_target(
    benchmark: Any, engine_predict: Callable[[list[str]], Any], texts: Texts, engine: str,
    classifier: Callable[[str], Any], request: pytest.FixtureRequest, one_by_one: bool,
) -> None:  # fmt: skip
    """``BATCH1_TEXTS`` real reviews, one call each (a user scoring texts as they arrive), or one
    call with ``BIG`` real reviews (the runtime sorts and chunks; torch chunks of 32)."""
    count = BATCH1_TEXTS if one_by_one else BIG
    batch_texts = texts.of("natural", count)
    if one_by_one:
        run, rounds = _one_by_one(engine_predict, batch_texts), BIG_ROUNDS + 2
        run()
        benchmark.group = f"target: {count} real reviews, batch 1"
    else:
        run, rounds = partial(engine_predict, batch_texts), BIG_ROUNDS
        engine_predict(batch_texts[:64])
        benchmark.group = f"target: {count:,} real reviews, one call"
    benchmark.pedantic(run, rounds=rounds, iterations=1)
    work = _engine_work(engine, classifier, request, batch_texts, one_by_one)
    name = "target_batch1" if one_by_one else "target_1024"
    _record(benchmark, name, count, engine=engine, **work)


# -- the ceiling: this machine's int8 rate through ONNX Runtime ----------------------------------


def test_int8_peak(benchmark: Any, threads: int) -> None:
    """One ``PEAK_SIZE``-cubed ``MatMulInteger`` with the suite's threads (`benchmarks.int8`)."""
    from benchmarks.int8 import PEAK_SIZE, peak_session

    session, feed = peak_session(threads)
    benchmark.group = "int8 peak"
    benchmark.pedantic(session.run, args=(None, feed), rounds=PEAK_ROUNDS, iterations=1)
    benchmark.extra_info.update(
        kind="int8_peak", texts=0, int8_macs=PEAK_SIZE**3, size=PEAK_SIZE, threads=threads
    )
