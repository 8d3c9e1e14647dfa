"""clfserve.runtime: a lean ONNX Runtime inference core (onnxruntime, tokenizers, numpy only)."""

from clfserve.runtime.classifier import Classifier, ModelInfo
from clfserve.runtime.errors import ClfserveError, InvalidInput, ModelLoadError, ProviderError
from clfserve.runtime.manifest import FileEntry, Manifest
from clfserve.runtime.prediction import Prediction

__all__ = [
    "Classifier",
    "ClfserveError",
    "FileEntry",
    "InvalidInput",
    "Manifest",
    "ModelInfo",
    "ModelLoadError",
    "Prediction",
    "ProviderError",
]
