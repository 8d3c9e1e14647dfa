"""The closed loop with real processes: a `clfserve serve` that follows the alias takes labels on
`POST /feedback`, its staleness monitor finds the champion stale on them, drift shows when traffic
turns long, and `clfserve retrain` (a real CLI process) promotes a challenger that learned the
labels, which the running server switches to; labels that give no reason to change leave the
alias, and the server, where they were."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest
from server_process import CLFSERVE, running_server

from feedback_slices import TINY_RETRAIN, agreeing, contradicting, fill, register_champion

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]
"""Two real fine-tunes and exports, each in a fresh process that imports torch: minutes on a
busy 2-core machine."""

NAME = "fresh-sentiment"
TOKEN = "loop-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
INTERVAL_S = 1.0
SWITCH_TIMEOUT_S = 60.0


def retrain(feedback_db: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    command = [str(CLFSERVE), "retrain", "--name", NAME, "--feedback-db", feedback_db,
               *TINY_RETRAIN]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)


def served_version(url: str) -> str:
    version: str = httpx.get(f"{url}/model", timeout=10).json()["version"]
    return version


def test_a_running_server_switches_to_a_better_retrained_model_only(
    tiny_artefact: Path, mlflow_tracking: str, tmp_path: Path
) -> None:
    champion = register_champion(tiny_artefact, NAME)
    wrong = f"sqlite:///{tmp_path / 'contradicting.db'}"
    env = {"MLFLOW_TRACKING_URI": mlflow_tracking, "CLFSERVE_MODEL_URI": f"models:/{NAME}@champion",
           "CLFSERVE_THREADS": "1", "CLFSERVE_RELOAD_INTERVAL": str(INTERVAL_S),
           "CLFSERVE_RATE_LIMIT": "off", "CLFSERVE_CACHE": "false", "CLFSERVE_FEEDBACK_DB": wrong,
           "CLFSERVE_ADMIN_TOKEN": TOKEN, "CLFSERVE_STALENESS_ENABLED": "true",
           "CLFSERVE_STALENESS_INITIAL_DELAY": "off",
           "CLFSERVE_STALENESS_TRACKING": "off", "CLFSERVE_STALENESS_FEEDBACK_MIN": "20",
           "CLFSERVE_DRIFT_MIN_SAMPLES": "40"}  # fmt: skip
    rows = contradicting(tiny_artefact, per_label=40)
    with running_server(tmp_path, env) as server, httpx.Client(base_url=server.url) as http:
        assert served_version(server.url) == champion

        # Labels that agree with the champion: no challenger can beat it.
        same = f"sqlite:///{tmp_path / 'agreeing.db'}"
        fill(same, agreeing(tiny_artefact, 40))
        kept = retrain(same, tmp_path)
        assert kept.returncode == 3, kept.stdout + kept.stderr
        assert f"stays on version {champion}" in kept.stdout
        time.sleep(3 * INTERVAL_S)  # several polls of the alias
        assert served_version(server.url) == champion

        # Clients post labels for a slice the champion answered wrongly, naming each answer.
        for text, label in rows:
            answer = http.post("/predict", json={"text": text}, timeout=10).json()
            named = {"text": text, "label": label, "prediction_id": answer["prediction_id"]}
            posted = http.post("/feedback", json=named, timeout=10)
            assert posted.status_code == 201, posted.text
            assert posted.json()["predicted"] == answer["label"]
        evaluated = http.post("/admin/evaluate", headers=ADMIN, timeout=120)
        assert evaluated.status_code == 200, evaluated.text
        evaluation = evaluated.json()
        assert "feedback" in evaluation["stale_on"], evaluation
        assert evaluation["feedback"]["data"]["rows"] == len(rows)
        # Traffic turns to long texts, cut at max_length: the label-free signals move.
        long_texts = [f"{text} " * 12 for text, _ in rows[:60]]
        assert http.post("/batch_predict", json={"texts": long_texts}, timeout=60).is_success
        drift = http.get("/staleness", timeout=30).json()["drift"]
        assert drift["status"] == "drifted", drift
        assert drift["signals"]["truncated"]["drifted"] is True

        # Retrained on those labels, the challenger learns the slice and takes the alias.
        promoted = retrain(wrong, tmp_path)
        assert promoted.returncode == 0, promoted.stdout + promoted.stderr
        new = promoted.stdout.split("-> version ")[1].split()[0]
        assert new != champion
        deadline = time.monotonic() + SWITCH_TIMEOUT_S
        while served_version(server.url) != new:
            assert time.monotonic() < deadline, (
                f"still serving the old version:\n{server.log_tail()}"
            )
            time.sleep(0.2)
        # The running server now answers the slice more often the way the feedback said
        # (the champion answered every one of these texts the other way).
        answers = [
            httpx.post(f"{server.url}/predict", json={"text": text}, timeout=10) for text, _ in rows
        ]
        assert {a.headers["x-model-version"] for a in answers} == {new}
        right = sum(a.json()["label"] == label for a, (_, label) in zip(answers, rows, strict=True))
        assert right >= len(rows) / 2, f"{right}/{len(rows)} of the slice answered as labelled"
