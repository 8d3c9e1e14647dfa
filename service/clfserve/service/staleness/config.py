"""Staleness monitor settings: one frozen dataclass parsed once from ``CLFSERVE_*`` variables.

Standard library only, so `clfserve serve --help` can list the variables without importing
APScheduler or MLflow.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from clfserve.service.settings import (
    SettingsError,
    describe_vars,
    parse_bool,
    parse_env,
    parse_float,
    parse_optional_str,
)

Metric = Literal["f1", "accuracy"]
SchedulerMode = Literal["auto", "on", "off"]
TrackingMode = Literal["auto", "on", "off"]

DEFAULT_VALIDATION_DATA = "rotten_tomatoes"
"""The validation split of the default dataset (``clfserve.runtime.data.load_split``)."""
DAY_S = 86_400.0


@dataclass(frozen=True)
class Schedule:
    """Either every ``seconds`` or a 5-field ``cron`` expression (exactly one is set)."""

    seconds: float | None = None
    cron: str | None = None

    def __str__(self) -> str:
        return f"cron '{self.cron}'" if self.cron is not None else f"every {self.seconds:g} s"


@dataclass(frozen=True)
class StalenessSettings:
    """Everything the staleness monitor can be told; build it with `from_env`."""

    enabled: bool = True
    """Install the monitor (routes, gauges, schedule) in the service."""
    scheduler: SchedulerMode = "auto"
    """Run the schedule in this process: ``on``, ``off``, or ``auto`` (exactly one process of a
    ``--workers N`` server takes a file lock and runs it; the others only serve)."""
    interval: Schedule = Schedule(seconds=DAY_S)
    """How often to re-evaluate: seconds (``3600``, ``30s``, ``15m``, ``6h``, ``1d``, ``daily``,
    ``hourly``) or a 5-field cron expression (``0 3 * * *``)."""
    initial_delay_s: float | None = 30.0
    """Seconds after the model is loaded before a first evaluation; None (``off``) skips it."""
    validation_data: str = DEFAULT_VALIDATION_DATA
    """``rotten_tomatoes`` (its validation split) or a CSV/JSONL path with ``text,label``,
    re-read at every evaluation."""
    metric: Metric = "f1"
    """Metric compared with the threshold: ``f1`` (macro) or ``accuracy``."""
    threshold: float = 0.8
    """The model is stale when the metric is below this."""
    history: int = 20
    """Evaluations kept in memory for ``GET /staleness``."""
    alert_webhook: str | None = None
    """URL that gets a JSON POST when the verdict turns stale."""
    alert_timeout_s: float = 5.0
    """Seconds the webhook POST may take."""
    admin_token: str | None = None
    """Bearer token of ``POST /admin/evaluate``; None disables admin routes (404)."""
    tracking: TrackingMode = "auto"
    """Log evaluations to MLflow: ``on``, ``off``, or ``auto`` (on when the model came from the
    registry or ``MLFLOW_TRACKING_URI`` is set)."""
    tracking_timeout_s: float = 30.0
    """Most seconds the MLflow logging of one evaluation may take before it counts as failed."""
    experiment: str = "clfserve-staleness"
    """MLflow experiment that holds the evaluation runs."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StalenessSettings:
        """Parse the staleness ``CLFSERVE_*`` variables of ``env``; unknown keys are ignored."""
        return cls(**parse_env(ENV_VARS, env)).validated()

    def validated(self) -> StalenessSettings:
        if not 0.0 <= self.threshold <= 1.0:
            raise SettingsError(f"CLFSERVE_STALENESS_THRESHOLD={self.threshold}: must be in [0, 1]")
        if self.history < 1:
            raise SettingsError("CLFSERVE_STALENESS_HISTORY: must be >= 1")
        if self.interval.seconds is not None and self.interval.seconds <= 0:
            raise SettingsError("CLFSERVE_STALENESS_INTERVAL: must be > 0 seconds")
        if self.initial_delay_s is not None and self.initial_delay_s < 0:
            raise SettingsError("CLFSERVE_STALENESS_INITIAL_DELAY: must be >= 0 seconds or off")
        if self.alert_timeout_s <= 0 or self.tracking_timeout_s <= 0:
            raise SettingsError("CLFSERVE_ALERT_TIMEOUT / CLFSERVE_STALENESS_TRACKING_TIMEOUT > 0")
        if self.alert_webhook is not None and not self.alert_webhook.startswith(
            ("http://", "https://")
        ):
            raise SettingsError(
                f"CLFSERVE_ALERT_WEBHOOK={self.alert_webhook!r}: not an http(s) URL"
            )
        return self

    def replace(self, **changes: Any) -> StalenessSettings:
        """A validated copy with ``changes`` (for tests)."""
        return dataclasses.replace(self, **changes).validated()


# -- parsers ---------------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?$", re.IGNORECASE)
_UNIT_S = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": DAY_S}
_NAMED = {"daily": DAY_S, "hourly": 3600.0}


