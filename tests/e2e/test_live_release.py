"""Live releases against a real `clfserve serve` and a real sqlite MLflow registry: the server
follows the alias under load without failing a request, never serves a bad candidate, and starts
on its local copy while the registry is down."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_process import free_port, running_server, wait_listening

from clfserve.registry import register_artefact, set_alias

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAME = "live-sentiment"
TOKEN = "e2e-token"
INTERVAL_S = 1.0
FLIP_MARGIN_S = 20.0
"""Loading, warming and vetting the tiny model takes well under a second; a busy CI machine
gets this much slack on top of the interval."""
LOAD_LIMIT = 5000
"""Most requests the load loop sends (it also stops on time)."""


def register(folder: Path, alias: bool = False) -> str:
    version = register_artefact(folder, name=NAME, alias=None, params={}, metrics={}).version
    if alias:
        set_alias(NAME, "champion", version)
    return version


def serve_env(mlflow_tracking: str, **extra: str) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": mlflow_tracking,
        "CLFSERVE_MODEL_URI": f"models:/{NAME}@champion",
        "CLFSERVE_THREADS": "1",
        "CLFSERVE_RELOAD_INTERVAL": str(INTERVAL_S),
        "CLFSERVE_ADMIN_TOKEN": TOKEN,
        "CLFSERVE_RATE_LIMIT": "off",
        **extra,
    }


class LoadLoop:
    """`CLIENTS` concurrent clients sending `/predict` as fast as they go, each recording
    (status, X-Model-Version) per request; bounded in count and time."""

    CLIENTS = 4

    def __init__(self, url: str, seconds: float) -> None:
        self.url, self.seconds = url, seconds
        self.seen: list[tuple[int, str]] = []
        self.stopped = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(n,), daemon=True)
            for n in range(self.CLIENTS)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def _client(self, n: int) -> None:
        deadline = time.monotonic() + self.seconds
        with httpx.Client(base_url=self.url, timeout=10) as http:
            for i in range(LOAD_LIMIT // self.CLIENTS):
                if self.stopped.is_set() or time.monotonic() > deadline:
                    return
                text = f"a fine film, take {i % 50} by client {n}"
                try:
                    answer = http.post("/predict", json={"text": text})
                    self.seen.append((answer.status_code, answer.headers["x-model-version"]))
                except httpx.HTTPError as exc:  # a failed request is a failure of the swap
                    self.seen.append((0, type(exc).__name__))


def admin_reload(url: str) -> dict[str, Any]:
    answer = httpx.post(f"{url}/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=60)  # fmt: skip
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def metrics_of(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=10).text


def rejections(url: str) -> float:
    for line in metrics_of(url).splitlines():
        if line.startswith('clfserve_model_reloads_total{result="rejected"}'):
            return float(line.split()[-1])
    return 0.0


def wait_for_candidate(url: str, version: str) -> dict[str, Any]:
    """``GET /model``'s candidate once the server has decided about ``version`` (bounded)."""
    candidate: dict[str, Any] = {}
    deadline = time.monotonic() + INTERVAL_S + FLIP_MARGIN_S
    while time.monotonic() < deadline:
        candidate = httpx.get(f"{url}/model", timeout=10).json()["candidate"] or {}
        if candidate.get("version") == version and candidate.get("status") != "loading":
            return candidate
        time.sleep(0.1)
    raise AssertionError(f"no decision about version {version}: {candidate}")


