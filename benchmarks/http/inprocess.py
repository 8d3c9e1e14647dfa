"""The runtime alone, in this process: what `/predict` is compared with.

A full micro-batch of the service is `CHUNKS_PER_CALL` chunks of the model's ``batch_size``
texts in arrival order, handed to `Classifier.predict` as one call (which length-sorts and chunks
them). `InProcess.serving_rate` runs the same texts the same way, with the service's CPU layout
(``callers`` such calls at once from threads, each with ``threads`` intra-op threads) and the
default batch size, with no server: the rate `/predict` would reach if HTTP, JSON, queueing and
the rate limiter cost nothing.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


class InProcess:
    """One CPU `Classifier` with the serving defaults, ``threads`` intra-op threads per call and
    ``callers`` calls at once."""

    def __init__(self, artefact: Path, threads: int, callers: int = 1) -> None:
        from clfserve.runtime import Classifier
        from clfserve.service.gateway import CHUNKS_PER_CALL

        self.classifier = Classifier.load(artefact, device="cpu", threads=threads)
        self.threads = threads
        self.callers = callers
        self.call = self.classifier.batch_size * CHUNKS_PER_CALL
        """Texts per call: one full micro-batch."""

    def serving_rate(self, texts: Sequence[str]) -> float:
        """Texts/s over ``texts`` in calls of one micro-batch, in send order, ``callers`` at
        once (caller k takes micro-batches k, k + callers, ...)."""
        predict = self.classifier.predict
        predict(list(texts[: self.call]))
        calls = [list(texts[i : i + self.call]) for i in range(0, len(texts), self.call)]

        def caller(k: int) -> None:
            for batch in calls[k :: self.callers]:
                predict(batch)

        started = time.perf_counter()
        with ThreadPoolExecutor(self.callers) as pool:
            list(pool.map(caller, range(self.callers)))
        return len(texts) / (time.perf_counter() - started)

    def profile(self, texts: Sequence[str]) -> dict[str, Any]:
        """Batch-1 latency (512 texts), the serving rate (twice) and one sorted call of all."""
        predict = self.classifier.predict
        predict(list(texts[:64]))
        singles = []
        for text in texts[:512]:
            started = time.perf_counter()
            predict([text])
            singles.append(time.perf_counter() - started)
        rates = [self.serving_rate(texts) for _ in range(2)]
        started = time.perf_counter()
        predict(list(texts))
        one_call = len(texts) / (time.perf_counter() - started)
        return {
            "variant": self.classifier.info.variant,
            "threads": self.threads,
            "callers": self.callers,
            "batch_size": self.classifier.batch_size,
            "texts_per_call": self.call,
            "texts": len(texts),
            "batch1_p50_ms": round(statistics.median(singles) * 1000, 3),
            "batch1_texts_per_s": round(1 / statistics.mean(singles), 1),
            "serving_texts_per_s": round(statistics.mean(rates), 1),
            "one_call_texts_per_s": round(one_call, 1),
        }
