"""int8 graphs of the default model side by side: the shipped int8 file and every graph export can
build (`clfserve.export.graphs`), plus ``folded`` with int32 inputs and ``folded`` quantized
without `clfserve.export.trim`. The baseline, ``shipped,
all fusions``, is the shipped file run as the runtime ran it before it left `CPU_FUSIONS_OFF`
off on CPU and before it cut texts into chunks by `CPU_RUN_COST`: every ONNX Runtime fusion,
fixed chunks of 8. Every other row runs as the runtime does now.

    python benchmarks/runtime/graphs.py --home /work/home

Builds the candidates from the artefact's fp32 graph in a temporary folder (the artefact and the
home are only read), scores each through the runtime `Classifier` exactly as export's ``auto`` does
(`clfserve.export.choice.score_graphs`: texts/s at batch 1 and at the serving batch, 32 texts per
call, length-sorted and cut into chunks of up to 8, each call run on every graph back to back;
label agreement with fp32, accuracy and macro-F1 on the validation split) and writes
``benchmarks/results/graphs-latest`` ``.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.workload import RESULTS, machine, resolve_artefact
from clfserve.runtime.resources import call_threads
from clfserve.runtime.session import CPU_FUSIONS_OFF

TARGET = 1.3
"""Wanted speed-up over the baseline, at batch 1 and at the serving batch."""
BASELINE = "shipped, all fusions"
UNTRIMMED = "folded, untrimmed"
"""``folded`` quantized from the untrimmed fp32 graph: what `clfserve.export.trim` adds."""
GOOD = {"agreement": 0.99, "accuracy": 0.83, "macro_f1": 0.83}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.home is not None:
        os.environ["CLFSERVE_HOME"] = str(args.home)
    artefact = _artefact(args)
    with tempfile.TemporaryDirectory(prefix="clfserve-graphs-") as tmp:
        report = compare(artefact, Path(tmp), args.rounds, args.calibration, args.speed_texts)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "graphs-latest.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "graphs-latest.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def compare(
    artefact: Path, work: Path, rounds: int, calibration_texts: int, speed_texts: int
) -> dict[str, Any]:
    from clfserve.evaluation.datasets import load_split
    from clfserve.export.choice import score_graphs
    from clfserve.export.graphs import GRAPHS, Calibration, build_graph, int32_inputs
    from clfserve.runtime.manifest import Manifest

    manifest = Manifest.read(artefact)
    for entry in (manifest.variants["fp32"], manifest.tokenizer):
        shutil.copy(artefact / entry.file, work / entry.file)
    shutil.copy(artefact / "manifest.json", work / "manifest.json")
    dataset = manifest.source.get("dataset", "rotten_tomatoes")
    seed = int(manifest.source.get("split_seed", 0))
    smoothing = (manifest.source.get("quantization") or {}).get("smoothing") or {}
    calibration = Calibration(
        work,
        manifest,
        load_split(dataset, "train", seed=seed).texts[:calibration_texts],
        float(smoothing.get("alpha", 0.8)),
    )
    paths = {BASELINE: work / "shipped.onnx", "shipped": work / "shipped.onnx"}
    shutil.copy(artefact / manifest.variants["int8"].file, paths["shipped"])
    made = {name: manifest.source.get("quantization", {}) for name in paths}
    for kind in GRAPHS:
        paths[kind] = work / f"{kind}.onnx"
        made[kind] = build_graph(kind, calibration, paths[kind])
        print(f"built {kind}", flush=True)
    paths[UNTRIMMED] = work / "folded-untrimmed.onnx"
    made[UNTRIMMED] = build_graph("folded", replace(calibration, trim=False), paths[UNTRIMMED])
    paths["folded-int32"] = work / "folded-int32.onnx"
    int32_inputs(paths["folded"], paths["folded-int32"])
    made["folded-int32"] = {**made["folded"], "inputs": "int32"}
    validation = load_split(dataset, "validation", seed=seed)
    scores, fp32 = score_graphs(
        work, manifest, paths, validation, rounds, {BASELINE: ()}, speed_texts, {BASELINE: None}
    )
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "artefact": str(artefact),
        "model": f"{manifest.name} v{manifest.version}",
        "rounds": rounds,
        "speed_texts": speed_texts,
        "threads": call_threads(),
        "validation_texts": len(validation),
        "machine": machine(),
        "fp32": {"accuracy": round(fp32.accuracy, 4), "macro_f1": round(fp32.macro_f1, 4)},
        "graphs": {
            name: {
                **asdict(score),
                "kernels": kernels(paths[name], work, () if name == BASELINE else CPU_FUSIONS_OFF),
                "made": made[name],
            }
            for name, score in scores.items()
        },
    }


def kernels(graph: Path, work: Path, fusions_off: Sequence[str]) -> int:
    """Nodes left after ONNX Runtime's own optimizations (what a session runs one by one): a
    count that, unlike timings on a shared machine, does not move between runs."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(work / f"{graph.stem}.optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(
        str(graph),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(fusions_off),
    )
    return len(onnx.load(options.optimized_model_filepath).graph.node)


