"""`StalenessMonitor`: evaluates the served model on validation data, one run at a time.

An evaluation runs in a worker thread (``run`` awaits it off the event loop), calls the same
`clfserve.runtime.evaluation.evaluate` as ``clfserve evaluate``, compares the configured metric
with the threshold, logs to MLflow, raises an alert when the verdict turns stale, and keeps the
latest results. It never raises: a failure becomes a result with ``status == "error"``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from clfserve.runtime import ClfserveError
from clfserve.runtime.evaluation import evaluate
from clfserve.service.model_state import ModelState
from clfserve.service.staleness.alert import Alerter
from clfserve.service.staleness.config import StalenessSettings
from clfserve.service.staleness.gauges import StalenessGauges
from clfserve.service.staleness.validation import load_validation

log = logging.getLogger(__name__)

Trigger = Literal["startup", "scheduled", "admin", "manual"]
Record = dict[str, Any]
"""One evaluation as JSON-able data (the shape is in the README and `GET /staleness`)."""


class ModelNotReady(ClfserveError):
    """No model is loaded (still loading, or it failed): nothing to evaluate."""


class Tracker(Protocol):
    """Where evaluations are logged (`MlflowTracker`, or a fake)."""

    def log(self, record: Mapping[str, Any]) -> Any: ...


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class StalenessMonitor:
    """Holds the latest result and a bounded history; safe to call from threads."""

    def __init__(
        self,
        settings: StalenessSettings,
        model: ModelState,
        gauges: StalenessGauges,
        tracker: Tracker | None = None,
        alerter: Alerter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.model = model
        self.gauges = gauges
        self.tracker = tracker
        self.alerter = alerter or Alerter(settings.alert_webhook, settings.alert_timeout_s)
        self.clock = clock
        self._lock = threading.Lock()  # one evaluation at a time, whoever asks
        self._history: deque[Record] = deque(maxlen=settings.history)
        self._count = 0
        self._verdict: bool | None = None  # last known stale flag, for "turned stale"
        self.running = False
        gauges.threshold.set(settings.threshold)

    @property
    def latest(self) -> Record | None:
        return self._history[0] if self._history else None

    @property
    def history(self) -> list[Record]:
        """Newest first."""
        return list(self._history)

    async def run(self, trigger: Trigger) -> Record:
        """Evaluate in a worker thread, then publish the verdict on the event loop."""
        record = await asyncio.to_thread(self.evaluate_now, trigger)
        self.model.staleness = summary(record)  # ModelState is mutated on the loop only
        return record

    def evaluate_now(self, trigger: Trigger) -> Record:
        """Blocking: wait for any running evaluation, run one, record and return it."""
        with self._lock:
            self.running = True
            try:
                record = self._evaluate(trigger)
            finally:
                self.running = False
            self._history.appendleft(record)
            return record

    def _evaluate(self, trigger: Trigger) -> Record:
        s = self.settings
        self._count += 1
        started = self.clock()
        record: Record = {
            "id": self._count,
            "trigger": trigger,
            "status": "error",
            "verdict": None,
            "stale": None,
            "error": None,
            "metric": s.metric,
            "threshold": s.threshold,
            "value": None,
            "started_at": _iso(started),
            "tracking": {"status": "off" if self.tracker is None else "not attempted"},
        }
        try:
            self._score(record)
        except ClfserveError as exc:
            record["error"] = str(exc)
        except Exception as exc:  # a bug or an environment problem: say which, keep serving
            log.exception("staleness evaluation crashed")
            record["error"] = f"{type(exc).__name__}: {exc}"
        finished = self.clock()
        record["finished_at"] = _iso(finished)  # the check time, also tagged in MLflow
        if record["stale"] is not None and self.tracker is not None:
            self._track(record)
        record["status"] = "error" if record["error"] else record["verdict"]
        self._observe(record, finished)
        return record

    def _score(self, record: Record) -> None:
        predictor = self.model.predictor
        if predictor is None:
            raise ModelNotReady(f"model not available ({self.model.status}): {self.model.reason}")
        dataset, source = load_validation(self.settings.validation_data)
        result = evaluate(predictor, dataset)
        record.update(result.to_dict())
        record.pop("dataset", None)
        for key in ("model_name", "model_version", "variant", "provider"):
            record.pop(key, None)
        record["model"] = {
            "name": result.model_name,
            "version": result.model_version,
            "variant": result.variant,
            "provider": result.provider,
            "uri": self.model.uri,
        }
        record["data"] = {"source": source.spec, "checksum": source.checksum,
                          "rows": source.n_rows}  # fmt: skip
        value = result.macro_f1 if self.settings.metric == "f1" else result.accuracy
        stale = value < self.settings.threshold
        record.update(value=value, stale=stale, verdict="stale" if stale else "healthy")

    def _track(self, record: Record) -> None:
        assert self.tracker is not None
        try:
            run = self.tracker.log(record)
        except ClfserveError as exc:
            record["error"] = f"evaluation done but not logged to MLflow: {exc}"
            record["tracking"] = {"status": "failed", "detail": str(exc)}
            return
        registered = getattr(run, "registered", None)
        record["tracking"] = {
            "status": "logged",
            "tracking_uri": getattr(run, "tracking_uri", None),
            "experiment_id": getattr(run, "experiment_id", None),
            "run_id": getattr(run, "run_id", None),
            "registered_model": None if registered is None else {
                "name": registered.name, "version": registered.version,
            },
        }  # fmt: skip

    def _observe(self, record: Record, finished: float) -> None:
        g = self.gauges
        g.last_timestamp.set(finished)
        g.evaluations.labels(record["status"]).inc()
        if record["error"]:
            g.errors.inc()
            log.error("staleness evaluation #%d failed: %s", record["id"], record["error"])
        if record["stale"] is None:
            return
        g.accuracy.set(record["accuracy"])
        g.f1.set(record["macro_f1"])
        g.stale.set(1 if record["stale"] else 0)
        log.info(
            "staleness evaluation #%d (%s): %s, %s %.4f (threshold %.4f), accuracy %.4f, "
            "macro-F1 %.4f, %d samples in %.2fs",
            record["id"], record["trigger"], record["verdict"], record["metric"], record["value"],
            record["threshold"], record["accuracy"], record["macro_f1"], record["n_samples"],
            record["duration_s"],
        )  # fmt: skip
        turned_stale = record["stale"] and self._verdict is not True
        self._verdict = record["stale"]
        if turned_stale:
            record["alert"] = {"webhook": self.alerter.notify(record)}


def summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """The verdict part of a record, for ``GET /model``."""
    keys = ("status", "verdict", "stale", "metric", "value", "threshold", "accuracy",
            "macro_f1", "n_samples", "finished_at", "error")  # fmt: skip
    return {key: record.get(key) for key in keys}
