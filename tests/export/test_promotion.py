"""The promotion gate on a real sqlite MLflow registry: a worse version never takes the alias
unless forced, and the decision is logged on the new version's run."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from clfserve.export.config import ReleaseConfig
from clfserve.export.promotion import PromotionRefused, promote
from clfserve.registry import Registered, alias_version, register_artefact

NAME = "gated"


def registered(folder: Path, macro_f1: float) -> tuple[Registered, dict[str, float]]:
    metrics = {"val_int8_macro_f1": macro_f1, "val_fp32_macro_f1": macro_f1 + 0.01}
    version = register_artefact(folder, name=NAME, alias=None, params={}, metrics=metrics)
    return version, metrics


def champion() -> str | None:
    ref = alias_version(NAME, "champion")
    return None if ref is None else ref.version


def test_gate(tiny_artefact: Path, mlflow_tracking: str) -> None:
    release = ReleaseConfig(name=NAME, alias="champion")
    first, metrics = registered(tiny_artefact, 0.80)
    assert promote(first, metrics, release).decision == "first"
    assert champion() == first.version

    within, metrics = registered(tiny_artefact, 0.796)  # 0.004 below: allowed
    assert promote(within, metrics, release).decision == "promoted"
    assert champion() == within.version

    worse, metrics = registered(tiny_artefact, 0.70)
    with pytest.raises(PromotionRefused, match=r"stays on version 2: int8 validation macro-F1"):
        promote(worse, metrics, release)
    assert champion() == within.version
    run = MlflowClient(mlflow_tracking).get_run(worse.run_id)
    assert run.data.tags["promotion.decision"] == "refused"
    assert run.data.tags["promotion.champion_version"] == within.version
    assert float(run.data.tags["promotion.candidate_macro_f1"]) == pytest.approx(0.70)
    assert float(run.data.tags["promotion.champion_macro_f1"]) == pytest.approx(0.796)

    forced = promote(worse, metrics, ReleaseConfig(name=NAME, alias="champion", force=True))
    assert forced.decision == "forced"
    assert champion() == worse.version


def test_rollback_is_a_promote_of_the_older_version(
    tiny_artefact: Path, mlflow_tracking: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from clfserve.cli import main

    release = ReleaseConfig(name=NAME, alias="champion")
    for score in (0.80, 0.81):
        version, metrics = registered(tiny_artefact, score)
        promote(version, metrics, release)
    assert champion() == "2"
    assert main(["promote", "--name", NAME, "--version", "1"]) == 0
    assert champion() == "1"
    assert f"models:/{NAME}@champion -> version 1 (was version 2)" in capsys.readouterr().out
    assert main(["promote", "--name", NAME, "--version", "9"]) == 1  # no such version
    assert champion() == "1"
