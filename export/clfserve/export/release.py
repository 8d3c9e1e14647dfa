"""Glue the stages: (train ->) export + validate -> register. Each stage has its own module."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from clfserve.export.artefact import ExportResult, export_artefact
from clfserve.export.config import ExportConfig, ReleaseConfig, TrainConfig
from clfserve.export.promotion import Promotion, promote
from clfserve.export.train import TrainResult, train
from clfserve.registry import Registered, has_alias, register_artefact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReleaseResult:
    exported: ExportResult
    registered: Registered | None
    trained: TrainResult | None = None
    promotion: Promotion | None = None


def check_registry(release: ReleaseConfig) -> bool:
    """Reach the registry before long work; True when ``name@alias`` already exists."""
    return has_alias(release.name, release.alias, release.tracking_uri)


def export_and_register(export: ExportConfig, release: ReleaseConfig | None) -> ReleaseResult:
    """Export and validate; register only when ``release`` is given and validation passed."""
    if release is not None:
        check_registry(release)  # an unreachable server should fail now, not after the export
    exported = export_artefact(export)  # raises ValidationFailed before anything is registered
    if release is None:
        return ReleaseResult(exported, None)
    registered, metrics = register(exported, release)
    promotion = promote(registered, metrics, release) if release.alias else None
    return ReleaseResult(exported, registered, promotion=promotion)


def release_model(
    train_config: TrainConfig, export: ExportConfig, release: ReleaseConfig
) -> ReleaseResult:
    """Train, export, validate and register (the default model: `clfserve release`)."""
    check_registry(release)
    trained = train(train_config)
    result = export_and_register(export, release)
    return ReleaseResult(result.exported, result.registered, trained, result.promotion)


def register(exported: ExportResult, release: ReleaseConfig) -> tuple[Registered, dict[str, float]]:
    """A new version of ``release.name`` (the alias is the promotion gate's to move), and the
    metrics its run logged."""
    manifest = exported.manifest
    recipe: dict[str, Any] = exported.training.get("recipe", {})
    params: dict[str, Any] = {
        "version": manifest.version,
        "labels": ",".join(manifest.labels),
        "max_length": manifest.max_length,
        "inputs": ",".join(manifest.inputs),
        "dataset": manifest.source.get("dataset", ""),
        "checkpoint_sha256": manifest.source.get("checkpoint_sha256", ""),
        "int8_smoothing": _smoothing(manifest.source.get("quantization") or {}),
        "int8_trim": _trim(manifest.source.get("quantization") or {}),
        "int8_units": _units(manifest.source.get("quantization") or {}),
        "int8_graph": manifest.int8_graph.get("chosen", ""),
        "int8_graph_reason": manifest.int8_graph.get("reason", ""),
        "fp16_graph": _fp16_graph(manifest.source.get("fp16")),
        **{f"train_{k}": v for k, v in recipe.items() if k not in ("output", "progress")},
    }
    if "precision" in exported.training:  # what `auto` resolved to
        params["train_precision"] = exported.training["precision"]
    metrics: dict[str, float] = dict(exported.report.metrics())
    for variant, entry in manifest.variants.items():
        metrics[f"{variant}_bytes"] = float(entry.bytes)
    metrics.update(_graph_metrics(manifest.int8_graph.get("candidates", {})))
    for key in ("train_seconds", "steps", "n_train"):
        if key in exported.training:
            metrics[key] = float(exported.training[key])
    for key, value in exported.training.get("validation", {}).items():
        metrics[f"train_val_{key}"] = float(value)
    tags = {"clfserve.version": manifest.version, "clfserve.checksum": manifest.checksum}
    registered = register_artefact(
        exported.folder,
        name=release.name,
        alias=None,
        params=params,
        metrics=metrics,
        experiment=release.experiment,
        uri=release.tracking_uri,
        tags=tags,
    )
    return registered, metrics


def _smoothing(quantization: dict[str, Any]) -> str:
    smoothing = quantization.get("smoothing")
    if not smoothing:
        return "off"
    return f"alpha={smoothing['alpha']:g},placement={smoothing.get('placement', 'mul')}"


def _trim(quantization: dict[str, Any]) -> str:
    """What `clfserve.export.trim` did to the int8 graph's fp32 source, or why not."""
    trim = quantization.get("trim")
    if not trim:
        return "off"
    if trim.get("skipped"):
        return f"off ({trim['skipped']})"[:500]
    done = ["first_token_only"] if trim.get("first_token_only") else []
    return ",".join([*done, f"static_reshapes={trim.get('static_reshapes', 0)}"])


def _units(quantization: dict[str, Any]) -> str:
    """The hidden units `fused` gained (`clfserve.export.passthrough`, `clfserve.export.spikes`),
    each rewrite's reason where it was skipped; ``none`` for the other graphs."""
    parts = []
    if made := quantization.get("pass_through"):
        reason = made.get("skipped")
        parts.append(f"pass_through off ({reason})" if reason else f"pass_through={made['units']}")
    if made := quantization.get("spikes"):
        reason = made.get("skipped")
        parts.append(
            f"spikes off ({reason})" if reason else f"spikes={made['units']}->{made['copies']}"
        )
    return ",".join(parts)[:500] or "none"


def _fp16_graph(made: dict[str, Any] | None) -> str:
    """How the fp16 variant was made: its fused operators, ``unfused`` or ``none``."""
    if not made:
        return "none"
    fused = made.get("fused") or {}
    return ",".join(f"{name}={count}" for name, count in fused.items()) or "unfused"


def _graph_metrics(candidates: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``int8_<graph>_texts_per_s`` (serving batch), ``..._batch1_texts_per_s`` (medians),
    agreement, accuracy and macro-F1 of every int8 graph export measured."""
    metrics = {}
    for name, score in candidates.items():
        metrics[f"int8_{name}_texts_per_s"] = float(score["serving"]["median"])
        metrics[f"int8_{name}_batch1_texts_per_s"] = float(score["batch1"]["median"])
        for key in ("agreement", "accuracy", "macro_f1"):
            metrics[f"int8_{name}_{key}"] = float(score[key])
    return metrics
