"""`clfserve train | export | release`: argument parsing only; the work lives in
`clfserve.export` (and `clfserve.registry`).

Building the parsers imports nothing heavy; each handler imports torch/mlflow when it runs.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_args

from clfserve.cli.options import command
from clfserve.evaluation.datasets import DEFAULT_DATASET
from clfserve.export.config import ExportConfig, Int8Graph, ReleaseConfig
from clfserve.export.config import TrainConfig as _TrainDefaults
from clfserve.registry.uri import DEFAULT_ALIAS, DEFAULT_NAME

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

C = TypeVar("C", bound="DataclassInstance")

_T = _TrainDefaults(output=Path())


def add_commands(subparsers: Any) -> None:
    """Add the release-pipeline subcommands to the top-level `clfserve` parser."""
    _add_train(subparsers)
    _add_export(subparsers)
    _add_release(subparsers)
    _add_promote(subparsers)


# -- parsers --------------------------------------------------------------------------------


def _add_train(subparsers: Any) -> None:
    p = command(subparsers, "train", _train)
    _dataset_option(p)
    p.add_argument(
        "--output", type=Path, default=None, help="checkpoint folder [<home>/checkpoints/NAME]"
    )
    _training_options(p)


def _add_export(subparsers: Any) -> None:
    p = command(subparsers, "export", _export)
    p.add_argument("--model", type=Path, required=True, help="checkpoint folder (clfserve train)")
    p.add_argument(
        "--output", type=Path, default=None, help="artefact folder [<home>/artefacts/NAME]"
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="validation data [the dataset the checkpoint was trained on]",
    )
    p.add_argument(
        "--max-length", type=int, default=None, help="tokens per text [training max_length]"
    )
    _gate_options(p, min_score=0.0)
    _registry_options(p)
    p.add_argument(
        "--register",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="register the validated artefact in MLflow (default: register)",
    )


def _add_release(subparsers: Any) -> None:
    p = command(subparsers, "release", _release)
    p.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when NAME@ALIAS is already registered",
    )
    _dataset_option(p)
    _training_options(p)
    _gate_options(p, min_score=0.80)
    _registry_options(p)


def _add_promote(subparsers: Any) -> None:
    p = command(subparsers, "promote", _promote)
    p.add_argument("--version", required=True, help="the registered version number")
    _registry_options(p, gate=False)


def _promote(args: argparse.Namespace) -> int:
    """point an alias at an existing version (a rollback is a promote of an older one)

    Move NAME@ALIAS to an existing registered version, with no gate: to roll back, promote
    the previous version. Servers following the alias swap to it within their reload
    interval.
    """
    from clfserve.registry import alias_version, set_alias

    before = alias_version(args.name, args.alias, args.tracking_uri)
    set_alias(args.name, args.alias, args.version, args.tracking_uri)
    was = f" (was version {before.version})" if before is not None else ""
    print(f"models:/{args.name}@{args.alias} -> version {args.version}{was}")
    return 0


def _dataset_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset", default=DEFAULT_DATASET, help="rotten_tomatoes or PATH.csv/.jsonl (text,label)"
    )


def _training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--base-model", type=Path, default=None, help="pretrained folder [all-MiniLM-L6-v2]"
    )
    p.add_argument(
        "--balanced",
        action=argparse.BooleanOptionalAction,
        default=_T.balanced,
        help=f"weight the loss by inverse class frequency (default: {_T.balanced})",
    )
    p.add_argument("--seed", type=int, default=_T.seed, help="split, head init and batch order")
    p.add_argument("--epochs", type=float, default=_T.epochs, help="passes over the train split")
    p.add_argument("--learning-rate", type=float, default=_T.learning_rate, help="AdamW lr")
    p.add_argument("--batch-size", type=int, default=_T.batch_size, help="texts per step")
    p.add_argument("--max-length", type=int, default=_T.max_length, help="tokens per text")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default=_T.precision,
        help="forward passes in bf16 autocast or fp32; auto = bf16 on CPUs with native bf16",
    )
    p.add_argument(
        "--max-train-samples", type=int, default=None, help="train on the first N texts only"
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads [usable CPUs]")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _gate_options(p: argparse.ArgumentParser, min_score: float) -> None:
    e = ExportConfig(checkpoint=Path(), output=Path())
    p.add_argument(
        "--min-accuracy", type=float, default=min_score, help="fail below this val accuracy"
    )
    p.add_argument(
        "--min-macro-f1", type=float, default=min_score, help="fail below this val macro-F1"
    )
    p.add_argument(
        "--max-abs-diff", type=float, default=e.max_abs_diff, help="ONNX/PyTorch logit tolerance"
    )
    p.add_argument(
        "--min-agreement", type=float, default=e.min_agreement, help="agreement with fp32 labels"
    )
    p.add_argument("--no-fp16", dest="fp16", action="store_false", help="no fp16 graph (for CUDA)")
    p.add_argument(
        "--smooth-alpha",
        type=_alpha,
        default=e.smooth_alpha,
        help="SmoothQuant strength for int8, 0 < A <= 1; 0 = plain dynamic int8",
    )
    p.add_argument(
        "--int8-graph",
        choices=get_args(Int8Graph),
        default=e.int8_graph,
        help="int8 graph: auto = build mul, plain, folded and fused, time them on validation "
        "texts and keep the fastest that keeps the fp32 answers; or pin one without measuring "
        "(mul = smoothing as Mul nodes, plain = no smoothing, folded = smoothing folded into "
        "the V projections where possible, fused = ORT BERT fusions + QAttention, smoothed only "
        "where no node is added (V projections, pass-through units, spiking units split), "
        "static = QDQ "
        "calibrated on train texts)",
    )


def _registry_options(p: argparse.ArgumentParser, gate: bool = True, force: bool = True) -> None:
    p.add_argument("--name", default=DEFAULT_NAME, help="registered model name")
    p.add_argument("--alias", default=DEFAULT_ALIAS, help="alias moved to the new version")
    p.add_argument("--tracking-uri", default=None, help="MLflow URI [$MLFLOW_TRACKING_URI]")
    if not gate:
        return
    p.add_argument(
        "--max-regression",
        type=float,
        default=ReleaseConfig().max_regression,
        help="move the alias only if the new validation macro-F1 is at most this far below "
        "the version the alias names now",
    )
    if not force:
        return
    p.add_argument(
        "--force", action="store_true", help="move the alias whatever the promotion gate says"
    )


# -- handlers -------------------------------------------------------------------------------


def _train(args: argparse.Namespace) -> int:
    """fine-tune a text classifier (default: MiniLM on Rotten Tomatoes)

    Fine-tune a sequence classifier on the train split of a dataset and save a Hugging Face
    checkpoint (labels become id2label/label2id).
    """
    from clfserve.export.train import train

    output = args.output or _home() / "checkpoints" / DEFAULT_NAME
    result = train(_train_config(args, output))
    print(f"checkpoint: {result.checkpoint}")
    print(f"trained {result.n_train} texts, {result.steps} steps in {result.train_seconds:.1f}s "
          f"({result.precision})")  # fmt: skip
    if result.metrics:
        m = result.metrics
        print(f"validation (PyTorch): accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}")
    return 0


def _export(args: argparse.Namespace) -> int:
    """convert a checkpoint to validated ONNX (fp32 + int8 + fp16) and register it

    Export a checkpoint to ONNX with optimum-onnx, quantize to int8 (for CPUs), convert to fp16
    (for CUDA), validate (parity with PyTorch, per-variant accuracy/macro-F1, int8/fp32 and
    fp16/fp32 agreement) and register the artefact
    in MLflow. Nothing is registered when a check fails.
    """
    from clfserve.export.release import export_and_register

    output = args.output or _home() / "artefacts" / args.name
    config = _export_config(args, args.model, output, args.dataset, args.max_length)
    release = _release_config(args) if args.register else None
    result = export_and_register(config, release)
    _print_export(result)
    return 0


def _release(args: argparse.Namespace) -> int:
    """train + export + register the default model (what `make model` runs)

    Train, export, validate and register a model, moving the alias to it.
    """
    from clfserve.export.release import check_registry, release_model

    release = _release_config(args)
    if args.if_missing and check_registry(release):
        print(f"models:/{release.name}@{release.alias} exists; nothing to do")
        return 0
    checkpoint = _home() / "checkpoints" / args.name
    output = _home() / "artefacts" / args.name
    export = _export_config(args, checkpoint, output, args.dataset, args.max_length)
    result = release_model(_train_config(args, checkpoint), export, release)
    if result.trained is not None:
        t = result.trained
        seconds = f"{t.train_seconds:.1f}s"
        print(f"trained {t.n_train} texts, {t.steps} steps in {seconds} ({t.precision})")
    _print_export(result)
    return 0


# -- helpers --------------------------------------------------------------------------------


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 1")
    return value


def _home() -> Path:
    from clfserve.registry import default_home

    return default_home()


def _train_config(args: argparse.Namespace, output: Path) -> _TrainDefaults:
    return _from_args(_TrainDefaults, args, output=output, progress=not args.no_progress)


def _export_config(
    args: argparse.Namespace,
    checkpoint: Path,
    output: Path,
    dataset: str | None,
    max_length: int | None,
) -> ExportConfig:
    return _from_args(
        ExportConfig, args, checkpoint=checkpoint, output=output, dataset=dataset,
        max_length=max_length,
    )  # fmt: skip


def _release_config(args: argparse.Namespace) -> ReleaseConfig:
    return _from_args(ReleaseConfig, args)


def _from_args(config: type[C], args: argparse.Namespace, **given: Any) -> C:
    """``config`` from the options named like its fields (each option's dest is a field name),
    with ``given`` on top."""
    names = {f.name for f in dataclasses.fields(config)}
    return config(**({k: v for k, v in vars(args).items() if k in names} | given))


def _print_export(result: Any) -> None:
    exported, registered = result.exported, result.registered
    manifest, report = exported.manifest, exported.report
    print(f"artefact: {exported.folder} ({manifest.name} v{manifest.version})")
    print(f"parity: max |logit diff| {report.parity_max_abs_diff:.2e} on {report.parity_samples}")
    for variant, score in report.variants.items():
        size = manifest.variants[variant].bytes / 1e6
        print(f"{variant:>5}: accuracy {score.accuracy:.4f}, macro-F1 {score.macro_f1:.4f} "
              f"on {score.n_samples} validation texts at batch {score.batch_size}; "
              f"{size:.1f} MB")  # fmt: skip
    for name in ("int8", "fp16"):
        agreement = report.agreement(name)
        if agreement is not None:
            print(f"{name}/fp32 label agreement: {agreement:.4f}")
    if manifest.int8_graph:
        print(f"int8 graph: {manifest.int8_graph['chosen']} ({manifest.int8_graph['reason']})")
    if registered is not None:
        print(f"registered {registered.uri} (run {registered.run_id})")
    if result.promotion is not None and registered is not None:
        print(f"promotion: {result.promotion.describe(registered)}")
