"""What the drift window costs on the answer path: `AnswerService` with and without its
observer, in alternated rounds in one process.

The model is a stub that answers at once with ready-made predictions (cache off, so every text
is a fresh answer the window counts): what is left is the answer path itself, so the
difference between the two configurations is the window's whole cost per text. Run with
``python -m benchmarks.drift_cost``; it also times binning a full window (what a drift check
adds, off the request path) and writes ``benchmarks/results/drift-latest.{md,json}``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any, cast

from benchmarks.workload import RESULTS, machine
from clfserve.runtime import ModelInfo, Prediction
from clfserve.service.answers import AnswerService, PredictionCache
from clfserve.service.gateway import InferenceGateway
from clfserve.service.metrics import ServiceMetrics
from clfserve.service.staleness.driftwindow import DriftWindow

ROUNDS = 7
CALLS = 2000
WINDOW = 2000
LABELS = ("negative", "positive")
INFO = ModelInfo("bench", "1", "c0ffee", "int8", ("CPUExecutionProvider",), LABELS, 64, 1, 0.0,
                 "/nowhere")  # fmt: skip


class InstantGateway:
    """Answers every text at once with a prediction made in advance."""

    def __init__(self, size: int) -> None:
        self.answers = [
            Prediction(
                LABELS[i % 2],
                0.5 + (i % 50) / 100,
                {"negative": 0.3, "positive": 0.7},
                i % 17 == 0,
                5 + i % 60,
            )
            for i in range(size)
        ]

    def current(self) -> ModelInfo:
        return INFO

    async def predict_texts(self, texts: Sequence[str]) -> tuple[ModelInfo, list[Prediction]]:
        return INFO, self.answers[: len(texts)]

    async def predict(self, text: str) -> tuple[ModelInfo, Prediction]:
        return INFO, self.answers[0]


def service(batch: int, observed: bool) -> AnswerService:
    gateway = cast(InferenceGateway, InstantGateway(batch))
    answers = AnswerService(gateway, PredictionCache(1, 1.0, enabled=False), ServiceMetrics())
    if observed:
        answers.observers.append(DriftWindow(WINDOW, lambda: INFO).observe)
    return answers


async def per_text_us(answers: AnswerService, batch: int) -> float:
    texts = [f"text {i}" for i in range(batch)]
    started = time.perf_counter()
    for _ in range(CALLS):
        if batch == 1:
            await answers.answer(texts[0])
        else:
            await answers.answer_many(texts)
    return (time.perf_counter() - started) / (CALLS * batch) * 1e6


async def measure() -> dict[str, Any]:
    results: dict[str, Any] = {}
    for batch in (1, 32):
        runs: dict[str, list[float]] = {"off": [], "on": []}
        apps = {"off": service(batch, False), "on": service(batch, True)}
        for name in runs:  # warm both, fill the window
            await per_text_us(apps[name], batch)
        for _ in range(ROUNDS):
            for name in ("off", "on"):
                runs[name].append(await per_text_us(apps[name], batch))
        deltas = [on - off for on, off in zip(runs["on"], runs["off"], strict=True)]
        results[f"batch {batch}"] = {
            **{name: summary(values) for name, values in runs.items()},
            "delta": summary(deltas),
        }
    window = DriftWindow(WINDOW, lambda: INFO)
    window.observe(INFO, InstantGateway(WINDOW).answers)
    binning = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        await window.snapshot()
        binning.append((time.perf_counter() - started) * 1e3)
    results["check: bin a full window (ms)"] = summary(binning)
    return results


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}  # fmt: skip


def report(results: dict[str, Any], host: dict[str, Any]) -> str:
    lines = [
        "# Drift window cost on the answer path",
        "",
        f"{host}; {ROUNDS} alternated rounds of {CALLS} calls, window {WINDOW}, stub model "
        "(answers at once), cache off. µs per text: median (min–max) over rounds.",
        "",
        "| calls | observer off | observer on | on − off (per round) |",
        "|---|---:|---:|---:|",
    ]
    for name, row in results.items():
        if "median" in row:
            continue
        cells = [f"{row[k]['median']:.2f} ({row[k]['min']:.2f}–{row[k]['max']:.2f})"
                 for k in ("off", "on", "delta")]  # fmt: skip
        lines.append(f"| {name} | {' | '.join(cells)} |")
    check = results["check: bin a full window (ms)"]
    lines += [
        "",
        f"A drift check bins the full window of {WINDOW} answers in {check['median']:.2f} ms "
        f"(median; {check['min']:.2f}–{check['max']:.2f}), in a thread (the event loop only "
        "copies the deque), at most once per check interval or `GET /staleness`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    results = asyncio.run(measure())
    host = machine()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "drift-latest.json").write_text(
        json.dumps({"machine": host, "results": results}, indent=1) + "\n", encoding="utf-8"
    )
    text = report(results, host)
    (RESULTS / "drift-latest.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
