"""``POST /feedback`` and prediction ids with a fake model and a real (SQLite file) store."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from service_fakes import AppFactory, ready_client

from clfserve.evaluation.feedback import Feedback, FeedbackStore, NamedAnswer
from clfserve.service import RateLimit
from clfserve.service.feedback import FeedbackDesk
from clfserve.service.predictionid import MAX_CHARS, MalformedId, PredictionIds

TOKEN = "feedback-t0ken"


def db_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'feedback.db'}"


def stored(url: str) -> list[Feedback]:
    store = FeedbackStore(url)
    try:
        return store.all()
    finally:
        store.close()


def serving(make_app: AppFactory, **changes: Any) -> TestClient[Litestar]:
    return ready_client(make_app(**changes))


@pytest.fixture
def url(tmp_path: Path) -> str:
    return db_url(tmp_path)


@pytest.fixture
def client(make_app: AppFactory, url: str) -> Any:
    c = serving(make_app, feedback_db=url)
    try:
        yield c
    finally:
        c.__exit__(None, None, None)


# -- prediction ids ---------------------------------------------------------------------------


def test_an_id_names_the_version_and_label_and_nothing_else_reads_back() -> None:
    ids = PredictionIds("k")
    minted = ids.mint("3", "positive")
    assert ids.read(minted).model_version == "3"
    assert ids.read(minted).predicted == "positive"
    assert minted != ids.mint("3", "positive")  # a random part: every answer its own
    prefix, version, label, nonce, tag = minted.split(".")
    forged = PredictionIds("k").mint("3", "negative").split(".")
    for bad in (
        minted[:-1],
        ".".join((prefix, version, forged[2], nonce, tag)),  # label swapped, tag kept
        ".".join(("p2", version, label, nonce, tag)),
        "p1.x.y.z",
        "",
        "p1.é.é.é.é",
        "x" * (MAX_CHARS + 1),
    ):
        with pytest.raises(MalformedId):
            ids.read(bad)
    with pytest.raises(MalformedId, match="another key"):
        PredictionIds("other").read(minted)
    assert PredictionIds(None).read(PredictionIds(None).mint("v", "l")).predicted == "l"


def test_every_answer_carries_a_fresh_id_cached_or_not(client: TestClient[Litestar]) -> None:
    first = client.post("/predict", json={"text": "a good movie"}).json()
    again = client.post("/predict", json={"text": "a good movie"}).json()
    assert again["cached"] is True
    assert first["prediction_id"] != again["prediction_id"]
    batch = client.post("/batch_predict", json={"texts": ["a good movie", "dull"]}).json()
    ids = [item["prediction_id"] for item in batch["predictions"]]
    assert len(set([*ids, first["prediction_id"], again["prediction_id"]])) == 4
    reader = PredictionIds()
    assert [reader.read(i).predicted for i in ids] == ["positive", "negative"]
    assert {reader.read(i).model_version for i in ids} == {"v1"}


def test_replicas_with_one_key_read_each_others_ids(make_app: AppFactory, url: str) -> None:
    one = serving(make_app, feedback_db=url, prediction_id_key="shared")
    two = serving(make_app, feedback_db=url, prediction_id_key="shared")
    other = serving(make_app, feedback_db=url, prediction_id_key="different")
    try:
        minted = one.post("/predict", json={"text": "a good movie"}).json()["prediction_id"]
        body = {"text": "a good movie", "label": "negative", "prediction_id": minted}
        assert two.post("/feedback", json=body).status_code == 201
        refused = other.post("/feedback", json=body)
    finally:
        for c in (one, two, other):
            c.__exit__(None, None, None)
    assert refused.status_code == 422
    assert "prediction_id" in refused.json()["detail"]


# -- POST /feedback ---------------------------------------------------------------------------


def test_feedback_naming_an_answer_stores_what_it_said(
    client: TestClient[Litestar], url: str
) -> None:
    answer = client.post("/predict", json={"text": "a good movie"}).json()
    response = client.post(
        "/feedback",
        json={
            "text": "a good movie",
            "label": "negative",
            "prediction_id": answer["prediction_id"],
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "received_at", "model_version", "predicted"}
    assert (body["model_version"], body["predicted"]) == ("v1", "positive")
    plain = client.post("/feedback", json={"text": "dull", "label": "negative"})
    assert plain.status_code == 201
    assert (plain.json()["model_version"], plain.json()["predicted"]) == (None, None)
    rows = stored(url)
    assert [(r.id, r.text, r.label) for r in rows] == [
        (body["id"], "a good movie", "negative"),
        (plain.json()["id"], "dull", "negative"),
    ]
    assert rows[0].answer == NamedAnswer(answer["prediction_id"], "v1", "positive")
    assert rows[1].answer is None
    metrics = client.get("/metrics").text
    assert 'clfserve_feedback_total{outcome="stored"} 2.0' in metrics


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (
            {"text": "fine", "label": "neutral"},
            422,
            "not one of the model's labels: negative, positive",
        ),
        ({"text": "   ", "label": "negative"}, 422, "text must not be empty"),
        ({"text": "x" * 101, "label": "negative"}, 422, "the limit is 100"),
        ({"text": "fine", "label": "negative", "prediction_id": "p1.nope"}, 422, "prediction_id"),
        ({"text": "fine"}, 422, "label"),
        ({"text": "fine", "label": "negative", "extra": 1}, 422, "extra"),
        ({"text": "fine", "label": 1}, 422, "label"),
        (b'{"text": "fine", "label": ', 400, "malformed JSON"),
        (b"", 400, "empty"),
        (b'{"text": "' + b"a" * 600 + b'", "label": "negative"}', 413, "larger than 512 bytes"),
    ],
)
def test_bad_feedback_is_refused_with_a_reason(
    make_app: AppFactory, url: str, body: Any, status: int, detail: str
) -> None:
    client = serving(make_app, feedback_db=url, max_text_chars=100, max_body_bytes=512)
    try:
        if isinstance(body, bytes):
            response = client.post(
                "/feedback", content=body, headers={"content-type": "application/json"}
            )
        else:
            response = client.post("/feedback", json=body)
        metrics = client.get("/metrics").text
    finally:
        client.__exit__(None, None, None)
    assert response.status_code == status, response.text
    assert response.json()["status_code"] == status
    assert detail in response.json()["detail"]
    assert 'clfserve_feedback_total{outcome="invalid"} 1.0' in metrics
    assert stored(url) == []


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), ("Bearer wrong", 401), ("Basic " + TOKEN, 401), (f"Bearer {TOKEN}", 201)],
)
def test_a_feedback_token_restricts_writing(
    make_app: AppFactory, url: str, authorization: str | None, status: int
) -> None:
    client = serving(make_app, feedback_db=url, feedback_token=TOKEN)
    headers = {"Authorization": authorization} if authorization else {}
    try:
        response = client.post("/feedback", json={"text": "ok", "label": "positive"},
                               headers=headers)  # fmt: skip
        # predictions never need it
        assert client.post("/predict", json={"text": "ok"}).status_code == 200
    finally:
        client.__exit__(None, None, None)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
        assert "CLFSERVE_FEEDBACK_TOKEN" in response.json()["detail"]
    assert len(stored(url)) == (1 if status == 201 else 0)


def test_without_a_token_anyone_may_post(client: TestClient[Litestar]) -> None:
    response = client.post("/feedback", json={"text": "ok", "label": "positive"},
                           headers={"Authorization": "Bearer anything"})  # fmt: skip
    assert response.status_code == 201


def test_an_unreachable_database_is_503_and_predictions_go_on(
    make_app: AppFactory, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database folder should be", encoding="utf-8")
    url = f"sqlite:///{blocker / 'feedback.db'}"
    client = serving(make_app, feedback_db=url)
    try:
        refused = client.post("/feedback", json={"text": "ok", "label": "positive"})
        assert client.post("/predict", json={"text": "ok"}).status_code == 200
        assert client.get("/health/ready").status_code == 200
        blocker.unlink()  # the database comes back: the next request opens it
        accepted = client.post("/feedback", json={"text": "ok", "label": "positive"})
        metrics = client.get("/metrics").text
    finally:
        client.__exit__(None, None, None)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert refused.json()["detail"].startswith("feedback not stored: feedback database")
    assert str(blocker) in refused.json()["detail"]
    assert accepted.status_code == 201
    assert 'clfserve_feedback_total{outcome="unavailable"} 1.0' in metrics
    assert [r.text for r in stored(url)] == ["ok"]


def test_feedback_survives_a_restart(make_app: AppFactory, url: str) -> None:
    first = serving(make_app, feedback_db=url)
    try:
        one = first.post("/feedback", json={"text": "before", "label": "positive"}).json()
    finally:
        first.__exit__(None, None, None)
    second = serving(make_app, feedback_db=url)
    try:
        two = second.post("/feedback", json={"text": "after", "label": "negative"}).json()
    finally:
        second.__exit__(None, None, None)
    assert two["id"] == one["id"] + 1
    assert [(r.text, r.label) for r in stored(url)] == [("before", "positive"),
                                                        ("after", "negative")]  # fmt: skip


def test_the_default_database_is_in_the_clfserve_home(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLFSERVE_HOME", str(tmp_path / "home"))
    client = serving(make_app)
    try:
        assert client.post("/feedback", json={"text": "ok", "label": "positive"}).status_code == 201
    finally:
        client.__exit__(None, None, None)
    assert [r.text for r in stored(db_url(tmp_path / "home"))] == ["ok"]


def test_feedback_spends_the_rate_limit_budget(make_app: AppFactory, url: str) -> None:
    client = serving(make_app, feedback_db=url, rate_limit=RateLimit(2, "minute"))
    try:
        assert client.post("/predict", json={"text": "ok"}).status_code == 200
        first = client.post("/feedback", json={"text": "ok", "label": "positive"})
        refused = client.post("/feedback", json={"text": "ok", "label": "positive"})
    finally:
        client.__exit__(None, None, None)
    assert first.status_code == 201
    assert first.headers["ratelimit-remaining"] == "0"
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert len(stored(url)) == 1


def test_the_database_is_used_off_the_event_loop(tmp_path: Path) -> None:
    desk = FeedbackDesk(db_url(tmp_path))
    threads: list[int] = []

    def add(store: FeedbackStore) -> Feedback:
        threads.append(threading.get_ident())
        return store.add("ok", "positive")

    async def post() -> int:
        await desk.using(add)
        return threading.get_ident()

    try:
        loop_thread = asyncio.run(post())
    finally:
        desk.close()
    assert len(threads) == 1
    assert threads[0] != loop_thread
