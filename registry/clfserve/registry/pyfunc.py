"""Each registered version is also an MLflow pyfunc model that runs on `clfserve.runtime`.

`register_artefact` writes an ``MLmodel`` file (flavor ``python_function``, loader module: this
one) next to ``manifest.json`` in the version's artefact folder, so MLflow's own tools load it:

    model = mlflow.pyfunc.load_model("models:/clfserve-sentiment@champion")
    model.predict(pd.DataFrame({"text": ["a gorgeous, witty, seductive movie"]}))
    #       label     score                                   scores  truncated
    # 0  positive  0.99...  {'negative': 0.00..., 'positive': 0.99...}      False

The artefact folder itself is unchanged (its files and checksums are the runtime's contract);
``mlflow models serve`` and ``mlflow.pyfunc.spark_udf`` work where clfserve is installed.
mlflow and pandas are imported inside functions: they are only needed where MLflow loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from clfserve.runtime import Classifier

LOADER_MODULE = __name__
TEXT_COLUMN = "text"
OUTPUT_COLUMNS = ("label", "score", "scores", "truncated")


def write_mlmodel(folder: Path) -> Path:
    """Write the ``MLmodel`` file that makes ``folder`` (an artefact) an MLflow pyfunc model."""
    import mlflow.pyfunc
    from mlflow.models import Model, ModelSignature
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import Map

    model = Model()
    mlflow.pyfunc.add_to_model(model, loader_module=LOADER_MODULE)
    model.signature = ModelSignature(
        inputs=Schema([ColSpec(DataType.string, TEXT_COLUMN)]),
        outputs=Schema(
            [
                ColSpec(DataType.string, "label"),
                ColSpec(DataType.double, "score"),
                ColSpec(Map(DataType.double), "scores"),
                ColSpec(DataType.boolean, "truncated"),
            ]
        ),
    )
    target = folder / "MLmodel"
    model.save(str(target))
    return target


class ClfservePyfunc:
    """What `mlflow.pyfunc.load_model` wraps: `predict` on a DataFrame with a ``text`` column."""

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """One row per text: ``label``, ``score``, ``scores`` (label -> probability),
        ``truncated``. Takes a DataFrame (its ``text`` column, or its only column), a Series or a
        list of strings."""
        import pandas as pd

        texts = _texts(model_input)
        rows = [
            {"label": p.label, "score": p.score, "scores": dict(p.scores), "truncated": p.truncated}
            for p in self.classifier.predict(texts)
        ]
        return pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))


def _texts(model_input: Any) -> list[str]:
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        if TEXT_COLUMN in model_input.columns:
            column = model_input[TEXT_COLUMN]
        elif len(model_input.columns) == 1:
            column = model_input.iloc[:, 0]
        else:
            raise ValueError(f"expected a {TEXT_COLUMN!r} column, got {list(model_input.columns)}")
        return [str(text) for text in column.tolist()]
    if isinstance(model_input, pd.Series):
        return [str(text) for text in model_input.tolist()]
    if isinstance(model_input, Sequence) and not isinstance(model_input, str):
        return [str(text) for text in model_input]
    raise TypeError(f"expected a DataFrame with a {TEXT_COLUMN!r} column or a list of texts")


def _load_pyfunc(path: str) -> ClfservePyfunc:
    """MLflow's entry point (``loader_module``): the artefact folder the ``MLmodel`` sits in."""
    from clfserve.runtime import Classifier

    return ClfservePyfunc(Classifier.load(Path(path), device="auto"))
