"""clfserve.runtime: a lean ONNX Runtime inference core (onnxruntime, tokenizers, numpy only).

`Classifier.load` opens an artefact folder (the contract in `clfserve.runtime.manifest`), verifies
every file's checksum, and says which execution provider it really got; `predict` tokenizes,
sorts by length, runs chunks of ``batch_size`` rows and answers in the caller's order.

Members are imported on first use, so ``clfserve.runtime.errors`` stays free of onnxruntime (the
settings and the CLI's parser import it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clfserve.runtime.lazy import lazy_members

if TYPE_CHECKING:
    from clfserve.runtime.classifier import Classifier, ModelInfo
    from clfserve.runtime.errors import (
        ClfserveError,
        InvalidInput,
        ModelLoadError,
        ProviderError,
    )
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

__getattr__ = lazy_members(
    __name__,
    {
        "Classifier": ".classifier",
        "ModelInfo": ".classifier",
        "ClfserveError": ".errors",
        "InvalidInput": ".errors",
        "ModelLoadError": ".errors",
        "ProviderError": ".errors",
        "Encoded": ".inputs",
        "FileEntry": ".manifest",
        "Manifest": ".manifest",
        "Prediction": ".prediction",
    },
)
