"""Label-free drift in the service with a fake model: the sliding window, the ``drift`` section of
``GET /staleness``, the gauges, the alert on the turn to drifted, a model swap, artefacts without
a reference, and windows shared by two apps through a real Redis (and without it)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from prometheus_client import CollectorRegistry
from service_fakes import (
    LABELS,
    FakePredictor,
    fake_info,
    fake_prediction,
    loader_for,
    quiet,
    ready_client,
)

from clfserve.evaluation.drift import REFERENCE_FILE, Binning, DriftReference, profile
from clfserve.runtime import ModelInfo
from clfserve.runtime.manifest import FileEntry, Manifest, file_entry
from clfserve.service import create_app
from clfserve.service.redislink import RedisLink
from clfserve.service.staleness import StalenessSettings
from clfserve.service.staleness.alert import Alerter
from clfserve.service.staleness.driftmonitor import DriftMonitor
from clfserve.service.staleness.driftshare import SharedDriftWindows
from clfserve.service.staleness.driftwindow import DriftWindow
from clfserve.service.staleness.gauges import DriftGauges
from redis_process import RedisProcess

MIN_SAMPLES = 40


def texts(kind: str, start: int, count: int) -> list[str]:
    """Distinct texts of one shape: the fake answers every one alike (same bins)."""
    return [f"{kind} film {i:05d}" for i in range(start, start + count)]


def balanced(start: int, count: int) -> list[str]:
    half = count // 2
    return texts("dull", start, half) + texts("good", start + half, count - half)


def artefact(folder: Path, reference: Sequence[str] | None) -> Path:
    """A folder with a manifest (and, unless None, a drift reference of ``reference``)."""
    folder.mkdir(parents=True, exist_ok=True)
    binning = Binning.of(LABELS, 64)
    entry = None
    if reference is not None:
        answers = [fake_prediction(text) for text in reference]
        DriftReference(binning, {"int8": profile(answers, binning)}, "test").write(folder)
        entry = file_entry(folder, REFERENCE_FILE)
    dummy = FileEntry("model.onnx", "0" * 64, 0)
    Manifest("fake-sentiment", "v1", LABELS, 64, ("input_ids",), {"int8": dummy}, dummy,
             drift_reference=entry).write(folder)  # fmt: skip
    return folder


def fake_at(folder: Path, version: str = "v1") -> FakePredictor:
    return FakePredictor(info=dataclasses.replace(fake_info(version), path=str(folder)))


def drift_settings(**changes: Any) -> StalenessSettings:
    return StalenessSettings().replace(
        **{"scheduler": "off", "initial_delay_s": None, "tracking": "off",
           "drift_window": 100, "drift_min_samples": MIN_SAMPLES, **changes}
    )  # fmt: skip


def serving(fake: FakePredictor, **changes: Any) -> Iterator[TestClient[Litestar]]:
    settings = quiet(staleness=drift_settings(), **changes)
    client = ready_client(create_app(settings, loader=loader_for(fake)))
    try:
        yield client
    finally:
        client.__exit__(None, None, None)


def send(client: TestClient[Litestar], batch: list[str]) -> None:
    for start in range(0, len(batch), 200):
        response = client.post("/batch_predict", json={"texts": batch[start : start + 200]})
        assert response.status_code == 200, response.text


def drift(client: TestClient[Litestar]) -> dict[str, Any]:
    section: dict[str, Any] = client.get("/staleness").json()["drift"]
    return section


def gauge(client: TestClient[Litestar], name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", client.get("/metrics").text, re.M)
    assert match, f"no {name}"
    return float(match.group(1))


@pytest.fixture
def posted(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Bodies the alert webhook got (every `Alerter` posts to a mock transport)."""
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(204)

    real_init = Alerter.__init__

    def with_mock(self: Alerter, webhook: str | None, timeout_s: float, _: Any = None) -> None:
        real_init(self, "http://alerts.invalid/hook", timeout_s, httpx.MockTransport(handler))

    monkeypatch.setattr(Alerter, "__init__", with_mock)
    return bodies


# -- the window -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_window_holds_the_last_answers_of_the_serving_model() -> None:
    info = fake_info()
    window = DriftWindow(50, lambda: info)
    first, last = texts("dull", 0, 30), texts("good", 30, 50)
    window.observe(info, [fake_prediction(t) for t in first])
    window.observe(info, [fake_prediction(t) for t in last])
    binning = Binning.of(info.labels, info.max_length)
    assert await window.snapshot() == profile([fake_prediction(t) for t in last], binning)
    assert len(window) == 50

    other = fake_info("v0")  # a call that ran during a swap: not counted
    window.observe(other, [fake_prediction("dull film")])
    assert len(window) == 50


