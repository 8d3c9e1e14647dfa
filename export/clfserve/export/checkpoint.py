"""Open Hugging Face checkpoint folders, turning their many failure modes into `CheckpointError`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from clfserve.export.errors import CheckpointError
from clfserve.export.paths import offline_env

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

TRAINING_FILE = "training.json"
"""Written by `clfserve train` next to the weights: recipe, timing and validation metrics."""
_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def check_folder(path: Path) -> None:
    """Fail early, with a hint, when ``path`` is not a checkpoint folder."""
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint folder (run `clfserve train` first?)")
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: not a checkpoint folder (no config.json)")
    if not any((path / name).is_file() for name in _WEIGHTS):
        raise CheckpointError(f"{path}: checkpoint has no weights (expected model.safetensors)")
    if not (path / "tokenizer.json").is_file():
        raise CheckpointError(f"{path}: checkpoint has no fast tokenizer (tokenizer.json)")


def load_tokenizer(path: Path) -> PreTrainedTokenizerFast:
    check_folder(path)
    offline_env()
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)  # type: ignore[no-untyped-call]
    except Exception as exc:  # transformers raises many unrelated types for bad folders
        raise CheckpointError(f"{path}: cannot load the tokenizer ({exc})") from exc
    if not tokenizer.is_fast:
        raise CheckpointError(f"{path}: the tokenizer is not a fast (tokenizers) tokenizer")
    return cast("PreTrainedTokenizerFast", tokenizer)


def load_model(
    path: Path, labels: Sequence[str] | None = None, attn_implementation: str | None = None
) -> PreTrainedModel:
    """A sequence classifier; ``labels`` sets a fresh head's id2label/label2id."""
    check_folder(path)
    offline_env()
    from transformers import AutoModelForSequenceClassification

    kwargs: dict[str, Any] = {}
    if labels is not None:
        kwargs.update(
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    except Exception as exc:  # corrupt weights surface as OSError, SafetensorError, ValueError...
        raise CheckpointError(f"{path}: cannot load the model ({exc})") from exc
    model.eval()
    return cast("PreTrainedModel", model)


def labels_of(model: PreTrainedModel) -> tuple[str, ...]:
    id2label = model.config.id2label or {}
    return tuple(str(id2label[i]) for i in range(len(id2label)))


def training_record(path: Path) -> dict[str, Any]:
    """The checkpoint's training.json, or {} when it was not trained by clfserve."""
    file = path / TRAINING_FILE
    if not file.is_file():
        return {}
    try:
        record: dict[str, Any] = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{file}: unreadable ({exc})") from exc
    return record
