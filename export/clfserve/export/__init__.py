"""clfserve.export: train -> ONNX -> validate -> MLflow registry (the offline, heavy side).

Importing this package is light: torch, transformers and mlflow load only inside the functions
that need them.

Stages, one module each: `train`, `onnx_export`, `smooth`, `quantize`, `validate`, `artefact`
(folder writer) and `release` (the glue, which registers through `clfserve.registry`).
"""

from clfserve.export.config import ExportConfig, ReleaseConfig, TrainConfig
from clfserve.export.errors import CheckpointError, ExportError, ValidationFailed

__all__ = [
    "CheckpointError",
    "ExportConfig",
    "ExportError",
    "ReleaseConfig",
    "TrainConfig",
    "ValidationFailed",
]