def test_a_newly_serving_model_restarts_the_window() -> None:
    old, new = fake_info("v1"), fake_info("v2")
    current = [old]
    window = DriftWindow(50, lambda: current[0])
    window.observe(old, [fake_prediction(t) for t in texts("dull", 0, 20)])
    current[0] = new
    window.observe(new, [fake_prediction("good film")])
    assert (window.model, len(window)) == (new, 1)
    window.observe(old, [fake_prediction("dull film")])
    assert len(window) == 1


# -- GET /staleness, gauges, alert -----------------------------------------------------------


def test_drift_section_follows_the_window(tmp_path: Path, posted: list[dict[str, Any]]) -> None:
    fake = fake_at(artefact(tmp_path / "m", balanced(0, 400)))
    for client in serving(fake):
        body = client.get("/staleness").json()
        assert {"metric", "threshold", "latest", "history", "shared"} < set(body)  # unchanged
        section = body["drift"]
        assert (section["status"], section["count"], section["drifted"]) == ("collecting", 0, None)
        assert (section["window"], section["min_samples"], section["threshold"]) == (100, 40, 0.2)
        assert section["divergence"] == "psi"
        assert section["reference"]["source"] == f"model:{REFERENCE_FILE}"
        assert section["reference"]["count"] == 400
        assert gauge(client, "clfserve_drift_drifted") == -1.0

        send(client, balanced(1000, 60))
        section = drift(client)
        assert (section["status"], section["drifted"], section["count"]) == ("stable", False, 60)
        assert set(section["signals"]) == {"label", "confidence", "tokens", "truncated"}
        assert all(s["value"] == pytest.approx(0.0, abs=1e-9) for s in section["signals"].values())
        assert all(s["threshold"] == 0.2 for s in section["signals"].values())
        assert gauge(client, "clfserve_drift_drifted") == 0.0
        assert gauge(client, "clfserve_drift_window_answers") == 60.0

        send(client, texts("good", 2000, 100))  # now only positives: the label mix shifted
        section = drift(client)
        assert (section["status"], section["drifted"], section["count"]) == ("drifted", True, 100)
        assert section["signals"]["label"]["drifted"] is True
        assert section["signals"]["label"]["value"] > 0.2
        assert section["signals"]["tokens"]["drifted"] is False
        assert section["alert"] == {"webhook": True}  # this check turned it
        assert gauge(client, "clfserve_drift_drifted") == 1.0
        assert gauge(client, 'clfserve_drift_psi{signal="label"}') > 0.2
        again = drift(client)  # checked again: no second alert
        assert again["status"] == "drifted"
        assert "alert" not in again

    assert [body["event"] for body in posted] == ["model_drift"]
    assert posted[0]["status"] == "drifted"
    assert posted[0]["signals"]["label"]["drifted"] is True


def test_cache_hits_are_not_counted_again(tmp_path: Path) -> None:
    fake = fake_at(artefact(tmp_path / "m", balanced(0, 100)))
    for client in serving(fake):
        batch = balanced(0, 50)
        send(client, batch)
        send(client, batch)
        assert drift(client)["count"] == 50


def test_an_artefact_without_a_reference_says_so(tmp_path: Path) -> None:
    fake = fake_at(artefact(tmp_path / "old", None))
    for client in serving(fake):
        send(client, balanced(0, 60))
        section = drift(client)
        assert (section["status"], section["drifted"], section["reference"]) == (
            "no reference", None, None,
        )  # fmt: skip
        assert section["count"] == 60
        assert REFERENCE_FILE in section["detail"]
        assert client.get("/staleness").status_code == 200


def test_no_artefact_folder_at_all_is_no_reference(fake: FakePredictor) -> None:
    for client in serving(fake):  # the plain fake lives at /nowhere
        section = drift(client)
        assert section["status"] == "no reference"
        assert "/nowhere" in section["detail"]


def test_drift_off_leaves_the_section_empty(fake: FakePredictor) -> None:
    settings = quiet(staleness=drift_settings(drift_window=None))
    client = ready_client(create_app(settings, loader=loader_for(fake)))
    try:
        assert client.get("/staleness").json()["drift"] is None
        assert "clfserve_drift_drifted" not in client.get("/metrics").text
    finally:
        client.__exit__(None, None, None)


# -- a model swap ----------------------------------------------------------------------------


def monitor(window: DriftWindow, now: list[ModelInfo]) -> DriftMonitor:
    gauges = DriftGauges(CollectorRegistry())
    return DriftMonitor(window, lambda: now[0], gauges, Alerter(None, 1.0), 0.2, MIN_SAMPLES)


