"""Prove the runtime's CUDA path on a GPU machine and time it; writes one JSON document.

    python benchmarks/gpu/cuda_check.py ARTEFACT_DIR OUTPUT.json [--rounds 5]

Needs onnxruntime-gpu (not the CPU build) and the CUDA/cuDNN libraries (the nvidia-* wheels
suffice: the runtime preloads them, no torch import needed). It checks, on the artefact's own
labelled validation split (``validation.jsonl``):

- that ``device="cuda"`` and ``device="auto"`` really obtain CUDAExecutionProvider, and which
  variant each picks with none named (fp16 where the artefact has it);
- each GPU variant's accuracy and macro-F1, its label agreement with fp32 on the CPU and its
  largest probability difference from it, and the manifest's reference check;
- latency per batch size of fp32 and fp16, each with and without an IO binding, in alternated
  rounds (median, min and max of the rounds' medians), and the warm texts/s of the whole split
  through `Classifier.predict` (length-sorted chunks of 64);
- texts/s with 1, 2 and 4 threads predicting at once on one CUDA session, for sessions with
  every CPU as intra-op threads (spinning and not) and with one (``--only-calls``: just this);
- one more fp16 graph built here for comparison: the fp32 graph in float16 without the GPU
  fusions export applies (fused attention, SkipLayerNorm, BiasGelu).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from clfserve.runtime import Classifier
from clfserve.runtime.manifest import Manifest, file_entry
from clfserve.runtime.session import Device

BATCHES = (1, 8, 32, 64, 128)
CALLS = 30
"""Timed calls per configuration, batch and round (``--calls``)."""

log = logging.getLogger("cuda_check")


def read_split(folder: Path) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in (folder / "validation.jsonl").read_text().splitlines()]
    return [row["text"] for row in rows], [str(row["label"]) for row in rows]


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    scores = []
    for label in sorted(set(truth)):
        tp = sum(t == p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(p == label != t for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == label != p for t, p in zip(truth, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores))


def probabilities(clf: Classifier, texts: list[str]) -> np.ndarray:
    return np.array([list(p.scores.values()) for p in clf.predict(texts)])


def quality(
    clf: Classifier, texts: list[str], truth: list[str], cpu_fp32: np.ndarray
) -> dict[str, Any]:
    probs = probabilities(clf, texts)
    labels = [clf.info.labels[i] for i in probs.argmax(1)]
    return {
        "variant": clf.info.variant,
        "providers": list(clf.info.providers),
        "accuracy": round(float(np.mean([a == b for a, b in zip(labels, truth, strict=True)])), 4),
        "macro_f1": round(macro_f1(truth, labels), 4),
        "agreement_with_cpu_fp32": round(float((probs.argmax(1) == cpu_fp32.argmax(1)).mean()), 4),
        "max_abs_prob_diff_vs_cpu_fp32": float(np.abs(probs - cpu_fp32).max()),
        "reference_mismatches": clf.check_references(),
    }


def unfused_fp16(folder: Path, work: Path) -> Path:
    """A copy of the artefact whose only variant is its fp32 graph in float16, unfused (what
    export wrote before it fused the fp16 graph for GPUs)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    manifest = Manifest.read(folder)
    copy = work / "unfused"
    copy.mkdir()
    for name in ("tokenizer.json", "validation.jsonl"):
        shutil.copy(folder / name, copy / name)
    model = onnx.load(str(folder / manifest.variants["fp32"].file))
    onnx.save(convert_float_to_float16(model, keep_io_types=True), str(copy / "model.fp16.onnx"))
    variants = {"fp16": file_entry(copy, "model.fp16.onnx")}
    dataclasses.replace(manifest, variants=variants, drift_reference=None).write(copy)
    return copy


def timed(clf: Classifier, texts: list[str], calls: int) -> float:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        clf.predict(texts)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def alternated(
    configs: dict[str, Classifier], texts: list[str], rounds: int, calls: int
) -> dict[str, Any]:
    """Median latency (ms) and texts/s of each config and batch over alternated rounds."""
    samples: dict[tuple[str, int], list[float]] = {}
    whole: dict[str, list[float]] = {}
    for clf in configs.values():  # first sight of every shape: kernel selection
        for batch in BATCHES:
            clf.predict(texts[:batch])
        clf.predict(texts)
    for _ in range(rounds):
        for name, clf in configs.items():
            for batch in BATCHES:
                samples.setdefault((name, batch), []).append(timed(clf, texts[:batch], calls))
            started = time.perf_counter()
            clf.predict(texts)
            whole.setdefault(name, []).append(len(texts) / (time.perf_counter() - started))
    out: dict[str, Any] = {}
    for name in configs:
        rows = []
        for batch in BATCHES:
            ms = [s * 1e3 for s in samples[(name, batch)]]
            median = statistics.median(ms)
            rows.append({
                "batch": batch,
                "median_ms": round(median, 3),
                "min_ms": round(min(ms), 3),
                "max_ms": round(max(ms), 3),
                "texts_per_s": round(batch / median * 1e3),
            })  # fmt: skip
        split = whole[name]
        out[name] = {
            "latency": rows,
            "split_texts_per_s": {
                "median": round(statistics.median(split)),
                "min": round(min(split)),
                "max": round(max(split)),
            },
        }
    return out


