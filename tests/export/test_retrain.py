"""`retrain` on a tiny model and a real sqlite MLflow registry: a challenger that learned a slice
of feedback the champion gets wrong takes the alias; one that cannot beat the champion does not;
too little feedback is refused; every run is logged with its counts, scores and decision."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from clfserve.cli import build_parser
from clfserve.cli.retrain import config_from
from clfserve.export.config import RetrainConfig
from clfserve.export.errors import CheckpointError, NotEnoughFeedback
from clfserve.export.retrain import retrain
from clfserve.registry import alias_version
from feedback_slices import TINY_RETRAIN, agreeing, contradicting, fill, register_champion

NAME = "retrained"


def config(tmp_path: Path) -> RetrainConfig:
    """What `clfserve retrain` makes of the tiny options (the home is the fixture's)."""
    argv = ["retrain", "--name", NAME, "--feedback-db", feedback_db(tmp_path), *TINY_RETRAIN]
    return config_from(build_parser().parse_args(argv))


def feedback_db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'feedback.db'}"


def runs(uri: str) -> list:  # type: ignore[type-arg]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("clfserve-retrain")
    assert experiment is not None
    return client.search_runs([experiment.experiment_id])


def test_feedback_the_champion_gets_wrong_makes_a_better_challenger(
    tiny_artefact: Path, mlflow_tracking: str, tmp_path: Path
) -> None:
    champion = register_champion(tiny_artefact, NAME)
    rows = contradicting(tiny_artefact, per_label=60)
    fill(feedback_db(tmp_path), [*rows, ("a", "unknown-label")])

    result = retrain(config(tmp_path))

    assert result.promoted, result.reason
    assert result.champion_version == champion
    moved = alias_version(NAME, "champion")
    assert moved is not None
    assert moved.version == result.challenger_version != champion
    s = result.scores
    assert s["challenger_feedback"].macro_f1 > s["champion_feedback"].macro_f1
    assert s["champion_feedback"].accuracy == 0.0  # every held-out row contradicts it
    assert s["challenger_feedback"].accuracy >= 0.5  # learned the slice, on texts it never saw
    assert result.feedback.usable == 120
    assert result.feedback.dropped["foreign_label"] == 1
    assert len(result.feedback.holdout) + len(result.feedback.train) == 120

    (run,) = runs(mlflow_tracking)
    assert run.info.run_id == result.run_id
    assert run.data.tags["clfserve.retrain.decision"] == "promoted"
    assert run.data.tags["clfserve.challenger_version"] == result.challenger_version
    m = run.data.metrics
    assert m["feedback_holdout"] == len(result.feedback.holdout)
    assert m["feedback_train"] == len(result.feedback.train)
    assert m["feedback_dropped_foreign_label"] == 1
    assert m["train_rows"] == 256
    for key in ("champion_feedback", "challenger_feedback", "champion_validation",
                "challenger_validation"):  # fmt: skip
        assert m[f"{key}_macro_f1"] == pytest.approx(s[key].macro_f1)
    # The challenger was fine-tuned from the champion's checkpoint, on the champion's data.
    release_run = MlflowClient(mlflow_tracking).get_run(
        MlflowClient(mlflow_tracking).get_model_version(NAME, result.challenger_version).run_id
    )
    assert release_run.data.tags["retrain.run_id"] == result.run_id
    assert release_run.data.params["dataset"] == "rotten_tomatoes"


def test_a_challenger_that_cannot_beat_the_champion_is_not_promoted(
    tiny_artefact: Path, mlflow_tracking: str, tmp_path: Path
) -> None:
    champion = register_champion(tiny_artefact, NAME)
    fill(feedback_db(tmp_path), agreeing(tiny_artefact, 60))

    result = retrain(config(tmp_path))

    assert not result.promoted
    assert result.scores["champion_feedback"].macro_f1 == 1.0  # nothing left to win
    assert "not above the champion's" in result.reason
    ref = alias_version(NAME, "champion")
    assert ref is not None
    assert ref.version == champion  # the alias did not move
    assert result.challenger_version != champion  # registered, for a manual promote
    (run,) = runs(mlflow_tracking)
    assert run.data.tags["clfserve.retrain.decision"] == "not promoted"
    assert run.data.metrics["promoted"] == 0.0


def test_too_little_feedback_is_refused_and_recorded(
    tiny_artefact: Path, mlflow_tracking: str, tmp_path: Path
) -> None:
    register_champion(tiny_artefact, NAME)
    fill(feedback_db(tmp_path), [("fine", "positive"), ("fine", "negative")])

    with pytest.raises(NotEnoughFeedback, match=r"2 stored, 1 usable .* need at least 20"):
        retrain(config(tmp_path))

    (run,) = runs(mlflow_tracking)
    assert run.data.tags["clfserve.retrain.decision"] == "refused"
    assert run.data.metrics["feedback_dropped_duplicate"] == 1
    assert not (tmp_path / "clfserve-home" / "checkpoints").exists()  # nothing was trained


def test_a_champion_without_its_checkpoint_is_named(
    tiny_artefact: Path, tiny_checkpoint: Path, mlflow_tracking: str, tmp_path: Path
) -> None:
    import json
    import shutil

    moved = tmp_path / "artefact"
    shutil.copytree(tiny_artefact, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["source"]["checkpoint"] = str(tmp_path / "gone")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    register_champion(moved, NAME)
    fill(feedback_db(tmp_path), agreeing(tiny_artefact, 40))

    with pytest.raises(CheckpointError, match=r"not reachable: its manifest records .*gone"):
        retrain(config(tmp_path))
