"""Staleness monitor on the real tiny model, logging to a real (sqlite) MLflow registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from service_fakes import quiet, ready_client

from clfserve.runtime import Manifest
from clfserve.service import create_app
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


def validation_csv(path: Path, *extra: str) -> Path:
    """40 labelled rows plus one text twice with opposite labels, once in capitals (the
    tokenizer is uncased, so the model answers both alike and can never score 1.0)."""
    lines = ["text,label"]
    for i in range(4):
        lines += [f'"{t} ({i})",positive' for t in POSITIVE]
        lines += [f'"{t} ({i})",negative' for t in NEGATIVE]
    lines += ['"it is a movie",negative', '"IT IS A MOVIE",positive', *extra]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def register(artefact: Path, tracking_uri: str) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.create_registered_model(NAME)
    version = client.create_model_version(NAME, source=str(artefact)).version
    client.set_registered_model_alias(NAME, "champion", version)
    return str(version)


def evaluate_once(data: Path | None, threshold: float) -> dict[str, Any]:
    """One admin evaluation of ``models:/NAME@champion``, loaded as `clfserve serve` loads it
    (resolved through the registry, so it is served, and tracked, as its version number)."""
    staleness = StalenessSettings().replace(
        scheduler="off", initial_delay_s=None, threshold=threshold,
        validation_data=None if data is None else str(data),
    )  # fmt: skip
    settings = quiet(
        model_uri=f"models:/{NAME}@champion",
        device="cpu",
        threads=1,
        staleness=staleness,
        admin_token=TOKEN,
    )
    client = ready_client(create_app(settings))
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

    stale = evaluate_once(data, threshold=0.99)
    assert (stale["status"], stale["stale"], stale["error"]) == ("stale", True, None)
    assert stale["unknown_labels"] == {}
    assert stale["n_samples"] == 42
    assert stale["accuracy"] < 1.0
    assert stale["tracking"]["status"] == "logged"
    assert stale["tracking"]["registered_model"] == {"name": NAME, "version": version}
    assert stale["model"]["version"] == version

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
    assert run.data.params["data_source"] == str(data)

    healthy = evaluate_once(data, threshold=0.0)
    assert (healthy["status"], healthy["stale"]) == ("healthy", False)
    assert client.get_model_version(NAME, version).tags["stale"] == "false"
    runs = client.search_runs([run.info.experiment_id])
    assert sorted(r.data.tags["verdict"] for r in runs) == ["healthy", "stale"]

    # Data with a label the model does not have: an error, and nothing reaches MLflow.
    foreign = validation_csv(tmp_path / "foreign.csv", '"it is a film",neutral')
    refused = evaluate_once(foreign, threshold=0.99)
    assert (refused["status"], refused["verdict"]) == ("error", None)
    assert "neutral" in refused["error"]
    assert refused["tracking"]["status"] == "not attempted"
    assert len(client.search_runs([run.info.experiment_id])) == 2
    assert client.get_model_version(NAME, version).tags["stale"] == "false"


def test_by_default_the_model_is_scored_on_its_own_validation_data(
    tiny_artefact: Path, mlflow_tracking: str
) -> None:
    register(tiny_artefact, mlflow_tracking)
    manifest = Manifest.read(tiny_artefact)
    assert manifest.validation_data is not None
    rows = sum(1 for line in (tiny_artefact / manifest.validation_data.file).open() if line.strip())

    result = evaluate_once(None, threshold=0.0)
    assert (result["status"], result["error"]) == ("healthy", None)
    assert result["data"]["source"] == f"model:{manifest.validation_data.file}"
    assert result["data"]["checksum"] == manifest.validation_data.sha256
    assert result["data"]["rows"] == result["n_samples"] == rows
    assert result["tracking"]["status"] == "logged"


def test_the_score_on_production_labels_is_a_run_of_its_own_and_tags_the_version(
    tiny_artefact: Path, mlflow_tracking: str, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from clfserve.evaluation.feedback import FeedbackStore, default_url

    version = register(tiny_artefact, mlflow_tracking)
    # Ten production labels (here, the opposite of the validation data's), scored at threshold 0.
    store = FeedbackStore(default_url(tmp_path / "clfserve-home"))  # the home mlflow_tracking set
    try:
        for text in POSITIVE:
            store.add(text, "negative")
        for text in NEGATIVE:
            store.add(text, "positive")
    finally:
        store.close()
    staleness = StalenessSettings().replace(
        scheduler="off", initial_delay_s=None, threshold=0.0, feedback_min=10,
        validation_data=str(validation_csv(tmp_path / "validation.csv")),
    )  # fmt: skip
    settings = quiet(model_uri=f"models:/{NAME}@champion", device="cpu", threads=1,
                     staleness=staleness, admin_token=TOKEN)  # fmt: skip
    client = ready_client(create_app(settings))
    try:
        response = client.post("/admin/evaluate", headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        client.__exit__(None, None, None)
    result = response.json()
    feedback = result["feedback"]
    assert (result["status"], feedback["n_samples"]) == ("healthy", 10)
    assert feedback["tracking"]["status"] == "logged"

    mlflow = MlflowClient(tracking_uri=mlflow_tracking, registry_uri=mlflow_tracking)
    run = mlflow.get_run(feedback["tracking"]["run_id"])
    assert run.data.tags["clfserve.scope"] == "feedback"
    assert run.data.params["data_source"] == "feedback"
    assert run.data.params["data_window"].startswith("latest 500: ids 1-10")
    assert run.data.metrics["accuracy"] == pytest.approx(feedback["accuracy"])
    validation_run = mlflow.get_run(result["tracking"]["run_id"])
    assert validation_run.data.tags["clfserve.scope"] == "validation"
    tags = mlflow.get_model_version(NAME, version).tags
    assert tags["stale_feedback_run_id"] == run.info.run_id
    assert tags["stale_run_id"] == validation_run.info.run_id
    assert (tags["stale_feedback"], tags["stale"], result["stale_on"]) == ("false", "false", [])