def markdown(report: dict[str, Any]) -> str:
    graphs = report["graphs"]
    base = graphs[BASELINE]
    lines = [
        f"# int8 graphs of {report['model']}",
        "",
        f"{report['date']}, {report['machine']['cpu']}, {report['threads']} intra-op threads "
        "per call (as each of the service's model calls gets), "
        f"load average at the end {report['machine']['load_avg']} (a shared machine: "
        "compare rows only with each other). texts/s: median [min-max] of "
        f"{report['rounds']} rounds of {report['speed_texts']} validation texts in calls of 32 "
        "(serving: the runtime length-sorts each and cuts it into chunks of up to 8, the "
        "baseline every 8 rows) and the same texts one per call (batch 1), every call run on "
        "every graph back to back, each graph leading in turn; quality on "
        f"{report['validation_texts']} validation texts (fp32: accuracy "
        f"{report['fp32']['accuracy']:.4f}, macro-F1 {report['fp32']['macro_f1']:.4f}).",
        "",
        "| graph | kernels | batch 1 texts/s | serving texts/s "
        "| x baseline in the same round (1 / serving) "
        "| agreement | accuracy | macro-F1 | meets target |",
        "|---|---:|---|---|---|---|---|---|---|",
    ]
    for name, g in graphs.items():
        up1, upn = (
            _paired(g[kind]["rounds"], base[kind]["rounds"]) for kind in ("batch1", "serving")
        )
        good = all(g[key] >= floor for key, floor in GOOD.items())
        meets = "yes" if good and min(up1[0], upn[0]) >= TARGET else "no"
        lines.append(
            f"| {name} | {g['kernels']} | {_speed(g['batch1'])} | {_speed(g['serving'])} "
            f"| {_ratio(up1)} / {_ratio(upn)} "
            f"| {g['agreement']:.4f} | {g['accuracy']:.4f} | {g['macro_f1']:.4f} | {meets} |"
        )
    lines += [
        "",
        f"Target: >= {TARGET}x the baseline ({BASELINE}) at batch 1 and at the serving batch "
        "(the median of the per-round ratios: the machine's load moves every graph of a round "
        "alike), with agreement >= 0.99 and accuracy and macro-F1 >= 0.83. kernels: nodes after "
        "ONNX Runtime's graph optimizations (fewer = less per-call overhead, what matters at "
        "batch 1).",
        "",
    ]
    return "\n".join(lines)


def _paired(rounds: Sequence[float], baseline: Sequence[float]) -> tuple[float, float, float]:
    """Median, min and max of the speed-up over the baseline timed in the same round."""
    ratios = [r / b for r, b in zip(rounds, baseline, strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def _ratio(spread: tuple[float, float, float]) -> str:
    return f"{spread[0]:.2f} [{spread[1]:.2f}-{spread[2]:.2f}]"


def _speed(speed: dict[str, float]) -> str:
    return f"{speed['median']:.0f} [{speed['min']:.0f}-{speed['max']:.0f}]"


def _artefact(args: argparse.Namespace) -> Path:
    if args.model:
        return resolve_artefact(args.model)
    home = Path(os.environ.get("CLFSERVE_HOME", ".clfserve"))
    folder = home / "artefacts" / "clfserve-sentiment"
    return folder if (folder / "manifest.json").is_file() else resolve_artefact()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", type=Path, default=None, help="clfserve home [$CLFSERVE_HOME]")
    p.add_argument("--model", default=None, help="artefact folder or models:/ URI")
    p.add_argument("--rounds", type=int, default=5, help="timing rounds (passes over the texts)")
    p.add_argument("--calibration", type=int, default=512, help="train texts for calibration")
    p.add_argument(
        "--speed-texts",
        type=int,
        default=512,
        help="validation texts timed per graph and round (export times 128)",
    )
    return p


if __name__ == "__main__":
    raise SystemExit(main())
