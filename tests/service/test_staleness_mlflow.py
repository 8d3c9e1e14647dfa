"""Staleness monitor on the real tiny model, logging to a real (sqlite) MLflow registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from service_fakes import ready_client

from clfserve.runtime import Classifier
from clfserve.service import Settings, create_app
from clfserve.service.predictor import Predictor
from clfserve.service.staleness import StalenessSettings

pytestmark = pytest.mark.slow

NAME = "tiny-sentiment"
TOKEN = "t0ken"
POSITIVE = [
    "a gorgeous, witty, seductive movie",
    "funny and moving",
    "a delight from start to end",
    "brilliant acting and a clever script",
    "one of the best films of the year",
]
NEGATIVE = ["dull, tedious and far too long", "a boring mess", "the worst film of the year",
            "lifeless and predictable", "an incoherent waste of time"]  # fmt: skip


def validation_csv(path: Path) -> Path:
    """40 labelled rows plus one label the model does not know (so it can never score 1.0)."""
    lines = ["text,label"]
    for i in range(4):
        lines += [f'"{t} ({i})",positive' for t in POSITIVE]
        lines += [f'"{t} ({i})",negative' for t in NEGATIVE]
    lines.append('"it is a movie",neutral')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def register(artefact: Path, tracking_uri: str) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.create_registered_model(NAME)
    version = client.create_model_version(NAME, source=str(artefact)).version
    client.set_registered_model_alias(NAME, "champion", version)
    return str(version)


def evaluate_once(artefact: Path, data: Path, threshold: float) -> dict[str, Any]:
    def load(_: Settings) -> Predictor:  # the registry resolution itself is the service's
        return Classifier.load(artefact, device="cpu", threads=1)

    staleness = StalenessSettings().replace(
        scheduler="off", initial_delay_s=None, validation_data=str(data), threshold=threshold,
        admin_token=TOKEN,
    )  # fmt: skip
    settings = Settings().replace(rate_limit=None, model_uri=f"models:/{NAME}@champion")
    client = ready_client(create_app(settings, loader=load, staleness=staleness))
    try:
        response = client.post("/admin/evaluate", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200, response.text
        assert client.get("/model").json()["staleness"]["status"] == response.json()["status"]
        assert client.post("/predict", json={"text": POSITIVE[0]}).status_code == 200
        result: dict[str, Any] = response.json()
        return result
    finally:
        client.__exit__(None, None, None)


def test_evaluations_are_logged_and_tag_the_model_version(
    tiny_artefact: Path, mlflow_tracking: str, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    version = register(tiny_artefact, mlflow_tracking)
    data = validation_csv(tmp_path / "validation.csv")

    stale = evaluate_once(tiny_artefact, data, threshold=0.99)
    assert (stale["status"], stale["stale"], stale["error"]) == ("stale", True, None)
    assert stale["unknown_labels"] == {"neutral": 1}
    assert stale["n_samples"] == 41
    assert stale["tracking"]["registered_model"] == {"name": NAME, "version": version}

    client = MlflowClient(tracking_uri=mlflow_tracking, registry_uri=mlflow_tracking)
    tags = client.get_model_version(NAME, version).tags
    assert tags["stale"] == "true"
    assert tags["stale_run_id"] == stale["tracking"]["run_id"]
    assert tags["stale_checked_at"] == stale["finished_at"]
    run = client.get_run(stale["tracking"]["run_id"])
    assert run.data.tags["registered_model_name"] == NAME
    assert run.data.tags["registered_model_version"] == version
    assert run.data.tags["verdict"] == "stale"
    assert run.data.metrics["macro_f1"] == pytest.approx(stale["macro_f1"])
    assert run.data.metrics["accuracy"] == pytest.approx(stale["accuracy"])
    assert run.data.params["threshold"] == "0.99"

    healthy = evaluate_once(tiny_artefact, data, threshold=0.0)
    assert (healthy["status"], healthy["stale"]) == ("healthy", False)
    assert client.get_model_version(NAME, version).tags["stale"] == "false"
    runs = client.search_runs([run.info.experiment_id])
    assert sorted(r.data.tags["verdict"] for r in runs) == ["healthy", "stale"]
