"""Checkpoint -> validated artefact folder (the contract in `clfserve.runtime.manifest`).

The folder is built under a hidden staging name next to ``output`` and only moved into place
after validation passes, so a failed export never leaves something that looks releasable.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clfserve.evaluation.datasets import DEFAULT_DATASET, Dataset, load_split, write_jsonl
from clfserve.export.checkpoint import labels_of, load_model, load_tokenizer, training_record
from clfserve.export.choice import Requirement, choose, score_graphs
from clfserve.export.config import ExportConfig
from clfserve.export.errors import ExportError, ValidationFailed
from clfserve.export.graphs import AUTO_CANDIDATES, Calibration, build_graph
from clfserve.export.half import convert_fp16
from clfserve.export.onnx_export import export_onnx
from clfserve.export.validate import (
    ValidationReport,
    check_parity,
    drift_reference,
    pick_references,
    raise_on_failure,
    validate,
)
from clfserve.runtime.manifest import MANIFEST_FILE, FileEntry, Manifest, file_entry, sha256_file

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

log = logging.getLogger(__name__)
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
FP16_FILE = "model.fp16.onnx"
TOKENIZER_FILE = "tokenizer.json"
VALIDATION_FILE = "validation.jsonl"
DEFAULT_MAX_LENGTH = 128


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    manifest: Manifest
    report: ValidationReport
    training: dict[str, Any]
    """The checkpoint's training record (recipe, seconds, PyTorch metrics), {} if none."""


