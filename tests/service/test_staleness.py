"""Staleness monitor with a fake model: settings, verdicts, data re-reads, errors, foreign labels,
admin route, alerts, tracking, gauges and the in-process schedule (no real model, no MLflow)."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from service_fakes import FakePredictor, fake_scored, loader_for, quiet, ready_client

from clfserve.evaluation import DataSource
from clfserve.runtime import ClfserveError
from clfserve.service import Settings, SettingsError, create_app
from clfserve.service.gateway import InferenceGateway
from clfserve.service.metrics import ServiceMetrics
from clfserve.service.model_state import ModelState
from clfserve.service.settings import Schedule, parse_schedule
from clfserve.service.staleness import StalenessSettings
from clfserve.service.staleness.alert import Alerter
from clfserve.service.staleness.gauges import StalenessGauges
from clfserve.service.staleness.monitor import StalenessMonitor
from clfserve.service.staleness.record import Alert, Evaluation, ModelRef, Tracking, iso

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


def monitored_settings(data: Path | None, **changes: Any) -> StalenessSettings:
    return StalenessSettings().replace(
        **{"scheduler": "off", "initial_delay_s": None,
           "validation_data": None if data is None else str(data),
           "tracking": "off", **changes}
    )  # fmt: skip


def monitored(
    fake: FakePredictor, data: Path | None, admin_token: str | None = TOKEN, **changes: Any
) -> Iterator[TestClient[Litestar]]:
    settings = quiet(admin_token=admin_token, staleness=monitored_settings(data, **changes))
    client = ready_client(create_app(settings, loader=loader_for(fake)))
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
    s = Settings.from_env({}).staleness
    assert s == StalenessSettings()
    assert (s.interval, s.initial_delay_s, s.metric, s.threshold) == (
        Schedule(seconds=86_400), 30.0, "f1", 0.8,
    )  # fmt: skip
    assert (s.validation_data, s.alert_webhook) == (None, None)
    assert (s.enabled, s.tracking, s.scheduler, s.history) == (True, "auto", "auto", 20)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("90", Schedule(seconds=90)), ("1.5", Schedule(seconds=1.5)), ("15m", Schedule(seconds=900)),
     ("6h", Schedule(seconds=21_600)), ("daily", Schedule(seconds=86_400)),
     ("hourly", Schedule(seconds=3600)),
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
     ("CLFSERVE_ALERT_WEBHOOK", "ftp://x"), ("CLFSERVE_STALENESS_INITIAL_DELAY", "later"),
     ("CLFSERVE_STALENESS_HISTORY", "0"), ("CLFSERVE_STALENESS_TRACKING", "sometimes")],
)  # fmt: skip
def test_bad_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


def test_env_values_are_parsed() -> None:
    parsed = Settings.from_env({
        "CLFSERVE_STALENESS_INITIAL_DELAY": "off", "CLFSERVE_STALENESS_METRIC": "accuracy",
        "CLFSERVE_STALENESS_THRESHOLD": "0.9", "CLFSERVE_SCHEDULER": "off",
        "CLFSERVE_ADMIN_TOKEN": TOKEN, "CLFSERVE_STALENESS_ENABLED": "false",
        "CLFSERVE_STALENESS_TRACKING": "no", "CLFSERVE_STALENESS_INTERVAL": "0 3 * * *",
        "CLFSERVE_VALIDATION_DATA": "model",
    })  # fmt: skip
    assert parsed.admin_token == TOKEN
    s = parsed.staleness
    assert (s.initial_delay_s, s.metric, s.threshold, s.scheduler) == (None, "accuracy", 0.9, "off")
    assert (s.enabled, s.tracking) == (False, "off")
    assert (s.interval, s.validation_data) == (Schedule(cron="0 3 * * *"), None)


def test_replace_refuses_a_non_positive_interval() -> None:
    with pytest.raises(SettingsError, match="CLFSERVE_STALENESS_INTERVAL"):
        StalenessSettings().replace(interval=Schedule(seconds=0))


# -- verdicts, data, errors ---------------------------------------------------------------------


def test_healthy_above_threshold_and_visible_everywhere(fake: FakePredictor, data: Path) -> None:
    for client in monitored(fake, data):
        result = evaluate(client)
        assert (result["status"], result["stale"], result["error"]) == ("healthy", False, None)
        assert (result["verdict"], result["trigger"], result["id"]) == ("healthy", "admin", 1)
        assert (result["accuracy"], result["macro_f1"], result["n_samples"]) == (1.0, 1.0, 40)
        assert result["value"] == 1.0
        assert result["confusion"] == [[20, 0], [0, 20]]
        assert result["unknown_labels"] == {}
        assert result["model"]["name"] == "fake-sentiment"
        assert result["data"]["source"] == str(data)
        assert len(result["data"]["checksum"]) == 64
        assert result["data"]["rows"] == 40
        assert result["tracking"] == {"status": "off"}
        assert "alert" not in result
        staleness = client.get("/staleness").json()
        assert staleness["latest"] == result
        assert staleness["history"] == [result]
        model_staleness = client.get("/model").json()["staleness"]
        assert (model_staleness["verdict"], model_staleness["n_samples"]) == ("healthy", 40)
        metrics = client.get("/metrics").text
        assert "clfserve_staleness_stale 0.0" in metrics
        assert "clfserve_staleness_f1 1.0" in metrics
        assert 'clfserve_staleness_evaluations_total{status="healthy"} 1.0' in metrics
        # Through the gateway, cut to the model's batch size: 40 rows = 5 calls of 8.
        assert 'clfserve_inference_seconds_count{kind="evaluation"} 5.0' in metrics
        assert all(len(call) <= fake.batch_size for call in fake.calls)


def test_staleness_route_shape(fake: FakePredictor, data: Path) -> None:
    for client in monitored(fake, data, threshold=0.75):
        body = client.get("/staleness").json()
        assert set(body) == {"metric", "threshold", "validation_data", "feedback_data",
                             "schedule", "evaluating", "shared", "latest", "history",
                             "drift"}  # fmt: skip
        assert body["shared"] is False  # no Redis: this replica's own results
        assert (body["metric"], body["threshold"], body["validation_data"]) == (
            "f1", 0.75, str(data),
        )  # fmt: skip
        assert set(body["schedule"]) == {"interval", "runs_here", "next_run_at", "detail"}
        assert body["schedule"]["interval"] == "every 86400 s"
        assert (body["evaluating"], body["latest"], body["history"]) == (False, None, [])


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


def test_foreign_labels_are_an_error_naming_both_label_sets(
    fake: FakePredictor, tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "v.csv", [*rows(10, 0), ("good meh", "neutral")])
    for client in monitored(fake, data, alert_webhook="http://alerts.invalid/hook"):
        result = evaluate(client)
        assert (result["status"], result["verdict"], result["stale"]) == ("error", None, None)
        assert "neutral" in result["error"]
        assert "Data labels: negative, neutral, positive" in result["error"]
        assert "model labels: negative, positive" in result["error"]
        assert "accuracy" not in result  # no score at all
        assert result["data"]["source"] == str(data)
        assert "alert" not in result
        assert result["tracking"] == {"status": "off"}
        assert fake.calls == []  # refused before predicting anything
        assert client.get("/model").json()["staleness"]["status"] == "error"
        metrics = client.get("/metrics").text
        assert "clfserve_staleness_stale -1.0" in metrics  # still unknown
        assert "clfserve_staleness_evaluation_errors_total 1.0" in metrics


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


def test_by_default_the_models_own_validation_data_is_used(fake: FakePredictor) -> None:
    """The fake's artefact folder (/nowhere) has none, so the evaluation says so."""
    for client in monitored(fake, None):
        assert client.get("/staleness").json()["validation_data"] == "model"
        result = evaluate(client)
        assert result["status"] == "error"
        assert "the model's own validation data" in result["error"]
        assert "/nowhere" in result["error"]


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


