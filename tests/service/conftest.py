"""Service-only fixtures: apps around a fake predictor (see `service_fakes`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from service_fakes import AppFactory, FakePredictor, loader_for, ready_client

from clfserve.service import Settings, create_app
from clfserve.service.predictor import Predictor


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``pytest.mark.anyio``) run on asyncio, as the service does."""
    return "asyncio"


@pytest.fixture
def fake() -> FakePredictor:
    return FakePredictor()


@pytest.fixture
def make_app(fake: FakePredictor) -> AppFactory:
    """``make_app(**settings_changes)``: an app serving ``fake`` with throttling off."""

    def build(predictor: Predictor | None = None, **changes: object) -> Litestar:
        settings = Settings().replace(**{"rate_limit": None, **changes})
        return create_app(settings, loader=loader_for(predictor or fake))

    return build


@pytest.fixture
def client(make_app: AppFactory) -> Iterator[TestClient[Litestar]]:
    c = ready_client(make_app())
    try:
        yield c
    finally:
        c.__exit__(None, None, None)
