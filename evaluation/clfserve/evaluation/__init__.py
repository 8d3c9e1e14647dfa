"""clfserve.evaluation: labelled datasets, classification scores, and evaluating a model on them.

Used by `clfserve evaluate`, by export validation and by the service's staleness monitor, so all
three score a model the same way. Lean: the standard library and numpy, plus the runtime's types.
"""

from clfserve.evaluation.datasets import (
    DEFAULT_DATASET,
    SPLIT_NAMES,
    Dataset,
    DatasetError,
    Splits,
    load_dataset,
    load_split,
    split,
)
from clfserve.evaluation.evaluate import (
    EvaluationResult,
    LabelMismatch,
    Scorer,
    check_labels,
    evaluate,
    result_of,
)
from clfserve.evaluation.scores import ClassScores, Scores, compute_scores
from clfserve.evaluation.sources import DataSource, evaluation_data

__all__ = [
    "DEFAULT_DATASET",
    "SPLIT_NAMES",
    "ClassScores",
    "DataSource",
    "Dataset",
    "DatasetError",
    "EvaluationResult",
    "LabelMismatch",
    "Scorer",
    "Scores",
    "Splits",
    "check_labels",
    "compute_scores",
    "evaluate",
    "evaluation_data",
    "load_dataset",
    "load_split",
    "result_of",
    "split",
]
