"""Staleness monitor with a fake predictor: settings, verdicts, data re-reads, errors, admin
route, alerts, gauges and the in-process schedule (no model, no MLflow server)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from service_fakes import FakePredictor, loader_for, ready_client

from clfserve.service import Settings, SettingsError, create_app
from clfserve.service.staleness import StalenessSettings
from clfserve.service.staleness.alert import Alerter
from clfserve.service.staleness.config import Schedule, parse_schedule

TOKEN = "s3cret-token"


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    lines = ["text,label", *(f'"{text}",{label}' for text, label in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def rows(correct: int, wrong: int) -> list[tuple[str, str]]:
    """The fake says positive iff the text holds 'good': ``wrong`` rows are mislabelled."""
    out = []
    for i in range(correct):
        out.append((f"good film {i}", "positive") if i % 2 else (f"dull film {i}", "negative"))
    for i in range(wrong):
        out.append((f"good but mislabelled {i}", "negative"))
    return out


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "validation.csv", rows(40, 0))


def monitored(fake: FakePredictor, data: Path, **changes: Any) -> Iterator[TestClient[Litestar]]:
    staleness = StalenessSettings().replace(
        **{"scheduler": "off", "initial_delay_s": None, "validation_data": str(data),
           "tracking": "off", "admin_token": TOKEN, **changes}
    )  # fmt: skip
    app = create_app(
        Settings().replace(rate_limit=None), loader=loader_for(fake), staleness=staleness
    )
    client = ready_client(app)
    try:
        yield client
    finally:
        client.__exit__(None, None, None)


def evaluate(client: TestClient[Litestar]) -> dict[str, Any]:
    response = client.post("/admin/evaluate", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# -- settings ---------------------------------------------------------------------------------


def test_defaults_from_an_empty_environment() -> None:
    s = StalenessSettings.from_env({})
    assert (s.interval, s.initial_delay_s, s.metric, s.threshold) == (
        Schedule(seconds=86_400), 30.0, "f1", 0.8,
    )  # fmt: skip
    assert (s.validation_data, s.admin_token, s.alert_webhook) == ("rotten_tomatoes", None, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("90", Schedule(seconds=90)), ("1.5", Schedule(seconds=1.5)), ("15m", Schedule(seconds=900)),
     ("6h", Schedule(seconds=21_600)), ("daily", Schedule(seconds=86_400)),
     ("0 3 * * *", Schedule(cron="0 3 * * *")),
     ("*/5  * * * mon-fri", Schedule(cron="*/5 * * * mon-fri"))],
)  # fmt: skip
def test_interval_is_seconds_or_cron(raw: str, expected: Schedule) -> None:
    assert parse_schedule(raw) == expected


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CLFSERVE_STALENESS_INTERVAL", "soon"), ("CLFSERVE_STALENESS_INTERVAL", "0"),
     ("CLFSERVE_STALENESS_INTERVAL", "61 * * * *"), ("CLFSERVE_STALENESS_METRIC", "auc"),
     ("CLFSERVE_STALENESS_THRESHOLD", "1.5"), ("CLFSERVE_SCHEDULER", "maybe"),
     ("CLFSERVE_ALERT_WEBHOOK", "ftp://x"), ("CLFSERVE_STALENESS_INITIAL_DELAY", "later")],
)  # fmt: skip
def test_bad_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        StalenessSettings.from_env({variable: value})


def test_env_values_are_parsed() -> None:
    s = StalenessSettings.from_env({
        "CLFSERVE_STALENESS_INITIAL_DELAY": "off", "CLFSERVE_STALENESS_METRIC": "accuracy",
        "CLFSERVE_STALENESS_THRESHOLD": "0.9", "CLFSERVE_SCHEDULER": "off",
        "CLFSERVE_ADMIN_TOKEN": TOKEN, "CLFSERVE_STALENESS_ENABLED": "false",
    })  # fmt: skip
    assert (s.initial_delay_s, s.metric, s.threshold, s.scheduler) == (None, "accuracy", 0.9, "off")
    assert (s.admin_token, s.enabled) == (TOKEN, False)


# -- verdicts, data, errors ---------------------------------------------------------------------


def test_healthy_above_threshold_and_visible_everywhere(fake: FakePredictor, data: Path) -> None:
    for client in monitored(fake, data):
        result = evaluate(client)
        assert (result["status"], result["stale"], result["error"]) == ("healthy", False, None)
        assert (result["accuracy"], result["macro_f1"], result["n_samples"]) == (1.0, 1.0, 40)
        assert result["confusion"] == [[20, 0], [0, 20]]
        assert result["model"]["name"] == "fake-sentiment"
        assert result["data"]["source"] == str(data)
        assert len(result["data"]["checksum"]) == 64
        staleness = client.get("/staleness").json()
        assert staleness["latest"] == result
        assert staleness["history"] == [result]
        assert client.get("/model").json()["staleness"]["verdict"] == "healthy"
        metrics = client.get("/metrics").text
        assert "clfserve_staleness_stale 0.0" in metrics
        assert "clfserve_staleness_f1 1.0" in metrics


def test_stale_below_threshold(fake: FakePredictor, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "v.csv", rows(30, 10))  # accuracy 0.75
    for client in monitored(fake, data, metric="accuracy", threshold=0.99):
        result = evaluate(client)
        assert (result["status"], result["stale"], result["value"]) == ("stale", True, 0.75)
        assert client.get("/model").json()["staleness"]["stale"] is True
        assert "clfserve_staleness_stale 1.0" in client.get("/metrics").text


def test_edited_file_is_re_read(fake: FakePredictor, data: Path) -> None:
    for client in monitored(fake, data):
        first = evaluate(client)
        write_csv(data, rows(20, 20))
        second = evaluate(client)
        assert (first["status"], second["status"]) == ("healthy", "stale")
        assert second["accuracy"] == 0.5
        assert second["data"]["checksum"] != first["data"]["checksum"]
        history = client.get("/staleness").json()["history"]
        assert [r["id"] for r in history] == [2, 1]


def test_unknown_labels_are_reported(fake: FakePredictor, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "v.csv", [*rows(10, 0), ("good meh", "neutral")])
    for client in monitored(fake, data):
        result = evaluate(client)
        assert result["unknown_labels"] == {"neutral": 1}
        assert result["n_samples"] == 11


@pytest.mark.parametrize("content", [None, "txt,lbl\na,b\n", "text,label\nonly one,positive\n"])
def test_bad_data_is_an_error_and_serving_goes_on(
    fake: FakePredictor, tmp_path: Path, content: str | None
) -> None:
    data = tmp_path / "v.csv"
    if content is not None:
        data.write_text(content, encoding="utf-8")
    for client in monitored(fake, data):
        result = evaluate(client)
        assert result["status"] == "error"
        assert result["stale"] is None
        assert str(data) in result["error"]
        assert client.post("/predict", json={"text": "good"}).status_code == 200
        assert "clfserve_staleness_evaluation_errors_total 1.0" in client.get("/metrics").text
        assert client.get("/model").json()["staleness"]["status"] == "error"


def test_unreachable_tracking_is_an_error_and_serving_goes_on(
    fake: FakePredictor, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    for client in monitored(fake, data, tracking="on", tracking_timeout_s=20):
        result = evaluate(client)
        assert result["status"] == "error"
        assert "unreachable" in result["error"]
        assert result["tracking"]["status"] == "failed"
        assert result["stale"] is False  # the evaluation itself ran
        assert client.post("/predict", json={"text": "good"}).status_code == 200


# -- admin route ----------------------------------------------------------------------------


def test_admin_route_is_absent_without_a_token(fake: FakePredictor, data: Path) -> None:
    for client in monitored(fake, data, admin_token=None):
        response = client.post("/admin/evaluate", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 404
        assert "detail" in response.json()
        assert client.get("/staleness").json()["latest"] is None


@pytest.mark.parametrize(
    ("header", "status"),
    [(None, 401), ("Bearer", 401), (f"Basic {TOKEN}", 401), ("Bearer nope", 403),
     (f"Bearer {TOKEN}x", 403)],
)  # fmt: skip
def test_admin_route_refuses_wrong_tokens(
    fake: FakePredictor, data: Path, header: str | None, status: int
) -> None:
    for client in monitored(fake, data):
        headers = {} if header is None else {"Authorization": header}
        response = client.post("/admin/evaluate", headers=headers)
        assert response.status_code == status
        assert "detail" in response.json()
        assert client.get("/staleness").json()["latest"] is None


def test_disabled_monitor_installs_nothing(fake: FakePredictor, data: Path) -> None:
    for client in monitored(fake, data, enabled=False):
        assert client.get("/staleness").status_code == 404
        assert client.get("/model").json()["staleness"] is None


# -- alerts -----------------------------------------------------------------------------------


def test_alert_fires_when_the_verdict_turns_stale(
    fake: FakePredictor, data: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    posted: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        posted.append(json.loads(request.content))
        return httpx.Response(204)

    real_init = Alerter.__init__

    def with_mock(
        self: Alerter, webhook: str | None, timeout_s: float, transport: Any = None
    ) -> None:
        real_init(self, webhook, timeout_s, httpx.MockTransport(handler))

    monkeypatch.setattr(Alerter, "__init__", with_mock)
    for client in monitored(fake, data, alert_webhook="http://alerts.invalid/hook"):
        assert evaluate(client)["status"] == "healthy"
        write_csv(data, rows(10, 30))
        with caplog.at_level("WARNING", logger="clfserve.service.staleness"):
            stale = evaluate(client)
            again = evaluate(client)
        assert (stale["status"], again["status"]) == ("stale", "stale")
        assert stale["alert"] == {"webhook": True}
        assert "alert" not in again
        assert [p["event"] for p in posted] == ["model_stale"]
        assert posted[0]["stale"] is True
        assert any("STALE" in r.getMessage() for r in caplog.records)


def test_failing_webhook_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    alerter = Alerter("http://alerts.invalid/hook", 1.0, httpx.MockTransport(refuse))
    record = {"model": {"name": "m", "version": "1"}, "metric": "f1", "value": 0.1,
              "threshold": 0.8, "data": {"source": "x"}, "n_samples": 3}  # fmt: skip
    assert alerter.notify(record) is False
    assert any("failed" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


# -- schedule ---------------------------------------------------------------------------------


def test_schedule_runs_startup_and_interval_jobs(fake: FakePredictor, data: Path) -> None:
    for client in monitored(fake, data, scheduler="on", interval=Schedule(seconds=0.3),
                            initial_delay_s=0.0):  # fmt: skip
        triggers: set[str] = set()
        for _ in range(300):  # bounded: 30 s at most
            triggers = {r["trigger"] for r in client.get("/staleness").json()["history"]}
            if {"startup", "scheduled"} <= triggers:
                break
            threading.Event().wait(0.1)
        assert {"startup", "scheduled"} <= triggers
        schedule = client.get("/staleness").json()["schedule"]
        assert schedule["runs_here"] is True
        assert schedule["next_run_at"] is not None


def test_only_one_of_several_workers_runs_the_schedule(
    fake: FakePredictor, data: Path, tmp_path: Path
) -> None:
    from clfserve.service.context import ServiceContext
    from clfserve.service.staleness.extension import install

    settings = StalenessSettings().replace(scheduler="auto", tracking="off")
    lock = tmp_path / "schedule.lock"
    first, second = (
        install(ServiceContext.build(Settings().replace(workers=2)), settings, lock_path=lock)
        for _ in range(2)
    )
    try:
        assert first.scheduler._owns_schedule() is True
        assert second.scheduler._owns_schedule() is False
        assert "another worker" in second.scheduler.detail
        first.scheduler.stop()
        assert second.scheduler._owns_schedule() is True
    finally:
        first.scheduler.stop()
        second.scheduler.stop()