# -- the monitor on its own: tracking and alerting --------------------------------------------


class RecordingTracker:
    def __init__(self, fail: bool = False) -> None:
        self.logged: list[Evaluation] = []
        self.fail = fail

    def log(self, evaluation: Evaluation) -> Tracking:
        self.logged.append(evaluation)
        if self.fail:
            raise ClfserveError("tracking server said no")
        return Tracking("logged", run_id=f"run-{evaluation.id}")


class RecordingAlerter(Alerter):
    def __init__(self) -> None:
        super().__init__(None, 1.0)
        self.notified: list[Evaluation] = []

    def notify(self, evaluation: Evaluation) -> bool | None:
        self.notified.append(evaluation)
        return None


def monitor_of(
    gateway: InferenceGateway, data: Path, tracker: RecordingTracker, **changes: Any
) -> tuple[StalenessMonitor, RecordingAlerter]:
    alerter = RecordingAlerter()
    gauges = StalenessGauges(ServiceMetrics().registry)
    settings = monitored_settings(data, **changes)
    clock = iter(range(1_800_000_000, 1_800_001_000, 5))
    monitor = StalenessMonitor(settings, gateway, gauges, tracker, alerter, lambda: next(clock))
    return monitor, alerter


@pytest.mark.anyio
async def test_foreign_labels_are_neither_tracked_nor_alerted(
    gateway: InferenceGateway, tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "v.csv", [*rows(10, 0), ("meh", "neutral"), ("ugh", "awful")])
    tracker = RecordingTracker()
    monitor, alerter = monitor_of(gateway, data, tracker, threshold=1.0)
    evaluation = await monitor.run("manual")
    assert (evaluation.status, evaluation.verdict, evaluation.stale) == ("error", None, None)
    assert evaluation.error is not None
    assert "awful, neutral" in evaluation.error
    assert "negative, positive" in evaluation.error
    assert evaluation.scored is None
    assert evaluation.data is not None
    assert (evaluation.data.source, evaluation.data.rows) == (str(data), 12)
    assert (tracker.logged, alerter.notified, evaluation.alert) == ([], [], None)
    assert evaluation.tracking == Tracking("not attempted")
    assert monitor.latest is evaluation
    assert gateway.state.staleness == evaluation.summary()


