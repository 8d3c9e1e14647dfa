"""`StalenessMonitor`: evaluates the served model on labelled data, one run at a time.

An evaluation reads its data (by default the model's own validation split, which travels in its
artefact), refuses data whose labels the model does not have, predicts through the service's
`InferenceGateway` at background priority (requests go first, and the CPU split holds), scores
with the same `clfserve.evaluation` code as ``clfserve evaluate``, compares the configured
metric with the threshold, logs to MLflow, alerts when the verdict turns stale, and keeps the
latest results. It never raises: a failure becomes an `Evaluation` with status ``error``, and
an error is never a stale verdict: no alert, no ``stale`` tag.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Protocol

from clfserve.evaluation import check_labels, evaluation_data, result_of
from clfserve.runtime import ClfserveError
from clfserve.service.gateway import InferenceGateway, Priority
from clfserve.service.staleness.alert import Alerter
from clfserve.service.staleness.gauges import StalenessGauges
from clfserve.service.staleness.record import Evaluation, ModelRef, Tracking, Trigger, iso
from clfserve.service.staleness.settings import StalenessSettings

log = logging.getLogger(__name__)


class Tracker(Protocol):
    """Where evaluations are logged (`MlflowTracker`, or a fake); blocking, raises
    `ClfserveError` when the record could not be written."""

    def log(self, evaluation: Evaluation) -> Tracking: ...


@dataclass(eq=False)
class StalenessMonitor:
    """Holds the latest evaluation and a bounded history; `run` is the only way in."""

    settings: StalenessSettings
    gateway: InferenceGateway
    gauges: StalenessGauges
    tracker: Tracker | None = None
    alerter: InitVar[Alerter | None] = None
    """None: an `Alerter` for the settings' webhook."""
    clock: Callable[[], float] = time.time
    listeners: list[Callable[[Evaluation], Awaitable[None]]] = field(
        init=False, default_factory=list
    )
    """Told of every finished evaluation (e.g. to share it with other replicas); they
    must not raise."""
    _alerter: Alerter = field(init=False, repr=False)
    _one_at_a_time: asyncio.Lock = field(init=False, repr=False, default_factory=asyncio.Lock)
    _history: deque[Evaluation] = field(init=False, repr=False)
    _count: int = field(init=False, repr=False, default=0)
    _verdict: bool | None = field(init=False, repr=False, default=None)
    """Last known stale flag, for "turned stale"."""

    def __post_init__(self, alerter: Alerter | None) -> None:
        self._alerter = alerter or Alerter(
            self.settings.alert_webhook, self.settings.alert_timeout_s
        )
        self._history = deque(maxlen=self.settings.history)
        self.gauges.threshold.set(self.settings.threshold)

    @property
    def running(self) -> bool:
        return self._one_at_a_time.locked()

    @property
    def latest(self) -> Evaluation | None:
        return self._history[0] if self._history else None

    @property
    def history(self) -> list[Evaluation]:
        """Newest first."""
        return list(self._history)

    async def run(self, trigger: Trigger) -> Evaluation:
        """Wait for any running evaluation, run one, publish and return it."""
        async with self._one_at_a_time:
            self._count += 1
            s = self.settings
            started = self.clock()
            evaluation = Evaluation(
                self._count, trigger, s.metric, s.threshold, iso(started),
                tracking=Tracking("off" if self.tracker is None else "not attempted"),
            )  # fmt: skip
            try:
                await self._score(evaluation)
            except ClfserveError as exc:
                evaluation.error = str(exc)
            except Exception as exc:  # a bug or an environment problem: say which, keep serving
                log.exception("staleness evaluation crashed")
                evaluation.error = f"{type(exc).__name__}: {exc}"
            finished = self.clock()
            evaluation.finished_at = iso(finished)  # the check time, also tagged in MLflow
            if evaluation.verdict is not None and self.tracker is not None:
                await asyncio.to_thread(self._track, evaluation)
            await self._observe(evaluation, finished)
            self._history.appendleft(evaluation)
            self.gateway.state.staleness = evaluation.summary()
            for listener in self.listeners:
                await listener(evaluation)
            return evaluation

    async def _score(self, evaluation: Evaluation) -> None:
        info = self.gateway.current()
        dataset, source = await asyncio.to_thread(
            evaluation_data, self.settings.validation_data, Path(info.path)
        )
        evaluation.data = source
        check_labels(dataset, info.labels)  # foreign labels: an error, never a verdict
        started = time.perf_counter()
        info, predictions = await self.gateway.predict_texts(
            dataset.texts, Priority.BACKGROUND, kind="evaluation"
        )
        result = result_of(
            dataset, [p.label for p in predictions], info, time.perf_counter() - started
        )
        evaluation.result = result
        evaluation.model = ModelRef(
            info.name, info.version, info.variant, result.provider, self.gateway.state.uri
        )
        value = result.macro_f1 if self.settings.metric == "f1" else result.accuracy
        evaluation.value = value
        evaluation.verdict = "stale" if value < self.settings.threshold else "healthy"

    def _track(self, evaluation: Evaluation) -> None:
        assert self.tracker is not None
        try:
            evaluation.tracking = self.tracker.log(evaluation)
        except ClfserveError as exc:
            evaluation.error = f"evaluation done but not logged to MLflow: {exc}"
            evaluation.tracking = Tracking("failed", detail=str(exc))

    async def _observe(self, evaluation: Evaluation, finished: float) -> None:
        g = self.gauges
        g.last_timestamp.set(finished)
        g.evaluations.labels(evaluation.status).inc()
        if evaluation.error:
            g.errors.inc()
            log.error("staleness evaluation #%d failed: %s", evaluation.id, evaluation.error)
        result = evaluation.result
        if evaluation.verdict is None or result is None:
            return
        g.accuracy.set(result.accuracy)
        g.f1.set(result.macro_f1)
        g.stale.set(1 if evaluation.stale else 0)
        log.info(
            "staleness evaluation #%d (%s): %s, %s %.4f (threshold %.4f), accuracy %.4f, "
            "macro-F1 %.4f, %d samples of %s in %.2fs",
            evaluation.id, evaluation.trigger, evaluation.verdict, evaluation.metric,
            evaluation.value, evaluation.threshold, result.accuracy, result.macro_f1,
            result.n_samples, evaluation.data.source if evaluation.data else "?",
            result.duration_s,
        )  # fmt: skip
        turned_stale = bool(evaluation.stale) and self._verdict is not True
        self._verdict = evaluation.stale
        if turned_stale:
            webhook = await asyncio.to_thread(self._alerter.notify, evaluation)
            evaluation.alerted, evaluation.webhook = True, webhook