def parse_duration(raw: str) -> float:
    """``90``, ``30s``, ``15m``, ``6h``, ``1d`` -> seconds."""
    match = _DURATION.match(raw.strip())
    if not match:
        raise ValueError("expected seconds, e.g. 30, 30s, 15m, 6h or 1d")
    return float(match.group(1)) * _UNIT_S[(match.group(2) or "s").lower()]


def parse_schedule(raw: str) -> Schedule:
    """Seconds (see `parse_duration`), ``daily``/``hourly``, or a 5-field cron expression."""
    lowered = raw.strip().lower()
    if lowered in _NAMED:
        return Schedule(seconds=_NAMED[lowered])
    if len(raw.split()) == 5:
        from apscheduler.triggers.cron import CronTrigger  # checked here, at the edge

        try:
            CronTrigger.from_crontab(raw)
        except ValueError as exc:
            raise ValueError(f"invalid cron expression ({exc})") from None
        return Schedule(cron=" ".join(raw.split()))
    try:
        return Schedule(seconds=parse_duration(raw))
    except ValueError:
        raise ValueError(
            "expected seconds (3600, 30s, 15m, 6h, 1d), daily, hourly or a 5-field cron "
            "expression such as '0 3 * * *'"
        ) from None


def parse_delay(raw: str) -> float | None:
    return None if raw.lower() in {"off", "none", "never"} else parse_duration(raw)


def parse_metric(raw: str) -> Metric:
    lowered = raw.lower().replace("macro_f1", "f1").replace("macro-f1", "f1")
    if lowered not in ("f1", "accuracy"):
        raise ValueError("expected f1 or accuracy")
    return cast(Metric, lowered)


def parse_mode(raw: str) -> SchedulerMode:
    lowered = raw.lower()
    aliases = {"true": "on", "1": "on", "yes": "on", "false": "off", "0": "off", "no": "off"}
    lowered = aliases.get(lowered, lowered)
    if lowered not in ("auto", "on", "off"):
        raise ValueError("expected auto, on or off")
    return cast(SchedulerMode, lowered)


def parse_int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("expected a whole number") from None


@dataclass(frozen=True)
class EnvVar:
    name: str
    field: str
    parse: Callable[[str], Any]
    help: str
    default: str


ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("CLFSERVE_STALENESS_ENABLED", "enabled", parse_bool,
           "staleness monitor on/off (GET /staleness, gauges, schedule)", "true"),
    EnvVar("CLFSERVE_SCHEDULER", "scheduler", parse_mode,
           "run the evaluation schedule in this process: on, off, or auto (one worker of N "
           "takes a file lock and runs it)", "auto"),
    EnvVar("CLFSERVE_STALENESS_INTERVAL", "interval", parse_schedule,
           "seconds (30s, 15m, 6h, 1d), daily, hourly, or a 5-field cron expression", "daily"),
    EnvVar("CLFSERVE_STALENESS_INITIAL_DELAY", "initial_delay_s", parse_delay,
           "seconds after the model loads before a first evaluation, or off", "30"),
    EnvVar("CLFSERVE_VALIDATION_DATA", "validation_data", str,
           "rotten_tomatoes (validation split) or a CSV/JSONL path (text,label), re-read each "
           "run", DEFAULT_VALIDATION_DATA),
    EnvVar("CLFSERVE_STALENESS_METRIC", "metric", parse_metric, "f1 (macro) or accuracy", "f1"),
    EnvVar("CLFSERVE_STALENESS_THRESHOLD", "threshold", parse_float,
           "stale when the metric is below this", "0.8"),
    EnvVar("CLFSERVE_STALENESS_HISTORY", "history", parse_int,
           "evaluations kept for GET /staleness", "20"),
    EnvVar("CLFSERVE_ALERT_WEBHOOK", "alert_webhook", parse_optional_str,
           "URL that gets a JSON POST when the model turns stale", "off"),
    EnvVar("CLFSERVE_ALERT_TIMEOUT", "alert_timeout_s", parse_duration,
           "seconds the webhook POST may take", "5"),
    EnvVar("CLFSERVE_ADMIN_TOKEN", "admin_token", parse_optional_str,
           "bearer token of POST /admin/evaluate; unset disables admin routes", "off"),
    EnvVar("CLFSERVE_STALENESS_TRACKING", "tracking", parse_mode,
           "log evaluations to MLflow: on, off, or auto (registry model or MLFLOW_TRACKING_URI "
           "set)", "auto"),
    EnvVar("CLFSERVE_STALENESS_TRACKING_TIMEOUT", "tracking_timeout_s", parse_duration,
           "seconds MLflow logging may take before the evaluation is reported failed", "30"),
    EnvVar("CLFSERVE_STALENESS_EXPERIMENT", "experiment", str,
           "MLflow experiment of the evaluation runs", "clfserve-staleness"),
)  # fmt: skip


def describe_env() -> str:
    """The staleness part of ``clfserve serve --help``."""
    return describe_vars("staleness monitor environment:", ENV_VARS)
