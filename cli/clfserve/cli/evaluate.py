"""`clfserve evaluate`: score a model with ONNX Runtime, on its own validation data by default.

The same `clfserve.evaluation.evaluate` runs in export validation and in the service's staleness
monitor. Data whose labels the model does not have is refused (exit 1, both label sets named).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from clfserve.cli.options import command, positive_int
from clfserve.evaluation.datasets import SPLIT_NAMES
from clfserve.registry.uri import DEFAULT_MODEL_URI


def add_command(subparsers: Any) -> None:
    p = command(subparsers, "evaluate", run)
    p.add_argument(
        "--model", default=DEFAULT_MODEL_URI, help="models:/NAME@ALIAS, models:/NAME/N or a folder"
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="rotten_tomatoes or PATH.csv/.jsonl, split as training splits it "
        "[the model's own validation data; other splits of the dataset it was trained on]",
    )
    p.add_argument("--split", choices=SPLIT_NAMES, default="validation", help="which split")
    p.add_argument("--seed", type=int, default=None, help="split seed [the model's own, else 0]")
    p.add_argument(
        "--variant",
        choices=("int8", "fp32", "fp16"),
        default=None,
        help="[int8 on CPU, fp16 on CUDA]",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="device")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="rows per ONNX Runtime call; int8 answers shift slightly with it [8 CPU, 64 CUDA]",
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--tracking-uri", default=None, help="MLflow URI [$MLFLOW_TRACKING_URI]")


def run(args: argparse.Namespace) -> int:
    """accuracy, macro-F1, per-class scores and confusion matrix with ONNX Runtime

    Score an exported model with ONNX Runtime: on the validation data it carries (the split
    its export scored), or on the split of a dataset you name.
    """
    from clfserve.evaluation import evaluate, evaluation_data, load_split
    from clfserve.registry import resolve_model
    from clfserve.runtime import Classifier

    resolved = resolve_model(args.model, args.tracking_uri)
    classifier = Classifier.load(
        resolved.path, device=args.device, variant=args.variant, batch_size=args.batch_size
    )
    if args.dataset is None:
        dataset, _ = evaluation_data(None, resolved.path, args.split)
    else:
        seed = args.seed if args.seed is not None else classifier.manifest.source.get("split_seed")
        dataset = load_split(args.dataset, args.split, seed=int(seed or 0))
    result = evaluate(classifier, dataset)  # LabelMismatch: exit 1 with both label sets
    if args.json:
        out = {
            "model": args.model,
            "registry_version": resolved.version,
            "batch_size": classifier.batch_size,
            **result.to_dict(),
        }
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    # A registry URI is known by its version number (as the service reports it); a folder by
    # the artefact's content hash.
    version = resolved.version if resolved.version is not None else result.model_version
    print(f"{args.model} ({result.model_name} v{version}, {result.variant}, {result.provider}, "
          f"batch {classifier.batch_size}) on {result.dataset}: "
          f"{result.n_samples} texts")  # fmt: skip
    print(f"accuracy {result.accuracy:.4f}   macro-F1 {result.macro_f1:.4f}")
    width = max(len(label) for label in result.labels)
    print(f"{'label':<{width}}  precision  recall     f1  support")
    for label, c in result.per_class.items():
        print(f"{label:<{width}}  {c.precision:9.4f} {c.recall:7.4f} {c.f1:6.4f} {c.support:8d}")
    print("confusion (rows true, columns predicted):", " ".join(result.labels))
    for label, row in zip(result.labels, result.confusion, strict=True):
        print(f"  {label:<{width}} " + " ".join(f"{n:6d}" for n in row))
    if result.labels_without_data:
        print(f"labels with no rows in this data: {', '.join(result.labels_without_data)}")
    return 0
