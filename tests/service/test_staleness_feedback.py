"""The staleness monitor on production labels (``POST /feedback``), fake model, real SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from service_fakes import FakePredictor, loader_for, quiet, ready_client
from test_staleness import TOKEN, RecordingAlerter, RecordingTracker, evaluate, rows, write_csv

from clfserve.service import create_app
from clfserve.service.feedback import FeedbackDesk
from clfserve.service.gateway import InferenceGateway
from clfserve.service.metrics import ServiceMetrics
from clfserve.service.staleness import StalenessSettings
from clfserve.service.staleness.gauges import StalenessGauges
from clfserve.service.staleness.monitor import StalenessMonitor


def monitored(
    tmp_path: Path, fake: FakePredictor, **changes: Any
) -> Iterator[TestClient[Litestar]]:
    data = write_csv(tmp_path / "validation.csv", rows(40, 0))  # the fake gets all of it right
    staleness = StalenessSettings().replace(
        **{"scheduler": "off", "initial_delay_s": None, "validation_data": str(data),
           "tracking": "off", "feedback_min": 10, **changes}
    )  # fmt: skip
    settings = quiet(
        admin_token=TOKEN, staleness=staleness, feedback_db=f"sqlite:///{tmp_path / 'fb.db'}"
    )
    client = ready_client(create_app(settings, loader=loader_for(fake)))
    try:
        yield client
    finally:
        client.__exit__(None, None, None)


def post_labels(client: TestClient[Litestar], labelled: list[tuple[str, str]]) -> None:
    for text, label in labelled:
        assert client.post("/feedback", json={"text": text, "label": label}).status_code == 201


def test_feedback_that_contradicts_the_model_makes_it_stale(
    tmp_path: Path, fake: FakePredictor
) -> None:
    for client in monitored(tmp_path, fake):
        post_labels(client, rows(8, 12))  # the fake gets 12 of 20 wrong
        result = evaluate(client)
        assert (result["scope"], result["status"], result["stale"]) == ("validation", "healthy",
                                                                         False)  # fmt: skip
        assert result["stale_on"] == ["feedback"]
        feedback = result["feedback"]
        assert (feedback["scope"], feedback["status"], feedback["stale"]) == ("feedback", "stale",
                                                                             True)  # fmt: skip
        assert (feedback["accuracy"], feedback["n_samples"]) == (0.4, 20)
        assert feedback["data"]["source"] == "feedback"
        assert feedback["data"]["rows"] == 20
        assert feedback["data"]["window"].startswith("latest 500: ids 1-20, ")
        assert len(feedback["data"]["checksum"]) == 64
        assert result["alert"] == {"webhook": None}  # the run turned stale: alerted
        model = client.get("/model").json()["staleness"]
        assert model["stale_on"] == ["feedback"]
        assert model["feedback"]["status"] == "stale"
        staleness = client.get("/staleness").json()
        assert staleness["feedback_data"] == {"window": "latest 500", "min_rows": 10}
        assert staleness["latest"]["feedback"] == feedback
        metrics = client.get("/metrics").text
        assert "clfserve_staleness_stale 1.0" in metrics
        assert "clfserve_staleness_f1 1.0" in metrics  # the validation score
        # Both evaluations went through the gateway: 40 + 20 rows in calls of up to 8.
        assert 'clfserve_inference_seconds_count{kind="evaluation"} 8.0' in metrics


def test_feedback_that_agrees_keeps_it_healthy(tmp_path: Path, fake: FakePredictor) -> None:
    for client in monitored(tmp_path, fake):
        post_labels(client, rows(12, 0))
        result = evaluate(client)
        assert result["stale_on"] == []
        assert (result["feedback"]["status"], result["feedback"]["value"]) == ("healthy", 1.0)
        assert "clfserve_staleness_stale 0.0" in client.get("/metrics").text


def test_too_few_labels_are_skipped_and_say_so(tmp_path: Path, fake: FakePredictor) -> None:
    for client in monitored(tmp_path, fake, feedback_last=5):
        post_labels(client, rows(0, 3))
        result = evaluate(client)
        feedback = result["feedback"]
        assert (feedback["status"], feedback["verdict"], feedback["error"]) == ("skipped", None,
                                                                               None)  # fmt: skip
        assert feedback["skipped"].startswith("too few production labels: 3 (latest 5: ids 1-3")
        assert "at least 10 needed" in feedback["skipped"]
        assert feedback["data"]["rows"] == 3
        assert (result["status"], result["stale_on"]) == ("healthy", [])


def test_the_window_keeps_the_newest_labels(tmp_path: Path, fake: FakePredictor) -> None:
    for client in monitored(tmp_path, fake, feedback_last=10, feedback_days=7.0):
        post_labels(client, rows(0, 10))  # all wrong, then pushed out of the window
        post_labels(client, rows(10, 0))
        feedback = evaluate(client)["feedback"]
        assert (feedback["status"], feedback["n_samples"]) == ("healthy", 10)
        assert feedback["data"]["window"].startswith("latest 10 of the last 7 days: ids 11-20")


def test_feedback_evaluation_off(tmp_path: Path, fake: FakePredictor) -> None:
    for client in monitored(tmp_path, fake, feedback_last=0):
        post_labels(client, rows(0, 20))
        result = evaluate(client)
        assert (result["feedback"], result["stale_on"]) == (None, [])
        assert client.get("/staleness").json()["feedback_data"] is None


def test_an_unreachable_feedback_database_is_an_error_of_that_part(
    tmp_path: Path, fake: FakePredictor
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    data = write_csv(tmp_path / "validation.csv", rows(40, 0))
    staleness = StalenessSettings().replace(scheduler="off", initial_delay_s=None,
                                            validation_data=str(data), tracking="off")  # fmt: skip
    settings = quiet(admin_token=TOKEN, staleness=staleness,
                     feedback_db=f"sqlite:///{blocker / 'fb.db'}")  # fmt: skip
    client = ready_client(create_app(settings, loader=loader_for(fake)))
    try:
        result = evaluate(client)
    finally:
        client.__exit__(None, None, None)
    assert (result["status"], result["value"]) == ("healthy", 1.0)
    assert result["feedback"]["status"] == "error"
    assert str(blocker) in result["feedback"]["error"]


@pytest.mark.anyio
async def test_both_parts_are_tracked_feedback_first_and_the_alert_names_it(
    gateway: InferenceGateway, tmp_path: Path
) -> None:
    desk = FeedbackDesk(f"sqlite:///{tmp_path / 'fb.db'}")
    for text, label in rows(0, 12):
        await desk.using(lambda store, t=text, lab=label: store.add(t, lab))
    settings = StalenessSettings().replace(
        scheduler="off", initial_delay_s=None, tracking="off", feedback_min=10,
        validation_data=str(write_csv(tmp_path / "v.csv", rows(40, 0))),
    )  # fmt: skip
    tracker, alerter = RecordingTracker(), RecordingAlerter()
    gauges = StalenessGauges(ServiceMetrics().registry)
    monitor = StalenessMonitor(settings, gateway, gauges, tracker, alerter, feedback=desk)
    try:
        evaluation = await monitor.run("manual")
    finally:
        desk.close()
    assert evaluation.feedback is not None
    assert [e.scope for e in tracker.logged] == ["feedback", "validation"]
    assert evaluation.feedback.tracking.status == "logged"
    assert [e.scope for e in alerter.notified] == ["feedback"]
    assert evaluation.stale_on == ["feedback"]
