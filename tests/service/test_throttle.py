"""Per-client throttling: 429 with Retry-After, exempt health/metrics, X-Forwarded-For trust."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from service_fakes import AppFactory, ready_client

from clfserve.service import RateLimit, Settings, create_app
from clfserve.service.throttle import client_address

PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.fixture
def limited(make_app: AppFactory) -> Iterator[TestClient[Litestar]]:
    client = ready_client(make_app(rate_limit=RateLimit(3, "minute")))
    try:
        yield client
    finally:
        client.__exit__(None, None, None)


def test_429_after_the_limit_with_retry_after_and_ratelimit_headers(
    limited: TestClient[Litestar],
) -> None:
    for i in range(3):
        ok = limited.post("/predict", json={"text": f"t{i}"})
        assert ok.status_code == 200
        assert ok.headers["ratelimit-limit"] == "3"
        assert ok.headers["ratelimit-remaining"] == str(2 - i)
        assert ok.headers["ratelimit-policy"] == "3; w=60"
        assert 0 <= int(ok.headers["ratelimit-reset"]) <= 60
        assert ok.headers["x-model-version"] == "v1"
        assert len(ok.headers.get_list("ratelimit-limit")) == 1  # appended once, not twice
    refused = limited.post("/predict", json={"text": "t3"})
    assert refused.status_code == 429
    assert "rate limit exceeded" in refused.json()["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit-policy"] == "3; w=60"
    assert refused.headers["x-model-version"] == "v1"
    assert limited.post("/batch_predict", json={"texts": ["x"]}).status_code == 429


def test_health_and_metrics_are_exempt(limited: TestClient[Litestar]) -> None:
    for _ in range(4):
        limited.post("/predict", json={"text": "x"})
    for _ in range(10):
        assert limited.get("/health/live").status_code == 200
        assert limited.get("/health/ready").status_code == 200
    metrics = limited.get("/metrics")
    assert metrics.status_code == 200
    assert 'clfserve_throttled_requests_total{route="/predict"} 1.0' in metrics.text


def test_rate_limit_off_never_throttles(client: TestClient[Litestar]) -> None:
    for i in range(20):
        assert client.post("/predict", json={"text": str(i)}).status_code == 200


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # untrusted peer: header ignored
        ("10.0.0.5", "1.2.3.4", "1.2.3.4"),
        ("10.0.0.5", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # the client can only prepend lies
        ("10.0.0.5", "1.2.3.4, 10.0.0.7", "1.2.3.4"),  # skip trusted hops from the right
        ("10.0.0.5", "10.0.0.6, 10.0.0.7", "10.0.0.6"),
        ("10.0.0.5", "", "10.0.0.5"),
        ("10.0.0.5", "garbage", "garbage"),
    ],
)
def test_client_address(peer: str, forwarded: str | None, expected: str) -> None:
    assert client_address(peer, forwarded, PROXIES) == expected


def test_no_trusted_proxies_means_the_header_is_ignored() -> None:
    assert client_address("10.0.0.5", "1.2.3.4", ()) == "10.0.0.5"


async def _statuses(app: Litestar, peer: str, forwarded: list[str]) -> list[int]:
    transport = httpx.ASGITransport(app=app, client=(peer, 1234))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return [
            (await http.get("/model", headers={"x-forwarded-for": f})).status_code
            for f in forwarded
        ]


@pytest.mark.anyio
async def test_spoofed_forwarded_for_does_not_dodge_the_limit() -> None:
    app = create_app(Settings().replace(rate_limit=RateLimit(2, "minute")))
    statuses = await _statuses(app, "198.51.100.1", ["1.1.1.1", "2.2.2.2", "3.3.3.3"])
    assert statuses == [200, 200, 429]


@pytest.mark.anyio
async def test_trusted_proxy_limits_each_forwarded_client() -> None:
    settings = Settings().replace(rate_limit=RateLimit(2, "minute"), trusted_proxies=PROXIES)
    app = create_app(settings)
    statuses = await _statuses(app, "10.1.2.3", ["1.1.1.1"] * 3 + ["2.2.2.2"] * 2)
    assert statuses == [200, 200, 429, 200, 200]