def export_artefact(config: ExportConfig) -> ExportResult:
    """Convert, quantize, validate and write the artefact folder; raise if validation fails.

    The validation split it scores is written into the folder (``validation.jsonl``), so the
    model carries its own labelled data to every host that serves it, and so is how the model
    answered it, binned (``drift_reference.json``): the service's label-free drift baseline.
    """
    tokenizer = load_tokenizer(config.checkpoint)
    model = load_model(config.checkpoint, attn_implementation="eager")
    record = training_record(config.checkpoint)
    recipe: dict[str, Any] = record.get("recipe", {})
    dataset = config.dataset or recipe.get("dataset", DEFAULT_DATASET)
    seed = config.seed if config.seed is not None else int(recipe.get("seed", 0))
    max_length = _max_length(config, recipe, model)
    validation = load_split(dataset, "validation", seed=seed)
    if config.max_eval_samples is not None:
        validation = validation.subset(range(min(config.max_eval_samples, len(validation))))
    calibration = load_split(dataset, "train", seed=seed).texts[: config.calibration_samples]

    staging = config.output.parent / f".{config.output.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        manifest = _build(model, tokenizer, staging, config, max_length)
        manifest = _with_source(manifest, config, record, dataset, seed)
        write_jsonl(validation, staging / VALIDATION_FILE)  # the data travels with the model
        manifest = _replace(manifest, validation_data=file_entry(staging, VALIDATION_FILE))
        manifest.write(staging)
        parity = check_parity(model, staging, validation, config)
        if config.quantize:
            int8 = Int8Inputs(calibration, validation, *_heads_and_width(model))
            manifest = _add_int8(manifest, staging, config, int8)
            manifest.write(staging)
        if config.fp16:
            manifest = _add_fp16(manifest, staging, *_heads_and_width(model))
            manifest.write(staging)
        report = validate(staging, validation, config, parity)
        raise_on_failure(report)
        references = pick_references(staging, validation)
        manifest = _replace(manifest, validation=report.to_dict(), references=references)
        drift = drift_reference(manifest, report).write(staging)  # the service's drift baseline
        manifest = _replace(manifest, drift_reference=file_entry(staging, drift.name))
        manifest.write(staging)
        _move_into_place(staging, config.output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("artefact %s v%s written to %s", manifest.name, manifest.version, config.output)
    return ExportResult(config.output, manifest, report, record)


def _build(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    folder: Path,
    config: ExportConfig,
    max_length: int,
) -> Manifest:
    inputs = export_onnx(model, folder / FP32_FILE, config.opset)
    variants = {"fp32": file_entry(folder, FP32_FILE)}
    save_tokenizer(tokenizer, folder / TOKENIZER_FILE)
    token_entry = file_entry(folder, TOKENIZER_FILE)
    multi = model.config.problem_type == "multi_label_classification"
    return Manifest(
        name=config.name,
        version=_content_version([*(v.sha256 for v in variants.values()), token_entry.sha256]),
        labels=labels_of(model),
        max_length=max_length,
        inputs=inputs,
        variants=variants,
        tokenizer=token_entry,
        pad_token_id=int(tokenizer.pad_token_id or 0),
        problem_type="multi_label" if multi else "single_label",
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


@dataclass(frozen=True)
class Int8Inputs:
    """What building and choosing the int8 graph needs besides the fp32 graph."""

    calibration: Sequence[str]
    validation: Dataset
    num_heads: int
    hidden_size: int


def _add_int8(manifest: Manifest, folder: Path, config: ExportConfig, int8: Int8Inputs) -> Manifest:
    """Build the int8 candidate graphs (``config.int8_graph``), keep one as model.int8.onnx and
    record how it was made and chosen."""
    calibration = Calibration(
        folder, manifest, int8.calibration, config.smooth_alpha, int8.num_heads, int8.hidden_size
    )
    pinned = config.int8_graph != "auto"
    kinds = (config.int8_graph,) if pinned else AUTO_CANDIDATES
    paths = {kind: folder / f".int8-{kind}.onnx" for kind in kinds}
    made: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    try:
        for kind, path in paths.items():
            try:
                made[kind] = build_graph(kind, calibration, path)
            except ExportError as exc:  # e.g. ORT's BERT fusions on another architecture
                if pinned:
                    raise
                log.warning("int8 graph %s left out: %s", kind, exc)
                failed[kind] = str(exc)
        if not made:
            raise ExportError(f"no int8 graph could be built: {failed}")
        built = {kind: paths[kind] for kind in made}
        choice = _choose_graph(manifest, folder, config, int8.validation, built, pinned)
        paths[choice["chosen"]].rename(folder / INT8_FILE)
    finally:
        for path in paths.values():
            path.unlink(missing_ok=True)
    if failed:
        choice["failed"] = failed
    quantization = made[choice["chosen"]]
    if quantization["smoothing"]:
        smoothing = quantization["smoothing"]
        log.info(
            "int8 graph %s: smoothed %d MatMul inputs (worst channel peak %.1fx the median), "
            "alpha %g, 1/s placed %s",
            *(choice["chosen"], smoothing["inputs"], smoothing["worst_channel_ratio"]),
            *(smoothing["alpha"], smoothing["placed"]),
        )
    manifest = _with_variant(
        manifest, "int8", file_entry(folder, INT8_FILE), quantization=quantization
    )
    return _replace(manifest, int8_graph=choice)


def _add_fp16(manifest: Manifest, folder: Path, num_heads: int, hidden_size: int) -> Manifest:
    """The fp32 graph fused for GPUs and in float16 as model.fp16.onnx (what CUDA serves)."""
    fp32 = folder / manifest.variants["fp32"].file
    made = convert_fp16(fp32, folder / FP16_FILE, num_heads, hidden_size)
    return _with_variant(manifest, "fp16", file_entry(folder, FP16_FILE), fp16=made)


def _with_variant(manifest: Manifest, name: str, entry: FileEntry, **made: Any) -> Manifest:
    """``manifest`` with one more variant, its version recomputed over every file, and how the
    variant was made (``made``) added to its ``source``."""
    variants = {**manifest.variants, name: entry}
    checksums = [*(v.sha256 for v in variants.values()), manifest.tokenizer.sha256]
    return _replace(
        manifest,
        variants=variants,
        version=_content_version(checksums),
        source={**manifest.source, **made},
    )


def _choose_graph(
    manifest: Manifest,
    folder: Path,
    config: ExportConfig,
    validation: Dataset,
    paths: dict[str, Path],
    pinned: bool,
) -> dict[str, Any]:
    if pinned:
        (kind,) = paths
        return {"chosen": kind, "reason": "pinned (int8_graph), not measured", "candidates": {}}
    scores, fp32 = score_graphs(folder, manifest, paths, validation, config.int8_rounds)
    requirement = Requirement(config.int8_min_agreement, config.int8_tolerance)
    chosen, reason = choose(scores, fp32, requirement)
    log.info("int8 graph: %s (%s)", chosen, reason)
    return {
        "chosen": chosen,
        "reason": reason,
        "candidates": {name: asdict(score) for name, score in scores.items()},
        "fp32": {"accuracy": fp32.accuracy, "macro_f1": fp32.macro_f1},
        "rounds": config.int8_rounds,
    }


def _heads_and_width(model: PreTrainedModel) -> tuple[int, int]:
    return (
        int(getattr(model.config, "num_attention_heads", 0) or 0),
        int(getattr(model.config, "hidden_size", 0) or 0),
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, path: Path) -> None:
    """Save as tokenizer.json with truncation and padding cleared (the runtime sets them)."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    backend.save(str(path))


def _with_source(
    manifest: Manifest, config: ExportConfig, record: dict[str, Any], dataset: str, seed: int
) -> Manifest:
    weights = config.checkpoint / "model.safetensors"
    source = {
        "checkpoint": str(config.checkpoint.resolve()),
        "checkpoint_sha256": sha256_file(weights) if weights.is_file() else "",
        "dataset": dataset,
        "split_seed": seed,
        "base_model": record.get("recipe", {}).get("base_model", ""),
        "training": record,
    }
    return _replace(manifest, source=source)


def _replace(manifest: Manifest, **changes: Any) -> Manifest:
    from dataclasses import replace

    return replace(manifest, **changes)


def _max_length(config: ExportConfig, recipe: dict[str, Any], model: PreTrainedModel) -> int:
    wanted = config.max_length or int(recipe.get("max_length", DEFAULT_MAX_LENGTH))
    limit = int(getattr(model.config, "max_position_embeddings", wanted))
    if not 2 <= wanted <= limit:
        raise ExportError(f"max_length {wanted} is outside 2..{limit} for this model")
    return wanted


def _content_version(checksums: list[str]) -> str:
    """Short hash of the artefact's files: same weights and tokenizer, same version."""
    return hashlib.sha256("".join(checksums).encode()).hexdigest()[:12]


def _move_into_place(staging: Path, output: Path) -> None:
    if output.exists():
        if output.is_dir() and ((output / MANIFEST_FILE).is_file() or not any(output.iterdir())):
            shutil.rmtree(output)  # replacing an earlier artefact (or an empty folder) is safe
        else:
            raise ExportError(
                f"{output}: exists and is not an artefact folder; choose another --output"
            )
    staging.rename(output)


__all__ = ["ExportResult", "ValidationFailed", "export_artefact", "save_tokenizer"]
