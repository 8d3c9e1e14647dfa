"""clfserve.export: train -> ONNX -> validate -> MLflow registry (the offline, heavy side).

Importing this package is light: torch, transformers and mlflow load only inside the functions
that need them (`clfserve.export.registry` is imported by the service).

Stages, one module each: `train`, `onnx_export`, `quantize`, `validate`, `artefact` (folder
writer), `registry`, and `release` (the glue); `cli` adds the subcommands.
"""

from clfserve.export.config import ExportConfig, ReleaseConfig, TrainConfig
from clfserve.export.errors import CheckpointError, ExportError, RegistryError, ValidationFailed

__all__ = [
    "CheckpointError",
    "ExportConfig",
    "ExportError",
    "RegistryError",
    "ReleaseConfig",
    "TrainConfig",
    "ValidationFailed",
]