def concurrent(layouts: dict[str, Classifier], texts: list[str], rounds: int) -> dict[str, Any]:
    """Texts/s of 1, 2 and 4 threads each predicting batches of 64 on one session at once, for
    each session layout (intra-op threads, spinning), all alternated in rounds: whether the
    service should run more than one model call on a GPU, and with which threads.

    The threads live through every round, as the service's do: ONNX Runtime's CUDA provider
    sets up per-thread state (cuBLAS and cuDNN handles) on a thread's first call, which a pool
    made anew each round would time too."""
    batches = [texts[i : i + 64] for i in range(0, len(texts) - 63, 64)]
    pools = {(name, n): ThreadPoolExecutor(n) for name in layouts for n in (1, 2, 4)}
    rates: dict[tuple[str, int], list[float]] = {}
    try:
        for _ in range(3):  # every thread's first calls, and memory for calls side by side
            for (name, _), pool in pools.items():
                list(pool.map(layouts[name].predict, batches))
        for _ in range(rounds):
            for (name, workers), pool in pools.items():
                started = time.perf_counter()
                list(pool.map(layouts[name].predict, batches * 2))
                rate = 2 * len(batches) * 64 / (time.perf_counter() - started)
                rates.setdefault((name, workers), []).append(rate)
    finally:
        for pool in pools.values():
            pool.shutdown()
    out: dict[str, Any] = {}
    for (name, workers), r in rates.items():
        out.setdefault(name, {})[str(workers)] = {
            "median": round(statistics.median(r)),
            "min": round(min(r)),
            "max": round(max(r)),
            "rounds": [round(x) for x in r],
        }
    return out


def call_layouts(folder: Path, device: Device) -> dict[str, Classifier]:
    """The default variant with every CPU as intra-op threads, spinning (`Classifier.load`'s
    default) and not (the service's), and with one thread, not spinning."""
    return {
        "all threads, spinning": Classifier.load(folder, device=device),
        "all threads, no spinning": Classifier.load(folder, device=device, spinning=False),
        "1 thread, no spinning": Classifier.load(folder, device=device, threads=1, spinning=False),
    }


def gpu_name() -> str:
    try:
        query = ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]
        return subprocess.run(query, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"unknown ({exc})"


def main(
    folder: Path, rounds: int, calls: int, device: Device = "cuda", only_calls: bool = False
) -> dict[str, Any]:
    texts, truth = read_split(folder)
    report: dict[str, Any] = {"onnxruntime": ort.__version__, "gpu": gpu_name(), "rounds": rounds}
    if only_calls:
        report["calls_at_once_batch64_texts_per_s"] = concurrent(
            call_layouts(folder, device), texts, rounds
        )
        return report
    cpu = Classifier.load(folder, device="cpu", variant="fp32")
    cpu_fp32 = probabilities(cpu, texts)
    report["cpu_fp32_threads"] = cpu.info.threads
    default = Classifier.load(folder, device=device)
    auto = Classifier.load(folder, device="auto")
    report["defaults"] = {
        "cuda": [default.info.variant, *default.info.providers, f"io_binding={default.io_binding}"],
        "auto": [auto.info.variant, *auto.info.providers],
    }
    configs = {
        f"{variant}{'+io' if binding else ''}": Classifier.load(
            folder, device=device, variant=variant, io_binding=binding
        )
        for variant in ("fp32", "fp16")
        for binding in (False, True)
    }
    with tempfile.TemporaryDirectory() as work:
        try:
            unfused = unfused_fp16(folder, Path(work))
            configs["unfused-fp16"] = Classifier.load(unfused, device=device)
        except Exception as exc:  # a comparison only: report it and go on
            report["unfused_fp16_error"] = repr(exc)
        report["quality"] = {
            name: quality(clf, texts, truth, cpu_fp32)
            for name, clf in configs.items()
            if "+io" not in name
        }
        report["timing"] = alternated(configs, texts, rounds, calls)
    report["calls_at_once_batch64_texts_per_s"] = concurrent(
        call_layouts(folder, device), texts, rounds
    )
    return report


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artefact", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: dry run")
    parser.add_argument(
        "--only-calls", action="store_true", help="only the calls-at-once measurement"
    )
    args = parser.parse_args()
    result = main(args.artefact, args.rounds, args.calls, args.device, args.only_calls)
    args.output.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
