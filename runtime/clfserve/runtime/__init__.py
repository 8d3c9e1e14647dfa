"""clfserve.runtime: a lean ONNX Runtime inference core (onnxruntime, tokenizers, numpy only).

Also the lean halves of evaluation that the service's staleness monitor shares with
`clfserve evaluate`: datasets and their fixed split, metrics, and `evaluate`.
"""

from clfserve.runtime.classifier import Classifier, ModelInfo
from clfserve.runtime.data import Dataset, DatasetError, Splits, load_dataset, load_split, split
from clfserve.runtime.errors import ClfserveError, InvalidInput, ModelLoadError, ProviderError
from clfserve.runtime.evaluation import EvaluationResult, Scorer, evaluate
from clfserve.runtime.manifest import FileEntry, Manifest
from clfserve.runtime.metrics import ClassMetrics, Metrics, compute_metrics
from clfserve.runtime.prediction import Prediction

__all__ = [
    "ClassMetrics",
    "Classifier",
    "ClfserveError",
    "Dataset",
    "DatasetError",
    "EvaluationResult",
    "FileEntry",
    "InvalidInput",
    "Manifest",
    "Metrics",
    "ModelInfo",
    "ModelLoadError",
    "Prediction",
    "ProviderError",
    "Scorer",
    "Splits",
    "compute_metrics",
    "evaluate",
    "load_dataset",
    "load_split",
    "split",
]
