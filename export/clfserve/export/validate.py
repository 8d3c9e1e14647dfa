"""Check an artefact folder before anything is registered.

1. Parity: fp32 ONNX logits vs the PyTorch model on the same token ids (max |diff|).
2. Quality: accuracy and macro-F1 of every variant on the validation split, through the runtime
   `Classifier` (the code that will serve it) at its CPU default batch size, not through PyTorch.
   Dynamic int8 quantizes activations per call, so its score depends a little on that size.
3. int8-vs-fp32 and fp16-vs-fp32 label agreement on that split.

The answers of step 2 also give the artefact its drift reference (`drift_reference`): what the
model's answers on that split look like, binned as the service bins its live traffic.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clfserve.evaluation.datasets import Dataset
from clfserve.evaluation.drift import Binning, DriftReference, Profile, profile
from clfserve.evaluation.evaluate import evaluate
from clfserve.export.config import ExportConfig
from clfserve.export.errors import ValidationFailed
from clfserve.export.feeds import text_feeds
from clfserve.runtime.classifier import Classifier, ModelInfo
from clfserve.runtime.manifest import Manifest, Reference
from clfserve.runtime.prediction import Prediction
from clfserve.runtime.session import CPU, create_session

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VariantScore:
    """One variant (fp32, int8 or fp16) scored with ONNX Runtime on the validation split."""

    accuracy: float
    macro_f1: float
    n_samples: int
    """Validation texts scored."""
    seconds: float
    """Wall time of scoring them all, tokenizing included."""
    batch_size: int
    """Rows per ONNX Runtime call: the CPU serving default, so int8 is scored as it is served."""


@dataclass(frozen=True)
class ValidationReport:
    """Numbers the manifest and the registry record; ``failures`` empty means it passed."""

    parity_max_abs_diff: float
    parity_samples: int
    variants: dict[str, VariantScore]
    agreement_int8_fp32: float | None
    dataset: str
    agreement_fp16_fp32: float | None = None
    failures: tuple[str, ...] = field(default=())
    profiles: dict[str, Profile] = field(default_factory=dict)
    """Each variant's answers, binned for the drift reference (not part of `to_dict`)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["failures"] = list(self.failures)
        del out["profiles"]
        return out

    def metrics(self) -> dict[str, float]:
        """Flat numbers for MLflow (``val_<variant>_accuracy`` ...)."""
        flat = {"parity_max_abs_diff": self.parity_max_abs_diff}
        for name, score in self.variants.items():
            flat[f"val_{name}_accuracy"] = score.accuracy
            flat[f"val_{name}_macro_f1"] = score.macro_f1
        for name in ("int8", "fp16"):
            agreement = self.agreement(name)
            if agreement is not None:
                flat[f"agreement_{name}_fp32"] = agreement
        return flat

    def agreement(self, variant: str) -> float | None:
        """Share of validation texts on which ``variant`` predicts fp32's label (None: no such
        variant)."""
        return {"int8": self.agreement_int8_fp32, "fp16": self.agreement_fp16_fp32}.get(variant)


def check_parity(
    model: PreTrainedModel, folder: Path, validation: Dataset, config: ExportConfig
) -> tuple[float, int]:
    """Max logit difference on the first ``parity_samples`` texts; raise when over tolerance.

    Runs before quantization: a graph that disagrees with PyTorch is not worth quantizing.
    """
    sample = list(validation.texts[: config.parity_samples])
    diff = parity(model, folder, Manifest.read(folder), sample)
    if not diff <= config.max_abs_diff:
        raise ValidationFailed(
            f"validation failed, nothing registered: {_parity_failure(diff, config)} "
            f"on {len(sample)} validation texts"
        )
    return diff, len(sample)


def validate(
    folder: Path, validation: Dataset, config: ExportConfig, parity_result: tuple[float, int]
) -> ValidationReport:
    """Score every variant of ``folder``; the report lists what failed (never raises for it)."""
    manifest = Manifest.read(folder)
    diff, n_parity = parity_result

    scores: dict[str, VariantScore] = {}
    predicted: dict[str, tuple[str, ...]] = {}
    profiles: dict[str, Profile] = {}
    binning = Binning.of(manifest.labels, manifest.max_length)
    for variant in manifest.variants:
        classifier = Classifier.load(folder, device="cpu", variant=variant, warmup=False)
        recorded = _Recorded(classifier)
        result = evaluate(recorded, validation)
        profiles[variant] = profile(recorded.answers, binning)
        scores[variant] = VariantScore(
            result.accuracy,
            result.macro_f1,
            result.n_samples,
            round(result.duration_s, 3),
            classifier.batch_size,
        )
        predicted[variant] = result.predicted
        log.info("%s: accuracy %.4f, macro-F1 %.4f", variant, result.accuracy, result.macro_f1)
    agreements = {name: _agreement(predicted, name) for name in ("int8", "fp16")}
    failures = _failures(diff, scores, agreements, config)
    return ValidationReport(
        parity_max_abs_diff=diff,
        parity_samples=n_parity,
        variants=scores,
        agreement_int8_fp32=agreements["int8"],
        agreement_fp16_fp32=agreements["fp16"],
        dataset=validation.name,
        failures=tuple(failures),
        profiles=profiles,
    )


