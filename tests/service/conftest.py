"""Service-only fixtures: apps around a fake model (see `service_fakes`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from service_fakes import AppFactory, FakePredictor, loader_for, quiet, ready_client

from clfserve.service import create_app
from clfserve.service.gateway import InferenceGateway
from clfserve.service.metrics import ServiceMetrics
from clfserve.service.model_state import Model, ModelState


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``pytest.mark.anyio``) run on asyncio, as the service does."""
    return "asyncio"


@pytest.fixture
def fake() -> FakePredictor:
    return FakePredictor()


@pytest.fixture
def make_app(fake: FakePredictor) -> AppFactory:
    """``make_app(model=None, **settings_changes)``: an app serving ``fake`` (or ``model``)
    with throttling and the staleness monitor off unless ``changes`` say otherwise."""

    def build(model: Model | None = None, **changes: object) -> Litestar:
        return create_app(quiet(**changes), loader=loader_for(model or fake))

    return build


@pytest.fixture
def client(make_app: AppFactory) -> Iterator[TestClient[Litestar]]:
    c = ready_client(make_app())
    try:
        yield c
    finally:
        c.__exit__(None, None, None)


@pytest.fixture
async def gateway() -> AsyncIterator[InferenceGateway]:
    """A started gateway serving a `FakePredictor` (async tests, ``pytest.mark.anyio``)."""
    gateway = InferenceGateway(ModelState(uri="fake"), ServiceMetrics())
    await gateway.start()
    gateway.state.ready(FakePredictor())
    yield gateway
    await gateway.stop()