def wait_for_evaluation(url: str, trigger: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        latest = httpx.get(f"{url}/staleness", timeout=10).json()["latest"]
        if latest is not None and latest["trigger"] == trigger:
            result: dict[str, Any] = latest
            return result
        time.sleep(0.2)
    raise AssertionError(f"no {trigger!r} evaluation within 60 s")


def tampered(source: Path, into: Path, how: str) -> Path:
    folder = shutil.copytree(source, into)
    if how == "corrupt":
        graph = folder / "model.int8.onnx"
        data = bytearray(graph.read_bytes())
        data[len(data) // 2] ^= 0xFF
        graph.write_bytes(bytes(data))
    else:  # loads fine, but answers its references differently: labels swapped in the manifest
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["labels"] = list(reversed(manifest["labels"]))
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_the_server_follows_the_alias_under_load_and_never_serves_a_bad_candidate(
    tiny_artefact: Path, mlflow_tracking: str, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    v1 = register(tiny_artefact, alias=True)
    monitor = {"CLFSERVE_STALENESS_ENABLED": "true", "CLFSERVE_STALENESS_INITIAL_DELAY": "off"}
    with running_server(tmp_path, serve_env(mlflow_tracking, **monitor)) as server:
        assert httpx.get(f"{server.url}/model").json()["version"] == v1
        load = LoadLoop(server.url, seconds=INTERVAL_S + FLIP_MARGIN_S + 5)
        load.start()
        time.sleep(0.5)
        v2 = register(tiny_artefact, alias=True)  # identical files: still a new version
        moved_at = time.monotonic()
        while time.monotonic() - moved_at < INTERVAL_S + FLIP_MARGIN_S:
            if load.seen and load.seen[-1][1] == v2:
                break
            time.sleep(0.05)
        flipped_after = time.monotonic() - moved_at
        time.sleep(0.5)  # a few more requests on the new version
        load.stopped.set()
        load.join(timeout=30)
        model = httpx.get(f"{server.url}/model").json()

        assert load.seen, "the load loop sent nothing"
        assert all(status == 200 for status, _ in load.seen), sorted(set(load.seen))
        versions = [version for _, version in load.seen]
        assert versions[0] == v1
        assert set(versions[-20:]) == {v2}, f"no flip within {flipped_after:.1f}s"
        assert set(versions) == {v1, v2}
        assert model["version"] == v2
        assert model["candidate"]["status"] == "swapped"
        # The staleness monitor evaluates the new version now, not at its next daily run.
        evaluation = wait_for_evaluation(server.url, trigger="swap")
        assert evaluation["model"]["version"] == v2
        assert evaluation["status"] in ("healthy", "stale")

        # A corrupt candidate is rejected; the serving version keeps answering.
        v3 = register(tampered(tiny_artefact, tmp_path / "corrupt", "corrupt"), alias=True)
        candidate = wait_for_candidate(server.url, v3)
        assert candidate["status"] == "rejected", candidate
        assert "checksum mismatch" in candidate["reason"]
        answer = httpx.post(f"{server.url}/predict", json={"text": "still here?"}, timeout=10)
        assert (answer.status_code, answer.headers["x-model-version"]) == (200, v2)
        # ... and not retried on every poll; POST /admin/reload retries it on request.
        rejected = rejections(server.url)
        time.sleep(INTERVAL_S * 2.5)
        assert rejections(server.url) == rejected
        assert 'clfserve_model_reloads_total{result="unchanged"}' in metrics_of(server.url)
        outcome = admin_reload(server.url)
        assert (outcome["result"], outcome["serving"]) == ("rejected", v2), outcome
        assert rejections(server.url) == rejected + 1

        # A candidate that loads but answers its references differently is rejected too.
        v4 = register(tampered(tiny_artefact, tmp_path / "relabelled", "labels"), alias=True)
        candidate = wait_for_candidate(server.url, v4)
        assert candidate["status"] == "rejected", candidate
        assert "does not reproduce its reference answers" in candidate["reason"]
        assert httpx.get(f"{server.url}/model").json()["version"] == v2
        log = server.log.read_text(errors="replace")
    assert f"rejected {NAME} version {v3}" in log
    assert "WARNING" in log
    client = MlflowClient(tracking_uri=mlflow_tracking, registry_uri=mlflow_tracking)
    assert "checksum mismatch" in client.get_model_version(NAME, v3).tags["clfserve.rejected"]
    assert "reference" in client.get_model_version(NAME, v4).tags["clfserve.rejected"]
    print(f"version header flipped {flipped_after:.2f}s after the alias moved "
          f"({len(load.seen)} requests, 0 failed)")  # fmt: skip


def test_registry_down_at_start_serves_the_local_copy_or_says_why(
    tiny_artefact: Path, mlflow_tracking: str, tmp_path: Path
) -> None:
    version = register(tiny_artefact, alias=True)
    with running_server(tmp_path, serve_env(mlflow_tracking)) as server:  # keeps a local copy
        assert httpx.get(f"{server.url}/model").json()["served_from"] == "registry"

    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with running_server(tmp_path, serve_env(down)) as server:
        model = httpx.get(f"{server.url}/model").json()
        answer = httpx.post(f"{server.url}/predict", json={"text": "a fine film"}, timeout=10)
    assert (model["status"], model["version"], model["served_from"]) == (
        "ready",
        version,
        "local copy",
    )
    assert model["registry_unreachable_since"] is not None
    assert (answer.status_code, answer.headers["x-model-version"]) == (200, version)

    empty_home = {"CLFSERVE_HOME": str(tmp_path / "empty-home")}
    with running_server(tmp_path, serve_env(down, **empty_home), ready=False) as server:
        wait_listening(server)
        for _ in range(300):  # bounded: 30 s
            model = httpx.get(f"{server.url}/model").json()
            if model["status"] != "loading":
                break
            time.sleep(0.1)
        answer = httpx.post(f"{server.url}/predict", json={"text": "a fine film"}, timeout=10)
    assert model["status"] == "failed"
    assert "unreachable" in model["detail"]
    assert answer.status_code == 503
    assert "unreachable" in answer.json()["detail"]
