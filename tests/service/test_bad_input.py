"""Every bad input gets its 4xx with a `detail` naming the problem, and the app keeps answering."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from service_fakes import AppFactory, FakePredictor, loader_for, quiet, ready_client

from clfserve.service import create_app

JSON = {"content-type": "application/json"}

CASES = [
    # (route, raw body, status, words the detail must contain)
    ("/predict", b'{"text": ""}', 422, "text must not be empty"),
    ("/predict", b'{"text": "   \\n\\t "}', 422, "only whitespace"),
    ("/predict", b'{"text": "' + b"a" * 101 + b'"}', 422, "limit is 100"),
    ("/predict", b'{"text": 3}', 422, "Expected `str`, got `int` - at `$.text`"),
    ("/predict", b'{"text": ["a"]}', 422, "Expected `str`, got `array`"),
    ("/predict", b'{"text": null}', 422, "got `null`"),
    ("/predict", b"{}", 422, "missing required field `text`"),
    ("/predict", b'{"texts": "a"}', 422, "unknown field `texts`"),
    ("/predict", b'{"text": "a", "junk": 1}', 422, "unknown field `junk`"),
    ("/predict", b'["a"]', 422, "Expected `object`, got `array`"),
    ("/predict", b'"a"', 422, "Expected `object`, got `str`"),
    ("/predict", b'{"text": "a"', 400, "malformed JSON"),
    ("/predict", b"text=a", 400, "malformed JSON"),
    ("/predict", b'{"text": "\xff\xfe"}', 400, "not valid UTF-8 (byte 10 of the body: 0xff)"),
    ("/predict", b'\xff{"text": "a"}', 400, "not valid UTF-8 (byte 0 of the body: 0xff)"),
    ("/predict", b'{"text": "\\ud800"}', 400, "malformed JSON"),
    ("/predict", b"", 400, "request body is empty"),
    ("/predict", b"   ", 400, "request body is empty"),
    ("/predict", b'{"text": "' + b"a" * 3000 + b'"}', 413, "larger than 2048 bytes"),
    ("/batch_predict", b'{"texts": []}', 422, "empty list"),
    ("/batch_predict", b'{"texts": ["a", ""]}', 422, "texts[1] must not be empty"),
    ("/batch_predict", b'{"texts": ["a", 2]}', 422, "at `$.texts[1]`"),
    ("/batch_predict", b'{"texts": "a"}', 422, "Expected `array`, got `str`"),
    ("/batch_predict", b'{"text": "a"}', 422, "unknown field `text`"),
    ("/batch_predict", b'{"texts": ["' + b"a" * 101 + b'"]}', 422, "texts[0] has 101 characters"),
    ("/batch_predict", b'{"texts": [' + b",".join([b'"a"'] * 5) + b"]}", 422, "limit is 4"),
    ("/batch_predict", b"{", 400, "malformed JSON"),
    ("/batch_predict", b"", 400, "request body is empty"),
]


@pytest.fixture(scope="module")
def limited_client() -> Iterator[TestClient[Litestar]]:
    """One app for all cases, so a bad input is also proven not to disturb later requests."""
    settings = quiet(max_text_chars=100, max_batch_items=4, max_body_bytes=2048)
    client = ready_client(create_app(settings, loader=loader_for(FakePredictor())))
    yield client
    client.__exit__(None, None, None)


@pytest.mark.parametrize(("route", "body", "status", "words"), CASES)
def test_bad_input_gets_its_status_and_a_detail(
    limited_client: TestClient[Litestar], route: str, body: bytes, status: int, words: str
) -> None:
    response = limited_client.post(route, content=body, headers=JSON)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert words in response.json()["detail"]
    assert "x-model-version" in response.headers
    # The app still answers good requests afterwards.
    ok = limited_client.post("/predict", json={"text": "still good"})
    assert ok.status_code == 200
    assert ok.json()["label"] == "positive"


def test_limit_exactly_at_the_maximum_is_accepted(limited_client: TestClient[Litestar]) -> None:
    assert limited_client.post("/predict", json={"text": "a" * 100}).status_code == 200
    texts = ["a", "b", "c", "d"]
    assert limited_client.post("/batch_predict", json={"texts": texts}).status_code == 200


def test_wrong_method_and_unknown_route_are_json(limited_client: TestClient[Litestar]) -> None:
    wrong = limited_client.get("/predict")
    assert wrong.status_code == 405
    assert wrong.json()["detail"]
    missing = limited_client.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "Not Found"


def test_content_type_is_not_required(make_app: AppFactory) -> None:
    """Clients that forget the header (curl -d) still get answers; the body decides."""
    client = ready_client(make_app())
    try:
        response = client.post("/predict", content=b'{"text": "good"}')
        assert response.status_code == 200
    finally:
        client.__exit__(None, None, None)
