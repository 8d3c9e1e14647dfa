"""Wiring the monitor into one app: `install(ctx)` -> routes + a lifespan hook."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from litestar.handlers import HTTPRouteHandler

from clfserve.service.context import ServiceContext
from clfserve.service.model_state import Model, ModelStatus
from clfserve.service.staleness.alert import Alerter
from clfserve.service.staleness.cluster import ClusterSchedule
from clfserve.service.staleness.driftmonitor import DriftMonitor
from clfserve.service.staleness.driftshare import SharedDriftWindows
from clfserve.service.staleness.driftwindow import DriftWindow
from clfserve.service.staleness.gauges import DriftGauges, StalenessGauges
from clfserve.service.staleness.monitor import StalenessMonitor, Tracker
from clfserve.service.staleness.retrain import retrain_trigger
from clfserve.service.staleness.routes import build_routes
from clfserve.service.staleness.scheduler import StalenessScheduler, default_lock_path
from clfserve.service.staleness.tracking import MlflowTracker, tracking_wanted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StalenessExtension:
    """What `create_app` adds for the monitor."""

    monitor: StalenessMonitor
    scheduler: StalenessScheduler
    routes: list[HTTPRouteHandler]
    drift: DriftMonitor | None = None

    @asynccontextmanager
    async def lifespan(self, ctx: ServiceContext) -> AsyncIterator[None]:
        """Start the schedule once the model is loaded; stop it on shutdown."""
        starting = asyncio.create_task(self._start_when_loaded(ctx), name="clfserve-staleness")
        evaluations: set[asyncio.Task[object]] = set()

        async def evaluate_new_version(_: Model) -> None:
            """A swapped-in version is evaluated soon, not at the next scheduled run."""
            if not self.scheduler.running and not self.scheduler.start():
                return  # another process runs the schedule, and evaluates for the cluster
            task = asyncio.create_task(self.scheduler.run("swap"), name="clfserve-staleness-swap")
            evaluations.add(task)
            task.add_done_callback(evaluations.discard)

        ctx.follower.on_swap.append(evaluate_new_version)
        checking = None
        if self.drift is not None:
            drift = self.drift

            async def restart_window(model: Model) -> None:
                """A new model's answers are compared with its own reference, from zero."""
                drift.window.reset(model.info)
                await drift.check()

            interval = ctx.settings.staleness.drift_interval_s
            checking = asyncio.create_task(drift.run_forever(interval), name="clfserve-drift")
            ctx.follower.on_swap.append(restart_window)
        try:
            yield
        finally:
            starting.cancel()
            for task in evaluations:
                task.cancel()
            if checking is not None:
                checking.cancel()
            self.scheduler.stop()

    async def _start_when_loaded(self, ctx: ServiceContext) -> None:
        # Bounded by the model load: it ends READY or FAILED, and shutdown cancels this task.
        await ctx.model.settled.wait()
        if ctx.model.status is not ModelStatus.READY:
            log.error("staleness monitor not scheduled: no model (%s)", ctx.model.reason)
            self.scheduler.detail = f"not started: no model ({ctx.model.reason})"
            return
        self.scheduler.start()


def install(
    ctx: ServiceContext,
    *,
    env: Mapping[str, str] | None = None,
    tracker: Tracker | None = None,
    lock_path: Path | None = None,
) -> StalenessExtension:
    """The monitor of the app around ``ctx``; ``tracker`` overrides the MLflow one (tests)."""
    settings = ctx.settings.staleness
    env = os.environ if env is None else env
    if tracker is None and tracking_wanted(settings.tracking, ctx.settings.model_uri, env):
        tracker = MlflowTracker(
            ctx.settings.model_uri, settings.experiment, settings.tracking_timeout_s
        )
    gauges = StalenessGauges(ctx.metrics.registry)
    monitor = StalenessMonitor(settings, ctx.gateway, gauges, tracker, feedback=ctx.feedback)
    if settings.retrain_on_stale:
        trigger = retrain_trigger(ctx.settings.model_uri, settings.retrain_args)
        if trigger is not None:
            monitor.listeners.append(trigger.on_evaluation)
    cluster = None
    if ctx.redis is not None:
        cluster = ClusterSchedule(ctx.redis, settings.interval, settings.history)
        monitor.listeners.append(cluster.publish)
    scheduler = StalenessScheduler(
        monitor,
        settings.interval,
        settings.initial_delay_s,
        settings.scheduler,
        ctx.settings.workers,
        lock_path or default_lock_path(ctx.settings.port),
        cluster,
    )
    drift = drift_monitor(ctx)
    routes = build_routes(monitor, scheduler, ctx.settings.admin_token, cluster, drift)
    return StalenessExtension(monitor, scheduler, routes, drift)


def drift_monitor(ctx: ServiceContext) -> DriftMonitor | None:
    """The drift check of the app around ``ctx``, fed by its answer service; None when off."""
    settings = ctx.settings.staleness
    if settings.drift_window is None:
        return None
    window = DriftWindow(settings.drift_window, lambda: ctx.model.info)
    ctx.answers.observers.append(window.observe)
    shared = None
    if ctx.redis is not None:  # a replica's window counts as live for three checks
        shared = SharedDriftWindows(ctx.redis, 3 * settings.drift_interval_s)
    return DriftMonitor(
        window,
        lambda: ctx.model.info,
        DriftGauges(ctx.metrics.registry),
        Alerter(settings.alert_webhook, settings.alert_timeout_s),
        settings.drift_threshold,
        settings.drift_min_samples,
        shared,
    )
