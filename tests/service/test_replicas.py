"""Two apps (two "replicas", each with its own model, cache and loop) sharing a real Redis:
one rate-limit budget, one prediction cache; Redis killed -> no 5xx, restarted -> shared again."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from service_fakes import FakePredictor, loader_for, quiet, ready_client

from clfserve.service import RateLimit, create_app
from redis_process import RedisProcess

LIMIT = 6


@pytest.fixture
def fakes() -> tuple[FakePredictor, FakePredictor]:
    return FakePredictor(), FakePredictor()


@pytest.fixture
def pair(
    redis_server: RedisProcess, fakes: tuple[FakePredictor, FakePredictor]
) -> Iterator[tuple[TestClient[Litestar], TestClient[Litestar]]]:
    settings = quiet(
        rate_limit=RateLimit(LIMIT, "minute"),
        redis_url=redis_server.url,
        redis_timeout_s=0.3,
        redis_retry_s=0.2,
    )
    with ExitStack() as stack:
        clients = []
        for fake in fakes:
            client = ready_client(create_app(settings, loader=loader_for(fake)))
            stack.callback(client.__exit__, None, None, None)
            clients.append(client)
        yield clients[0], clients[1]


def redis_up(client: TestClient[Litestar]) -> float:
    match = re.search(r"^clfserve_redis_up (\S+)$", client.get("/metrics").text, re.M)
    assert match, "no clfserve_redis_up gauge"
    return float(match.group(1))


def wait_for(condition: Callable[[], bool], what: str, attempts: int = 200) -> None:
    for _ in range(attempts):
        if condition():
            return
        threading.Event().wait(0.05)
    raise AssertionError(f"not {what} after {attempts * 0.05:.0f}s")


def test_a_text_answered_by_one_replica_is_cached_on_the_other(
    pair: tuple[TestClient[Litestar], TestClient[Litestar]],
    fakes: tuple[FakePredictor, FakePredictor],
) -> None:
    a, b = pair
    first = a.post("/predict", json={"text": "shared text"}).json()
    second = b.post("/predict", json={"text": "shared text"}).json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["label"] == first["label"]
    assert all("shared text" not in call for call in fakes[1].calls)  # B never ran it
    batch = b.post("/batch_predict", json={"texts": ["shared text", "new"]}).json()
    assert [p["cached"] for p in batch["predictions"]] == [True, False]
    assert a.post("/predict", json={"text": "new"}).json()["cached"] is True


def test_replicas_spend_one_budget(
    pair: tuple[TestClient[Litestar], TestClient[Litestar]],
) -> None:
    statuses = [pair[i % 2].post("/predict", json={"text": f"t{i}"}).status_code
                for i in range(3 * LIMIT)]  # fmt: skip
    assert statuses.count(200) == LIMIT
    assert set(statuses) == {200, 429}
    refused = pair[1].post("/predict", json={"text": "again"})
    assert refused.status_code == 429
    assert refused.headers["ratelimit-limit"] == str(LIMIT)
    assert refused.headers["ratelimit-remaining"] == "0"
    assert int(refused.headers["retry-after"]) >= 1


def test_redis_killed_no_5xx_then_sharing_resumes(
    pair: tuple[TestClient[Litestar], TestClient[Litestar]], redis_server: RedisProcess
) -> None:
    a, b = pair
    assert redis_up(a) == redis_up(b) == 1.0
    assert a.post("/predict", json={"text": "before"}).status_code == 200
    redis_server.kill()
    statuses = [c.post("/predict", json={"text": f"down {i}"}).status_code
                for i in range(2 * LIMIT) for c in (a, b)]  # fmt: skip
    statuses += [b.post("/predict", json={"text": "before"}).status_code]
    assert all(s in (200, 429) for s in statuses), statuses
    assert redis_up(a) == redis_up(b) == 0.0
    assert a.get("/health/ready").status_code == 200

    redis_server.start()
    wait_for(lambda: redis_up(a) == redis_up(b) == 1.0, "reconnected")
    assert a.post("/predict", json={"text": "after"}).json()["cached"] is False
    assert b.post("/predict", json={"text": "after"}).json()["cached"] is True
    # A fresh window in Redis: the budget is shared again (the local ones were spent).
    statuses = [c.post("/predict", json={"text": f"up {i}"}).status_code
                for i in range(2 * LIMIT) for c in (a, b)]  # fmt: skip
    assert statuses.count(200) == LIMIT - 2  # "after" took two