@pytest.mark.anyio
async def test_verdicts_are_tracked_and_a_turn_to_stale_alerts_once(
    gateway: InferenceGateway, tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "v.csv", rows(40, 0))
    tracker = RecordingTracker()
    monitor, alerter = monitor_of(gateway, data, tracker)
    healthy = await monitor.run("startup")
    write_csv(data, rows(10, 30))
    stale = await monitor.run("scheduled")
    again = await monitor.run("scheduled")
    write_csv(data, rows(40, 0))
    recovered = await monitor.run("admin")
    write_csv(data, rows(10, 30))
    stale_again = await monitor.run("manual")
    assert [e.status for e in (healthy, stale, again, recovered, stale_again)] == [
        "healthy", "stale", "stale", "healthy", "stale",
    ]  # fmt: skip
    assert tracker.logged == [healthy, stale, again, recovered, stale_again]
    assert healthy.tracking == Tracking("logged", run_id="run-1")
    assert alerter.notified == [stale, stale_again]
    assert [e.alert for e in (healthy, stale, again, recovered, stale_again)] == [
        None, Alert(None), None, None, Alert(None),
    ]  # fmt: skip
    assert stale.scored is not None
    assert stale.scored.model == ModelRef(
        "fake-sentiment", "v1", "int8", "CPUExecutionProvider", "fake"
    )
    assert (stale.started_at, stale.finished_at) == (iso(1_800_000_010), iso(1_800_000_015))
    assert monitor.history == [stale_again, recovered, again, stale, healthy]


@pytest.mark.anyio
async def test_a_tracking_failure_keeps_the_verdict_but_is_an_error(
    gateway: InferenceGateway, tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "v.csv", rows(10, 30))
    tracker = RecordingTracker(fail=True)
    monitor, alerter = monitor_of(gateway, data, tracker)
    evaluation = await monitor.run("manual")
    assert (evaluation.verdict, evaluation.stale, evaluation.status) == ("stale", True, "error")
    assert evaluation.error is not None
    assert "not logged to MLflow: tracking server said no" in evaluation.error
    assert evaluation.tracking == Tracking("failed", detail="tracking server said no")
    assert alerter.notified == [evaluation]  # the model did turn stale


@pytest.mark.anyio
async def test_no_model_is_an_error(tmp_path: Path) -> None:
    gateway = InferenceGateway(ModelState(uri="fake"), ServiceMetrics())
    tracker = RecordingTracker()
    monitor, alerter = monitor_of(gateway, write_csv(tmp_path / "v.csv", rows(4, 0)), tracker)
    evaluation = await monitor.run("manual")
    assert evaluation.status == "error"
    assert "model not available" in str(evaluation.error)
    assert (tracker.logged, alerter.notified) == ([], [])


def test_evaluation_record_json() -> None:
    evaluation = Evaluation(7, "manual", "f1", 0.8, iso(0))
    assert (evaluation.status, evaluation.stale) == ("error", None)  # no verdict yet
    out = evaluation.to_json()
    assert out["started_at"] == "1970-01-01T00:00:00Z"
    assert out["tracking"] == {"status": "off"}
    assert {"alert", "model", "data"}.isdisjoint(out)
    evaluation.scored, evaluation.alert = fake_scored("stale"), Alert(webhook=False)
    assert (evaluation.status, evaluation.stale) == ("stale", True)
    out = evaluation.to_json()
    assert out["alert"] == {"webhook": False}
    assert (out["value"], out["accuracy"], out["n_samples"]) == (pytest.approx(1 / 3), 0.5, 2)
    assert out["model"]["name"] == "fake-sentiment"
    summary = evaluation.summary()
    assert (summary["status"], summary["accuracy"], summary["n_samples"]) == ("stale", 0.5, 2)


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
        assert client.post("/admin/evaluate").status_code == 404
        assert client.get("/model").json()["staleness"] is None
        assert "clfserve_staleness_stale" not in client.get("/metrics").text