@pytest.mark.anyio
async def test_a_swap_restarts_the_window_with_the_new_reference(tmp_path: Path) -> None:
    old = dataclasses.replace(fake_info("v1"), path=str(artefact(tmp_path / "1", balanced(0, 99))))
    new = dataclasses.replace(fake_info("v2"), path=str(artefact(tmp_path / "2", balanced(0, 77))))
    now = [old]
    window = DriftWindow(100, lambda: now[0])
    check = monitor(window, now)
    window.observe(old, [fake_prediction(t) for t in balanced(100, 60)])
    before = await check.check()
    assert (before["status"], before["count"], before["reference"]["count"]) == ("stable", 60, 99)

    now[0] = new
    after = await check.check()
    assert (after["status"], after["count"], after["reference"]["count"]) == ("collecting", 0, 77)
    assert after["model"] == {"name": "fake-sentiment", "version": "v2"}


# -- windows shared through Redis ------------------------------------------------------------


@pytest.fixture
def pair(
    redis_server: RedisProcess, tmp_path: Path
) -> Iterator[tuple[TestClient[Litestar], TestClient[Litestar]]]:
    folder = artefact(tmp_path / "m", balanced(0, 400))
    settings = quiet(
        staleness=drift_settings(),
        redis_url=redis_server.url,
        redis_timeout_s=0.3,
        redis_retry_s=0.2,
    )
    with ExitStack() as stack:
        clients = []
        for _ in range(2):
            client = ready_client(create_app(settings, loader=loader_for(fake_at(folder))))
            stack.callback(client.__exit__, None, None, None)
            clients.append(client)
        yield clients[0], clients[1]


def test_replicas_share_one_window_and_alert_once(
    posted: list[dict[str, Any]],  # first: the apps' alerters post to it
    pair: tuple[TestClient[Litestar], TestClient[Litestar]],
    redis_server: RedisProcess,
) -> None:
    a, b = pair
    send(a, balanced(1000, 30))
    send(b, balanced(2000, 30))  # neither has MIN_SAMPLES alone
    alone = drift(a)  # shares A's window; B's is not in Redis yet
    assert (alone["status"], alone["count"], alone["replicas"]) == ("collecting", 30, 1)
    for client in (b, a):
        section = drift(client)
        assert (section["shared"], section["replicas"], section["count"]) == (True, 2, 60)
        assert section["status"] == "stable"

    send(a, texts("good", 3000, 100))
    send(b, texts("good", 4000, 100))
    assert [drift(c)["status"] for c in (a, b, a, b)] == ["drifted"] * 4
    assert [body["event"] for body in posted] == ["model_drift"]  # once for the cluster

    redis_server.kill()  # each replica falls back to its own window
    section = drift(a)
    assert (section["shared"], section["replicas"], section["count"]) == (False, 1, 100)
    assert section["status"] == "drifted"


@pytest.mark.anyio
async def test_windows_of_gone_replicas_are_left_out(redis_server: RedisProcess) -> None:
    link = RedisLink(
        redis_server.url, prefix="t", timeout_s=0.5, retry_s=0.2, registry=CollectorRegistry()
    )
    info = fake_info()
    binning = Binning.of(info.labels, info.max_length)
    one = profile([fake_prediction(t) for t in balanced(0, 10)], binning)
    two = profile([fake_prediction(t) for t in texts("good", 0, 5)], binning)
    now = [1000.0]
    a = SharedDriftWindows(link, 90.0, replica="a", clock=lambda: now[0])
    b = SharedDriftWindows(link, 90.0, replica="b", clock=lambda: now[0])
    await a.exchange(info, one, binning)
    shared = await b.exchange(info, two, binning)
    assert shared is not None
    assert shared.windows == {"a": one, "b": two}
    now[0] += 91  # A stopped writing three checks ago
    shared = await b.exchange(info, two, binning)
    assert shared is not None
    assert shared.windows == {"b": two}
    other = dataclasses.replace(info, version="v2")  # another model: its own, empty hash
    shared = await b.exchange(other, two, binning)
    assert shared is not None
    assert set(shared.windows) == {"b"}
    assert await b.turned_drifted(info, True) is True
    assert await a.turned_drifted(info, True) is False  # already alerted by b
    assert await a.turned_drifted(info, False) is False
    assert await a.turned_drifted(info, True) is True  # a new turn
    await link.close()


def test_staleness_answer_with_drift_matches_the_document(tmp_path: Path) -> None:
    import schemathesis

    fake = fake_at(artefact(tmp_path / "m", balanced(0, 100)))
    for client in serving(fake):
        send(client, balanced(1000, 60))
        document = client.get("/schema/openapi.json").json()
        operation = document["paths"]["/staleness"]["get"]
        assert "drift" in operation["description"]
        case = schemathesis.openapi.from_dict(document)["/staleness"]["GET"].Case()
        response = client.get("/staleness")
        case.validate_response(response)
        assert response.json()["drift"]["status"] == "stable"
