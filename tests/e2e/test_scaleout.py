"""A cluster on one machine: two `clfserve serve` replicas (and one with ``--workers 2``) sharing
a real redis-server, serving a registered tiny model with MLflow tracking.

Asserted: one rate-limit budget across replicas (within the documented bound), cross-replica
cache hits, one scheduled staleness evaluation per interval cluster-wide (counted in MLflow
runs), every replica's ``/staleness`` showing the same latest result; Redis killed mid-traffic
gives no 5xx, and after it restarts the replicas share again.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_process import Server, running_server

from redis_process import RedisProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

NAME = "tiny-sentiment"
LIMIT = 40
WINDOW_S = 60.0
INTERVAL_S = 3.0
_clients = itertools.count(1)


def new_client() -> dict[str, str]:
    """Headers of a client of its own (its own budget): the replicas trust 127.0.0.1."""
    n = next(_clients)
    return {"x-forwarded-for": f"198.51.{n // 250}.{n % 250 + 1}"}


def admitted_bound(elapsed_s: float) -> int:
    """The documented bound: at most limit x (1 + t / window) + 1 in any span t."""
    return int(LIMIT * (1 + elapsed_s / WINDOW_S)) + 1


def cluster_env(redis: RedisProcess, tracking: str) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": tracking,
        "CLFSERVE_MODEL_URI": f"models:/{NAME}@champion",
        "CLFSERVE_RELOAD_INTERVAL": "off",
        "CLFSERVE_THREADS": "1",
        "CLFSERVE_REDIS_URL": redis.url,
        "CLFSERVE_REDIS_TIMEOUT": "0.3",
        "CLFSERVE_REDIS_RETRY": "0.5",
        "CLFSERVE_RATE_LIMIT": f"{LIMIT}/minute",
        "CLFSERVE_TRUSTED_PROXIES": "127.0.0.1",
        "CLFSERVE_STALENESS_ENABLED": "true",
        "CLFSERVE_STALENESS_INTERVAL": f"{INTERVAL_S:g}",
        "CLFSERVE_STALENESS_INITIAL_DELAY": "off",
    }


@pytest.fixture
def registered(tiny_artefact: Path, mlflow_tracking: str) -> str:
    from clfserve.registry import register_artefact

    register_artefact(tiny_artefact, name=NAME, alias="champion", params={}, metrics={})
    return mlflow_tracking


def scheduled_runs(tracking: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    experiment = client.get_experiment_by_name("clfserve-staleness")
    if experiment is None:
        return []
    return list(
        client.search_runs(
            [experiment.experiment_id], filter_string="tags.`clfserve.trigger` = 'scheduled'"
        )
    )


def redis_up(http: httpx.Client) -> float:
    match = re.search(r"^clfserve_redis_up (\S+)$", http.get("/metrics").text, re.M)
    assert match, "no clfserve_redis_up gauge"
    return float(match.group(1))


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not {what} after {timeout_s:.0f}s")


def burst(https: list[httpx.Client], count: int) -> tuple[list[int], float]:
    """``count`` /predict requests of one new client, alternating replicas: statuses, seconds."""
    headers = new_client()
    started = time.monotonic()
    statuses = [
        https[i % len(https)]
        .post("/predict", json={"text": "a burst"}, headers=headers)
        .status_code
        for i in range(count)
    ]  # fmt: skip
    return statuses, time.monotonic() - started


class Traffic:
    """Requests to every replica from a thread until stopped; records every status."""

    def __init__(self, servers: list[Server]) -> None:
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._servers = servers
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with ExitStack() as stack:
            https = [stack.enter_context(httpx.Client(base_url=s.url, timeout=30.0))
                     for s in self._servers]  # fmt: skip
            for i in itertools.count():
                if self._stop.is_set() or i > 5000:
                    return
                response = https[i % len(https)].post(
                    "/predict", json={"text": f"traffic {i % 50}"}, headers=new_client()
                )
                self.statuses.append(response.status_code)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


@pytest.fixture
def cluster(
    registered: str, redis_server: RedisProcess, tmp_path: Path
) -> Iterator[tuple[list[Server], list[httpx.Client]]]:
    env = cluster_env(redis_server, registered)
    with ExitStack() as stack:
        servers = [stack.enter_context(running_server(tmp_path, env)) for _ in range(2)]
        https = [stack.enter_context(httpx.Client(base_url=s.url, timeout=30.0))
                 for s in servers]  # fmt: skip
        yield servers, https


def test_two_replicas_behave_as_one_service(
    cluster: tuple[list[Server], list[httpx.Client]],
    redis_server: RedisProcess,
    registered: str,
) -> None:
    servers, (a, b) = cluster
    started = time.time()
    runs_before = len(scheduled_runs(registered))

    # A text answered by replica A is a cache hit on replica B.
    text = {"text": "a gorgeous, witty, seductive movie"}
    assert a.post("/predict", json=text, headers=new_client()).json()["cached"] is False
    assert b.post("/predict", json=text, headers=new_client()).json()["cached"] is True

    # One budget across both replicas.
    statuses, elapsed = burst([a, b], 3 * LIMIT)
    assert set(statuses) == {200, 429}
    assert LIMIT <= statuses.count(200) <= admitted_bound(elapsed), (statuses, elapsed)

    # One scheduled evaluation per interval cluster-wide, and the same latest everywhere.
    time.sleep(5 * INTERVAL_S)
    views = []
    for _ in range(20):
        views = [http.get("/staleness", headers=new_client()).json() for http in (a, b)]
        if views[0]["latest"] is not None and views[0]["latest"] == views[1]["latest"]:
            break
        time.sleep(0.5)
    assert views[0]["shared"] is True
    assert views[0]["latest"] is not None
    assert views[0]["latest"] == views[1]["latest"]
    assert views[0]["latest"]["replica"]
    for http in (a, b):
        summary = http.get("/model", headers=new_client()).json()["staleness"]
        assert summary is not None
        assert summary["finished_at"] >= views[0]["latest"]["finished_at"]
    elapsed_s = time.time() - started
    runs = len(scheduled_runs(registered)) - runs_before
    assert 2 <= runs <= elapsed_s / INTERVAL_S + 2, (runs, elapsed_s)

    # Redis killed mid-traffic: never a 5xx; the replicas say so and use local state.
    with Traffic(servers) as traffic:
        time.sleep(1.0)
        redis_server.kill()
        time.sleep(2.0)
        wait_for(lambda: redis_up(a) == redis_up(b) == 0.0, "degraded")
        assert a.get("/health/ready").status_code == 200
        redis_server.start()
        wait_for(lambda: redis_up(a) == redis_up(b) == 1.0, "reconnected")
        time.sleep(0.5)
    assert traffic.statuses, "no traffic was sent"
    assert all(status in (200, 429) for status in traffic.statuses), sorted(set(traffic.statuses))
    assert "unreachable" in servers[0].log.read_text(errors="replace")

    # Sharing resumes: the cache and the budget are one again.
    text = {"text": "after the restart"}
    assert a.post("/predict", json=text, headers=new_client()).json()["cached"] is False
    assert b.post("/predict", json=text, headers=new_client()).json()["cached"] is True
    statuses, elapsed = burst([a, b], 3 * LIMIT)
    assert LIMIT <= statuses.count(200) <= admitted_bound(elapsed), (statuses, elapsed)


def test_workers_on_one_host_share_through_redis(
    registered: str, redis_server: RedisProcess, tmp_path: Path
) -> None:
    env = cluster_env(redis_server, registered)
    with running_server(tmp_path, env, "--workers", "2") as server:
        started = time.time()
        runs_before = len(scheduled_runs(registered))
        # A new connection per request, so the kernel spreads them over both workers.
        headers = new_client()
        statuses = []
        burst_started = time.monotonic()
        for _ in range(3 * LIMIT):
            with httpx.Client(base_url=server.url, timeout=30.0) as http:
                statuses.append(
                    http.post("/predict", json={"text": "w"}, headers=headers).status_code
                )
        elapsed = time.monotonic() - burst_started
        assert LIMIT <= statuses.count(200) <= admitted_bound(elapsed), (statuses, elapsed)
        time.sleep(4 * INTERVAL_S)
        with httpx.Client(base_url=server.url, timeout=30.0) as http:
            schedule = http.get("/staleness", headers=new_client()).json()["schedule"]
        assert "claims each run in Redis" in schedule["detail"]
        elapsed_s = time.time() - started
    runs = len(scheduled_runs(registered)) - runs_before
    assert 1 <= runs <= elapsed_s / INTERVAL_S + 2, (runs, elapsed_s)
