"""The staleness schedule in a real `clfserve serve` process serving a registered tiny model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_process import Server, running_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAME = "tiny-sentiment"
TOKEN = "e2e-token"
WAIT_S = 90.0


def wait_for_scheduled_runs(server: Server, http: httpx.Client, count: int) -> dict[str, Any]:
    """Poll ``GET /staleness`` until ``count`` scheduled evaluations are recorded (bounded)."""
    deadline = time.monotonic() + WAIT_S
    body: dict[str, Any] = {}
    for _ in range(int(WAIT_S / 0.25) + 1):
        body = http.get("/staleness").json()
        if sum(r["trigger"] == "scheduled" for r in body["history"]) >= count:
            return body
        if time.monotonic() > deadline or server.process.poll() is not None:
            break
        time.sleep(0.25)
    raise AssertionError(f"{count} scheduled runs not seen: {body}\n{server.log_tail()}")


def test_schedule_flags_the_model_stale_in_api_mlflow_and_logs(
    tiny_artefact: Path, mlflow_tracking: str, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from clfserve.registry import register_artefact

    version = register_artefact(
        tiny_artefact, name=NAME, alias="champion", params={}, metrics={}
    ).version
    env = {
        "MLFLOW_TRACKING_URI": mlflow_tracking,
        "CLFSERVE_MODEL_URI": f"models:/{NAME}@champion",
        "CLFSERVE_THREADS": "1",
        "CLFSERVE_STALENESS_ENABLED": "true",
        "CLFSERVE_STALENESS_INTERVAL": "1",
        "CLFSERVE_STALENESS_INITIAL_DELAY": "0",
        "CLFSERVE_STALENESS_THRESHOLD": "0.99",
        "CLFSERVE_ADMIN_TOKEN": TOKEN,
    }
    with (
        running_server(tmp_path, env) as server,
        httpx.Client(base_url=server.url, timeout=30.0) as http,
    ):
        body = wait_for_scheduled_runs(server, http, count=2)
        latest = body["latest"]
        assert body["schedule"]["runs_here"] is True
        # The model's own validation data, which export wrote into the artefact (256 texts).
        assert (latest["status"], latest["stale"], latest["n_samples"]) == ("stale", True, 256)
        assert latest["data"]["source"] == "model:validation.jsonl"
        assert body["validation_data"] == "model"
        assert latest["tracking"]["registered_model"] == {"name": NAME, "version": version}
        assert http.get("/model").json()["staleness"]["verdict"] == "stale"
        assert "clfserve_staleness_stale 1.0" in http.get("/metrics").text
        assert http.post("/predict", json={"text": "a delight"}).status_code == 200

        forbidden = http.post("/admin/evaluate", headers={"Authorization": "Bearer wrong"})
        assert forbidden.status_code == 403
        now = http.post("/admin/evaluate", headers={"Authorization": f"Bearer {TOKEN}"})
        assert now.status_code == 200
        assert now.json()["trigger"] == "admin"
        log = server.log.read_text(errors="replace")
    assert "is STALE" in log
    assert "WARNING" in log

    client = MlflowClient(tracking_uri=mlflow_tracking, registry_uri=mlflow_tracking)
    experiment = client.get_experiment(latest["tracking"]["experiment_id"])
    home = Path(mlflow_tracking.removeprefix("sqlite:///")).parent
    # Under the clfserve home, whatever folder the server started in.
    assert experiment.artifact_location == (home / "mlartifacts" / "clfserve-staleness").as_uri()
    tags = client.get_model_version(NAME, version).tags
    assert tags["stale"] == "true"
    assert tags["stale_checked_at"]
    runs = client.search_runs(
        [latest["tracking"]["experiment_id"]],
        filter_string=f"tags.registered_model_version = '{version}'",
    )
    assert len(runs) >= 3
    assert all(r.data.tags["verdict"] == "stale" for r in runs)
