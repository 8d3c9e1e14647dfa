"""Every registered version is an MLflow pyfunc model running on `clfserve.runtime`."""

from __future__ import annotations

from pathlib import Path

import pytest

from clfserve.registry import register_artefact, resolve_model
from clfserve.runtime import Classifier

NAME = "pyfunc-tiny"
TEXTS = ["a gorgeous, witty, seductive movie", "dull, lifeless and far too long", "fine"]


def test_a_registered_version_loads_and_predicts_as_mlflow_pyfunc(
    tiny_artefact: Path, mlflow_tracking: str
) -> None:
    import mlflow.pyfunc
    import pandas as pd

    register_artefact(tiny_artefact, name=NAME, alias="champion", params={}, metrics={})
    mlflow.set_tracking_uri(mlflow_tracking)
    mlflow.set_registry_uri(mlflow_tracking)

    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    answers = model.predict(pd.DataFrame({"text": TEXTS}))

    assert list(answers.columns) == ["label", "score", "scores", "truncated"]
    assert model.metadata.signature.inputs.input_names() == ["text"]
    expected = Classifier.load(tiny_artefact, device="cpu").predict(TEXTS)  # same variant: int8
    assert list(answers["label"]) == [p.label for p in expected]
    for got, want in zip(answers.to_dict("records"), expected, strict=True):
        assert got["score"] == pytest.approx(want.score, abs=1e-6)
        assert got["scores"] == pytest.approx(want.scores, abs=1e-6)
        assert got["truncated"] is want.truncated


def test_the_pyfunc_flavor_leaves_the_artefact_contract_alone(
    tiny_artefact: Path, mlflow_tracking: str
) -> None:
    register_artefact(tiny_artefact, name=NAME, alias="champion", params={}, metrics={})
    folder = resolve_model(f"models:/{NAME}@champion").path
    assert (folder / "MLmodel").is_file()
    assert (folder / "manifest.json").is_file()
    assert "loader_module: clfserve.registry.pyfunc" in (folder / "MLmodel").read_text()
    assert not (tiny_artefact / "MLmodel").exists(), "the exported folder is not modified"
    Classifier.load(folder, device="cpu")  # checksums still verify
