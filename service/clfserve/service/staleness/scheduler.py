"""The APScheduler 3.11 job that runs the monitor, and which process of N gets to run it.

`AsyncIOScheduler` must start inside the running loop, so `StalenessScheduler.start` is called
from the app's lifespan. Every server process builds its own app. With ``CLFSERVE_REDIS_URL``
every process (on any host) schedules, and each run is claimed in Redis by exactly one of them
(`cluster.ClusterSchedule`). Without it, with ``CLFSERVE_SCHEDULER=auto`` and
``CLFSERVE_WORKERS`` > 1 the process that first takes an exclusive file lock runs the schedule
and the others only serve (``on`` forces it, ``off`` disables it, e.g. when a separate
single-worker instance does the monitoring).
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from dataclasses import InitVar, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from clfserve.runtime import ClfserveError, ModelInfo
from clfserve.service.settings import Mode, Schedule
from clfserve.service.staleness.cluster import ClusterSchedule
from clfserve.service.staleness.monitor import StalenessMonitor
from clfserve.service.staleness.record import Trigger

log = logging.getLogger(__name__)

JOB_ID = "clfserve-staleness"


@dataclass(eq=False)
class ScheduleLock:
    """An exclusive, non-blocking ``flock`` held for the life of the process that won it."""

    path: Path
    _handle: IO[str] | None = field(init=False, default=None, repr=False)

    def acquire(self) -> bool:
        handle = self.path.open("a", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._handle = handle
        return True

    def fileno(self) -> int:
        """The locked descriptor (to hand to a child process, which then holds the lock)."""
        assert self._handle is not None, "acquire() first"
        return self._handle.fileno()

    def close(self) -> None:
        """Close this process's descriptor without unlocking: a child given `fileno` keeps the
        lock until it exits."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def default_lock_path(port: int) -> Path:
    return Path(tempfile.gettempdir()) / f"clfserve-staleness-{port}.lock"


@dataclass(eq=False)
class StalenessScheduler:
    """Runs ``monitor`` on ``schedule`` (and once after ``initial_delay_s``) in this loop."""

    monitor: StalenessMonitor
    schedule: Schedule
    initial_delay_s: float | None
    mode: Mode
    workers: int
    lock_path: InitVar[Path]
    cluster: ClusterSchedule | None = None
    lock: ScheduleLock = field(init=False)
    detail: str = field(init=False, default="not started")
    _scheduler: AsyncIOScheduler | None = field(init=False, default=None, repr=False)

    def __post_init__(self, lock_path: Path) -> None:
        self.lock = ScheduleLock(lock_path)

    @property
    def running(self) -> bool:
        return self._scheduler is not None and bool(self._scheduler.running)

    def next_run_at(self) -> str | None:
        if self._scheduler is None:
            return None
        times = [job.next_run_time for job in self._scheduler.get_jobs() if job.next_run_time]
        return min(times).isoformat(timespec="seconds") if times else None

    def _owns_schedule(self) -> bool:
        if self.mode == "off":
            self.detail = "off (CLFSERVE_SCHEDULER=off): evaluations run on POST /admin/evaluate"
            return False
        if self.mode == "on" or self.workers == 1 or self.cluster is not None:
            return True
        if self.lock.acquire():
            return True
        self.detail = f"another worker process runs the schedule (lock {self.lock.path})"
        return False

    def start(self) -> bool:
        """Start in the running event loop; False when this process does not run the schedule."""
        if not self._owns_schedule():
            log.info("staleness schedule not run by process %d: %s", os.getpid(), self.detail)
            return False
        scheduler = AsyncIOScheduler()
        defaults: dict[str, Any] = {"max_instances": 1, "coalesce": True,
                                    "misfire_grace_time": None}  # fmt: skip
        scheduler.add_job(self._job, self._trigger(), args=["scheduled"], id=JOB_ID, **defaults)
        if self.initial_delay_s is not None:
            when = datetime.now().astimezone() + timedelta(seconds=self.initial_delay_s)
            scheduler.add_job(
                self._job, DateTrigger(when), args=["startup"], id=f"{JOB_ID}-startup", **defaults
            )
        scheduler.start()
        self._scheduler = scheduler
        self.detail = f"{self.schedule} in process {os.getpid()}"
        if self.cluster is not None:
            self.detail += (
                f"; every replica schedules, one claims each run in Redis "
                f"({self.cluster.link.key('staleness', 'claim')}:*)"
            )
        log.info("staleness monitor scheduled: %s, first run at %s", self.schedule,
                 self.next_run_at())  # fmt: skip
        return True

    def stop(self) -> None:
        if self._scheduler is not None:
            if self._scheduler.running:
                self._scheduler.shutdown(wait=False)
            self._scheduler = None
        self.lock.release()
        self.detail = "stopped"

    def _trigger(self) -> IntervalTrigger | CronTrigger:
        if self.schedule.cron is not None:
            return CronTrigger.from_crontab(self.schedule.cron)
        assert self.schedule.seconds is not None
        if self.cluster is None:
            return IntervalTrigger(seconds=self.schedule.seconds)
        # On the clock's multiples of the interval, the same instants on every replica.
        start = datetime.fromtimestamp(self.cluster.first_fire_at(self.cluster.clock()), UTC)
        return IntervalTrigger(seconds=self.schedule.seconds, start_date=start)

    async def _job(self, trigger: Trigger) -> None:
        await self.run(trigger)

    async def run(self, trigger: Trigger) -> bool:
        """Evaluate now unless another replica claimed this run; True when it evaluated."""
        if self.cluster is not None and not await self.cluster.claim(trigger, self._serving()):
            await self.cluster.sync(self.monitor)  # show the latest shared result here too
            return False
        await self.monitor.run(trigger)  # never raises: failures become error records
        return True

    def _serving(self) -> ModelInfo | None:
        try:
            return self.monitor.gateway.current()
        except ClfserveError:
            return None
