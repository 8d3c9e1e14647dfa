"""Errors of the release pipeline (all print as one line through the CLI).

ClfserveError                  (clfserve.runtime.errors)
├── DatasetError               (clfserve.evaluation.datasets) unusable dataset
├── CheckpointError            missing or malformed checkpoint / base model
├── ExportError                ONNX conversion or quantization failed
├── ValidationFailed           the exported artefact failed a check; nothing was registered
├── NotEnoughFeedback          retrain: too few usable feedback rows to train on and score with
└── RegistryError              (clfserve.registry) tracking server unreachable, unknown model
"""

from __future__ import annotations

from clfserve.runtime.errors import ClfserveError


class CheckpointError(ClfserveError):
    """A checkpoint folder is missing, incomplete or unreadable."""


class ExportError(ClfserveError):
    """Conversion to ONNX or quantization failed."""


class ValidationFailed(ClfserveError):
    """An exported artefact failed validation; the message carries the numbers."""


class NotEnoughFeedback(ClfserveError):
    """Retrain refused: the feedback store holds too few usable rows (the message counts them)."""
