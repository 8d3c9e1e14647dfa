"""`StalenessMonitor`: evaluates the served model on labelled data, one run at a time.

An evaluation reads its data (by default the model's own validation split, which travels in its
artefact), refuses data whose labels the model does not have, predicts through the service's
`InferenceGateway` at background priority (requests go first, and the CPU split holds), scores
with the same `clfserve.evaluation` code as ``clfserve evaluate``, compares the configured
metric with the threshold, logs to MLflow, alerts when the verdict turns stale, and keeps the
latest results. It never raises: a failure becomes an `Evaluation` with status ``error``, and
an error is never a stale verdict: no alert, no ``stale`` tag.

Each run then scores the production labels clients posted (``POST /feedback``) the same way:
the newest ``CLFSERVE_STALENESS_FEEDBACK_LAST`` of them (of the last
``CLFSERVE_STALENESS_FEEDBACK_DAYS`` days when set), when at least
``CLFSERVE_STALENESS_FEEDBACK_MIN`` are stored (else that part says it was skipped, and why).
Either part finding the model stale makes the run stale (`Evaluation.stale_on`).
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

from clfserve.evaluation import Dataset, DataSource, check_labels, evaluation_data, result_of
from clfserve.evaluation.feedback import FeedbackWindow, feedback_data
from clfserve.runtime import ClfserveError, ModelInfo
from clfserve.service.feedback import FeedbackDesk
from clfserve.service.gateway import InferenceGateway, Priority
from clfserve.service.settings import StalenessSettings
from clfserve.service.staleness.alert import Alerter
from clfserve.service.staleness.gauges import StalenessGauges
from clfserve.service.staleness.record import (
    Alert,
    Evaluation,
    ModelRef,
    Scope,
    Scored,
    Tracking,
    Trigger,
    Verdict,
    iso,
)

log = logging.getLogger(__name__)


class Tracker(Protocol):
    """Where evaluations are logged (`MlflowTracker`, or a fake); blocking, raises
    `ClfserveError` when the record could not be written."""

    def log(self, evaluation: Evaluation) -> Tracking: ...


DataLoader = Callable[[ModelInfo], Awaitable[tuple[Dataset, DataSource]]]


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
    feedback: FeedbackDesk | None = None
    """The production labels to score as well (None: validation data only)."""
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

    @property
    def window(self) -> FeedbackWindow | None:
        """Which production labels a run scores; None when it scores none."""
        s = self.settings
        if self.feedback is None or s.feedback_last == 0:
            return None
        return FeedbackWindow(s.feedback_last, s.feedback_days)

    async def run(self, trigger: Trigger) -> Evaluation:
        """Wait for any running evaluation, run one, publish and return it."""
        async with self._one_at_a_time:
            self._count += 1
            started = self.clock()
            evaluation = self._new(trigger, started, "validation")
            await self._attempt(evaluation, self._validation_data)
            parts = [evaluation]
            if self.window is not None:
                evaluation.feedback = self._new(trigger, started, "feedback")
                await self._attempt(evaluation.feedback, self._feedback_data)
                parts.insert(0, evaluation.feedback)  # logged first: see `tracking`
            finished = self.clock()
            for part in parts:
                part.finished_at = iso(finished)  # the check time, also tagged in MLflow
                if part.scored is not None and self.tracker is not None:
                    await asyncio.to_thread(self._track, part)
            await self._observe(evaluation, finished)
            self._history.appendleft(evaluation)
            self.gateway.state.staleness = evaluation.summary()
            for listener in self.listeners:
                await listener(evaluation)
            return evaluation

    def _new(self, trigger: Trigger, started: float, scope: Scope) -> Evaluation:
        s = self.settings
        return Evaluation(
            self._count, trigger, s.metric, s.threshold, iso(started), scope=scope,
            tracking=Tracking("off" if self.tracker is None else "not attempted"),
        )  # fmt: skip

    async def _validation_data(self, info: ModelInfo) -> tuple[Dataset, DataSource]:
        spec = self.settings.validation_data
        return await asyncio.to_thread(evaluation_data, spec, Path(info.path))

    async def _feedback_data(self, _: ModelInfo) -> tuple[Dataset, DataSource]:
        window = self.window
        assert self.feedback is not None
        assert window is not None
        return await self.feedback.using(lambda store: feedback_data(store, window))

    async def _attempt(self, evaluation: Evaluation, data: DataLoader) -> None:
        try:
            await self._score(evaluation, data)
        except ClfserveError as exc:
            evaluation.error = str(exc)
        except Exception as exc:  # a bug or an environment problem: say which, keep serving
            log.exception("staleness evaluation crashed")
            evaluation.error = f"{type(exc).__name__}: {exc}"

    async def _score(self, evaluation: Evaluation, data: DataLoader) -> None:
        info = self.gateway.current()
        dataset, source = await data(info)
        evaluation.data = source
        if evaluation.scope == "feedback" and source.rows < self.settings.feedback_min:
            evaluation.skipped = (
                f"too few production labels: {source.rows} ({source.window}); at least "
                f"{self.settings.feedback_min} needed"
            )
            return
        check_labels(dataset, info.labels)  # foreign labels: an error, never a verdict
        started = time.perf_counter()
        info, predictions = await self.gateway.predict_texts(
            dataset.texts, Priority.BACKGROUND, kind="evaluation"
        )
        result = result_of(
            dataset, [p.label for p in predictions], info, time.perf_counter() - started
        )
        model = ModelRef(
            info.name, info.version, info.variant, result.provider, self.gateway.state.uri
        )
        value = result.macro_f1 if self.settings.metric == "f1" else result.accuracy
        verdict: Verdict = "stale" if value < self.settings.threshold else "healthy"
        evaluation.scored = Scored(result, model, value, verdict)

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
        parts = [p for p in (evaluation, evaluation.feedback) if p is not None]
        for part in parts:
            if part.error:
                g.errors.inc()
                log.error("staleness evaluation #%d (%s) failed: %s", part.id, part.scope,
                          part.error)  # fmt: skip
            elif part.skipped:
                log.info("staleness evaluation #%d (%s) skipped: %s", part.id, part.scope,
                         part.skipped)  # fmt: skip
        if evaluation.scored is not None:
            g.accuracy.set(evaluation.scored.result.accuracy)
            g.f1.set(evaluation.scored.result.macro_f1)
        judged = [(part, part.scored) for part in parts if part.scored is not None]
        if not judged:
            return
        stale = bool(evaluation.stale_on)
        g.stale.set(1 if stale else 0)
        for part, scored in judged:
            result = scored.result
            log.info(
                "staleness evaluation #%d (%s, %s): %s, %s %.4f (threshold %.4f), accuracy "
                "%.4f, macro-F1 %.4f, %d samples of %s in %.2fs",
                part.id, part.trigger, part.scope, scored.verdict, part.metric, scored.value,
                part.threshold, result.accuracy, result.macro_f1, result.n_samples,
                part.data.source if part.data else "?", result.duration_s,
            )  # fmt: skip
        turned_stale = stale and self._verdict is not True
        self._verdict = stale
        if turned_stale:
            culprit = evaluation if evaluation.stale else evaluation.feedback
            assert culprit is not None
            webhook = await asyncio.to_thread(self._alerter.notify, culprit)
            evaluation.alert = Alert(webhook)