def drift_reference(manifest: Manifest, report: ValidationReport) -> DriftReference:
    """The artefact's drift reference: every variant's answers on the validation split."""
    binning = Binning.of(manifest.labels, manifest.max_length)
    return DriftReference(binning, report.profiles, f"{report.dataset}: validation split")


@dataclass
class _Recorded:
    """A `Classifier` that keeps every answer it gives (for the drift reference)."""

    classifier: Classifier
    answers: list[Prediction] = field(default_factory=list)

    @property
    def info(self) -> ModelInfo:
        return self.classifier.info

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        answers = self.classifier.predict(texts)
        self.answers.extend(answers)
        return answers


def parity(model: PreTrainedModel, folder: Path, manifest: Manifest, texts: list[str]) -> float:
    """Max |fp32 ONNX logit - PyTorch logit| over ``texts``, padded as the runtime pads them.

    Not finite (inf) when either side produced NaN/inf: a broken model must not pass.
    """
    import torch

    if not texts:
        return 0.0
    session = create_session(folder / manifest.variants["fp32"].file, [CPU], threads=1)
    worst = 0.0
    for arrays in text_feeds(folder, manifest, texts, batch_size=16):
        feeds = {i.name: arrays[i.name] for i in session.get_inputs()}
        (onnx_logits,) = session.run([manifest.output], feeds)
        with torch.inference_mode():
            torch_logits = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits
        delta = np.abs(np.asarray(onnx_logits, dtype=np.float64) - torch_logits.double().numpy())
        if not np.all(np.isfinite(delta)):
            return math.inf
        worst = max(worst, float(delta.max()))
    return worst


REFERENCES_PER_LABEL = 2
REFERENCE_POOL = 256
"""Validation texts scored to choose references from."""


def pick_references(folder: Path, validation: Dataset) -> tuple[Reference, ...]:
    """For each label, the validation texts fp32 predicts correctly with the most confidence,
    with their fp32 probabilities: what a server reproduces before a new model may answer."""
    classifier = Classifier.load(folder, device="cpu", variant="fp32", warmup=False)
    texts = validation.texts[:REFERENCE_POOL]
    predictions = classifier.predict(texts)
    chosen: list[Reference] = []
    labels = classifier.manifest.labels
    for label in labels:
        correct = [
            (prediction.score, text, prediction)
            for text, truth, prediction in zip(texts, validation.labels, predictions, strict=False)
            if truth == label and prediction.label == label
        ]
        for _, text, prediction in sorted(correct, key=lambda row: -row[0])[:REFERENCES_PER_LABEL]:
            chosen.append(Reference(text, dict(prediction.scores)))
    return tuple(chosen)


def _agreement(predicted: dict[str, tuple[str, ...]], variant: str) -> float | None:
    if variant not in predicted or not predicted.get("fp32"):
        return None
    pairs = zip(predicted[variant], predicted["fp32"], strict=True)
    return sum(a == b for a, b in pairs) / len(predicted["fp32"])


def _failures(
    diff: float,
    scores: dict[str, VariantScore],
    agreements: dict[str, float | None],
    config: ExportConfig,
) -> list[str]:
    failures = []
    if not diff <= config.max_abs_diff:
        failures.append(_parity_failure(diff, config))
    for name, score in scores.items():
        if score.accuracy < config.min_accuracy:
            failures.append(f"{name} accuracy {score.accuracy:.4f} < {config.min_accuracy:g}")
        if score.macro_f1 < config.min_macro_f1:
            failures.append(f"{name} macro-F1 {score.macro_f1:.4f} < {config.min_macro_f1:g}")
    for name, agreement in agreements.items():
        if agreement is not None and agreement < config.min_agreement:
            failures.append(
                f"{name}/fp32 label agreement {agreement:.4f} < {config.min_agreement:g}"
            )
    return failures


def _parity_failure(diff: float, config: ExportConfig) -> str:
    return f"fp32 ONNX vs PyTorch max |logit diff| {diff:.3g} > {config.max_abs_diff:g}"


def raise_on_failure(report: ValidationReport) -> None:
    if report.failures:
        raise ValidationFailed(
            "validation failed, nothing registered: " + "; ".join(report.failures)
        )