def test_the_monitor_is_on_by_default(fake: FakePredictor) -> None:
    app = create_app(Settings().replace(rate_limit=None), loader=loader_for(fake))
    client = ready_client(app)
    try:
        body = client.get("/staleness").json()
        assert body["validation_data"] == "model"
        assert body["latest"] is None  # the first run waits 30 s after the model loads
        assert "clfserve_staleness_stale -1.0" in client.get("/metrics").text
    finally:
        client.__exit__(None, None, None)


# -- alerts -----------------------------------------------------------------------------------


def test_alert_fires_when_the_verdict_turns_stale(
    fake: FakePredictor, data: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    posted: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
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
        assert {k: v for k, v in posted[0].items() if k not in ("event", "alert")} == {
            k: v for k, v in stale.items() if k != "alert"
        }
        assert any("STALE" in r.getMessage() for r in caplog.records)


@pytest.mark.anyio
async def test_the_webhook_body_does_not_claim_an_alert_outcome(
    gateway: InferenceGateway, tmp_path: Path
) -> None:
    posted: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content))
        return httpx.Response(204)

    data = write_csv(tmp_path / "v.csv", rows(10, 30))
    settings = monitored_settings(data, alert_webhook="http://alerts.invalid/hook")
    alerter = Alerter(settings.alert_webhook, 1.0, httpx.MockTransport(handler))
    gauges = StalenessGauges(ServiceMetrics().registry)
    evaluation = await StalenessMonitor(settings, gateway, gauges, None, alerter).run("manual")
    assert evaluation.alert == Alert(webhook=True)
    assert len(posted) == 1
    assert "alert" not in posted[0]


def stale_record() -> Evaluation:
    return Evaluation(
        3, "scheduled", "f1", 0.8, iso(0), iso(1), DataSource("x.csv", "0" * 64, 3),
        fake_scored("stale"),
    )  # fmt: skip


def test_failing_webhook_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    alerter = Alerter("http://alerts.invalid/hook", 1.0, httpx.MockTransport(refuse))
    assert alerter.notify(stale_record()) is False
    assert any("failed" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


def test_webhook_error_status_is_a_failure_and_no_webhook_is_none() -> None:
    answer_500 = httpx.MockTransport(lambda request: httpx.Response(500))
    assert Alerter("http://alerts.invalid/hook", 1.0, answer_500).notify(stale_record()) is False
    assert Alerter(None, 1.0).notify(stale_record()) is None


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


def test_no_schedule_without_a_model(data: Path) -> None:
    from clfserve.runtime import ModelLoadError

    def broken(_settings: object) -> FakePredictor:
        raise ModelLoadError("no model here")

    settings = quiet(staleness=monitored_settings(data, scheduler="on", initial_delay_s=0.0))
    with TestClient(create_app(settings, loader=broken)) as client:
        for _ in range(300):
            schedule = client.get("/staleness").json()["schedule"]
            if schedule["detail"] != "not started":
                break
            threading.Event().wait(0.05)
        assert schedule["runs_here"] is False
        assert "no model here" in schedule["detail"]


def test_only_one_of_several_workers_runs_the_schedule(tmp_path: Path) -> None:
    from clfserve.service.context import ServiceContext
    from clfserve.service.staleness.extension import install

    staleness = StalenessSettings().replace(scheduler="auto", tracking="off")
    settings = Settings().replace(workers=2, staleness=staleness)
    lock = tmp_path / "schedule.lock"
    first, second = (install(ServiceContext.build(settings), lock_path=lock) for _ in range(2))
    try:
        assert first.scheduler._owns_schedule() is True
        assert second.scheduler._owns_schedule() is False
        assert "another worker" in second.scheduler.detail
        first.scheduler.stop()
        assert second.scheduler._owns_schedule() is True
    finally:
        first.scheduler.stop()
        second.scheduler.stop()


def test_install_reads_the_nested_settings_and_takes_a_tracker(tmp_path: Path) -> None:
    from clfserve.service.context import ServiceContext
    from clfserve.service.staleness.extension import install
    from clfserve.service.staleness.tracking import MlflowTracker

    staleness = StalenessSettings().replace(threshold=0.6, history=3, tracking="auto")
    registry_model = Settings().replace(staleness=staleness)  # models:/ URI: tracking on
    extension = install(ServiceContext.build(registry_model), env={}, lock_path=tmp_path / "l")
    assert extension.monitor.settings is staleness
    assert isinstance(extension.monitor.tracker, MlflowTracker)
    assert extension.monitor.tracker.experiment == "clfserve-staleness"
    local = Settings().replace(model_uri=str(tmp_path), staleness=staleness)
    assert install(ServiceContext.build(local), env={}).monitor.tracker is None
    fake_tracker = RecordingTracker()
    given = install(ServiceContext.build(local), env={}, tracker=fake_tracker)
    assert given.monitor.tracker is fake_tracker
    assert dataclasses.asdict(extension.monitor.settings)["history"] == 3
