"""clfserve.export: train -> ONNX -> validate -> MLflow registry (the offline, heavy side).

Importing this package is light: torch, transformers and mlflow load only inside the functions
that need them.

Stages, one module each: `train`, `onnx_export`, `smooth`, `quantize`, `validate`, `artefact`
(folder writer), `release` (the glue, which registers through `clfserve.registry`) and
`retrain` (the champion fine-tuned on production feedback, promoted only when better).
"""

from clfserve.export.config import ExportConfig, ReleaseConfig, RetrainConfig, TrainConfig
from clfserve.export.errors import (
    CheckpointError,
    ExportError,
    NotEnoughFeedback,
    ValidationFailed,
)

__all__ = [
    "CheckpointError",
    "ExportConfig",
    "ExportError",
    "NotEnoughFeedback",
    "ReleaseConfig",
    "RetrainConfig",
    "TrainConfig",
    "ValidationFailed",
]
