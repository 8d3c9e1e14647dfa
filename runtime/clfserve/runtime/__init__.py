"""clfserve.runtime: a lean ONNX Runtime inference core (onnxruntime, tokenizers, numpy only).

`Classifier.load` opens an artefact folder (the contract in `clfserve.runtime.manifest`), verifies
every file's checksum, and says which execution provider it really got; `predict` tokenizes,
sorts by length, runs chunks of ``batch_size`` rows and answers in the caller's order.
"""

from clfserve.runtime.classifier import Classifier, ModelInfo
from clfserve.runtime.errors import ClfserveError, InvalidInput, ModelLoadError, ProviderError
from clfserve.runtime.inputs import Encoded
from clfserve.runtime.manifest import FileEntry, Manifest
from clfserve.runtime.prediction import Prediction

__all__ = [
    "Classifier",
    "ClfserveError",
    "Encoded",
    "FileEntry",
    "InvalidInput",
    "Manifest",
    "ModelInfo",
    "ModelLoadError",
    "Prediction",
    "ProviderError",
]
