"""Prove the runtime's CUDA path on a GPU machine and time it; prints one JSON document.

    python benchmarks/gpu/cuda_check.py ARTEFACT_DIR TEXTS.txt   # one text per line

Checks that ``device="cuda"`` and ``device="auto"`` really obtain CUDAExecutionProvider, that the
GPU agrees with the CPU on the same fp32 graph, and measures latency per batch size. Needs
onnxruntime-gpu (not the CPU build) and the CUDA/cuDNN libraries (the nvidia-* wheels suffice:
the runtime preloads them, no torch import needed).
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from typing import Any

import numpy as np
import onnxruntime as ort

from clfserve.runtime import Classifier


def median_latency(clf: Classifier, texts: list[str], batch: int, repeats: int) -> dict[str, Any]:
    sample = texts[:batch]
    for _ in range(3):
        clf.predict(sample)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        clf.predict(sample)
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    return {
        "batch": batch,
        "median_ms": round(median * 1e3, 3),
        "texts_per_s": round(batch / median),
    }


def main(artefact: str, texts_file: str) -> dict[str, Any]:
    with open(texts_file, encoding="utf-8") as handle:
        texts = [line.rstrip("\n") for line in handle][:1024]
    gpu = Classifier.load(artefact, device="cuda", batch_size=64)
    auto = Classifier.load(artefact, device="auto")
    cpu = Classifier.load(artefact, device="cpu", variant="fp32")
    on_gpu = np.array([list(p.scores.values()) for p in gpu.predict(texts[:256])])
    on_cpu = np.array([list(p.scores.values()) for p in cpu.predict(texts[:256])])
    started = time.perf_counter()
    gpu.predict(texts)  # first sight of many sequence lengths: includes CUDA kernel selection
    cold = time.perf_counter() - started
    started = time.perf_counter()
    gpu.predict(texts)
    return {
        "onnxruntime": ort.__version__,
        "cuda": {"providers": gpu.info.providers, "variant": gpu.info.variant},
        "auto": {"providers": auto.info.providers, "variant": auto.info.variant},
        "max_abs_prob_diff_gpu_vs_cpu_fp32": float(np.abs(on_gpu - on_cpu).max()),
        "label_agreement_gpu_vs_cpu": float((on_gpu.argmax(1) == on_cpu.argmax(1)).mean()),
        "gpu_fp32": [median_latency(gpu, texts, b, 50) for b in (1, 8, 32, 64)],
        "gpu_texts_per_s_1024_cold": round(len(texts) / cold),
        "gpu_texts_per_s_1024_warm": round(len(texts) / (time.perf_counter() - started)),
    }


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(json.dumps(main(*sys.argv[1:3]), indent=1))
