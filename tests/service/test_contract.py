"""The OpenAPI document against what the server really answers, answer by answer.

The fuzz test cannot reach a throttled client, a model that is still loading or an admin route
without its token; here each of those answers is produced and validated against the document
with schemathesis (status, content type, headers, body).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from litestar import Litestar
from litestar.testing import TestClient
from schemathesis.checks import not_a_server_error
from service_fakes import AppFactory, FakePredictor, quiet, ready_client

from clfserve.service import RateLimit, create_app
from clfserve.service.model_state import Model
from clfserve.service.schemas import NOT_ONLY_WHITESPACE, WHITESPACE
from clfserve.service.settings import Settings


def document(client: TestClient[Litestar]) -> dict[str, Any]:
    response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def validate(client: TestClient[Litestar], path: str, method: str, **request: Any) -> Any:
    """Send the request and check its answer against the document with every check (raises on
    a mismatch); a documented 503 is what these tests provoke, so it is not a server error."""
    schema = schemathesis.openapi.from_dict(document(client))
    case = schema[path][method].Case(**{k: v for k, v in request.items() if k != "send"})
    response = client.request(method, path, **request.get("send", {}))
    case.validate_response(response, excluded_checks=[not_a_server_error])
    return response


def test_limits_in_the_document_follow_the_settings(make_app: AppFactory) -> None:
    client = ready_client(make_app(max_text_chars=123, max_batch_items=7))
    try:
        paths = document(client)["paths"]
    finally:
        client.__exit__(None, None, None)
    text = paths["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert text["properties"]["text"]["maxLength"] == 123
    assert text["properties"]["text"]["minLength"] == 1
    assert text["additionalProperties"] is False
    batch = paths["/batch_predict"]["post"]["requestBody"]["content"]["application/json"]
    texts = batch["schema"]["properties"]["texts"]
    assert (texts["minItems"], texts["maxItems"]) == (1, 7)
    assert texts["items"]["maxLength"] == 123


def test_whitespace_pattern_is_what_the_server_strips() -> None:
    assert set(WHITESPACE) == {chr(c) for c in range(0x110000) if chr(c).isspace()}
    pattern = re.compile(NOT_ONLY_WHITESPACE)
    for text in (" ", "\t\n", "\u3000\u00a0", "\x1c\x85"):
        assert not pattern.search(text)
        assert not text.strip()
    for text in ("a", "  a  ", "\ufeff", "\x00"):
        assert pattern.search(text)
        assert text.strip()


def test_every_route_documents_its_statuses_and_headers(client: TestClient[Litestar]) -> None:
    paths = document(client)["paths"]
    statuses = {
        ("/predict", "post"): {"200", "400", "413", "422", "429", "503"},
        ("/batch_predict", "post"): {"200", "400", "413", "422", "429", "503"},
        ("/health/live", "get"): {"200"},
        ("/health/ready", "get"): {"200", "503"},
        ("/model", "get"): {"200", "429"},
        ("/metrics", "get"): {"200"},
        ("/admin/reload", "post"): {"200", "401", "403", "404", "429"},
        ("/feedback", "post"): {"201", "400", "401", "413", "422", "429", "503"},
    }
    for (path, method), expected in statuses.items():
        responses = paths[path][method]["responses"]
        assert set(responses) == expected, path
        for status, response in responses.items():
            assert "X-Model-Version" in response["headers"], (path, status)
    predict = paths["/predict"]["post"]["responses"]
    assert "Retry-After" in predict["429"]["headers"]
    assert "RateLimit-Remaining" in predict["429"]["headers"]
    assert "Retry-After" in predict["503"]["headers"]
    assert predict["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    metrics = paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain; version=1.0.0"]
    assert paths["/admin/reload"]["post"]["security"] == [{"bearer": []}]


def test_metrics_content_type_says_charset_once(client: TestClient[Litestar]) -> None:
    content_type = client.get("/metrics").headers["content-type"]
    assert content_type == "text/plain; version=1.0.0; charset=utf-8"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/predict", b'{"text": "   "}', 422),
        ("/predict", b'{"text": "a"', 400),
        ("/predict", b"", 400),
        ("/batch_predict", b'{"texts": []}', 422),
        ("/predict", b'{"text": "' + b"a" * 5000 + b'"}', 413),
    ],
)
def test_error_answers_match_the_document(
    make_app: AppFactory, path: str, body: bytes, status: int
) -> None:
    client = ready_client(make_app(max_body_bytes=4096))
    try:
        send = {"content": body, "headers": {"content-type": "application/json"}}
        response = validate(client, path, "POST", send=send)
    finally:
        client.__exit__(None, None, None)
    assert response.status_code == status
    assert response.json()["status_code"] == status


def test_throttled_answer_matches_the_document(make_app: AppFactory) -> None:
    client = ready_client(make_app(rate_limit=RateLimit(1, "minute")))
    try:
        send = {"json": {"text": "hello"}}
        assert client.post("/predict", **send).status_code == 200
        response = validate(client, "/predict", "POST", body={"text": "hello"}, send=send)
    finally:
        client.__exit__(None, None, None)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1


@pytest.fixture
def loading_client() -> Iterator[TestClient[Litestar]]:
    """An app whose model is still loading (its loader waits, bounded, until released)."""
    release = threading.Event()

    def slow_loader(_: Settings) -> Model:
        release.wait(timeout=30)
        return FakePredictor()

    client = TestClient(create_app(quiet(), loader=slow_loader))
    client.__enter__()
    try:
        yield client
    finally:
        release.set()
        client.__exit__(None, None, None)


def test_answers_while_loading_match_the_document(loading_client: TestClient[Litestar]) -> None:
    send = {"json": {"text": "hello"}}
    predict = validate(loading_client, "/predict", "POST", body={"text": "hello"}, send=send)
    assert (predict.status_code, predict.headers["retry-after"]) == (503, "5")
    assert predict.headers["x-model-version"] == "none"
    ready = validate(loading_client, "/health/ready", "GET")
    assert ready.status_code == 503
    assert ready.json()["status"] == "loading"


@pytest.mark.parametrize(
    ("token", "authorization", "status"),
    [(None, "Bearer x", 404), ("secret", None, 401), ("secret", "Bearer wrong", 403)],
)
def test_admin_refusals_match_the_document(
    make_app: AppFactory, token: str | None, authorization: str | None, status: int
) -> None:
    client = ready_client(make_app(admin_token=token))
    headers = {"Authorization": authorization} if authorization else {}
    try:
        response = validate(
            client, "/admin/reload", "POST", headers=headers, send={"headers": headers}
        )
    finally:
        client.__exit__(None, None, None)
    assert response.status_code == status
    assert response.json()["detail"]


@pytest.mark.parametrize(
    ("changes", "body", "status"),
    [
        ({}, {"text": "fine", "label": "positive"}, 201),
        ({}, {"text": "fine", "label": "neutral"}, 422),
        ({}, {"text": "fine", "label": "positive", "prediction_id": "p1.a.b.c.d"}, 422),
        ({"feedback_token": "t"}, {"text": "fine", "label": "positive"}, 401),
        (
            {"feedback_db": "sqlite:////dev/null/feedback.db"},
            {"text": "f", "label": "positive"},
            503,
        ),
    ],
)
def test_feedback_answers_match_the_document(
    make_app: AppFactory, tmp_path: Path, changes: dict[str, Any], body: Any, status: int
) -> None:
    client = ready_client(make_app(**{"feedback_db": f"sqlite:///{tmp_path}/f.db", **changes}))
    try:
        response = validate(client, "/feedback", "POST", body=body, send={"json": body})
    finally:
        client.__exit__(None, None, None)
    assert response.status_code == status, response.text
