"""Staleness monitor settings, declared once each like the service's (see `envsettings`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from clfserve.service.envsettings import (
    DAY_S,
    above,
    at_least,
    between,
    choice,
    optional,
    parse_bool,
    parse_duration,
    parse_float,
    parse_int,
    parse_str,
    setting,
    validate,
)

Metric = Literal["f1", "accuracy"]
Mode = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class Schedule:
    """Either every ``seconds`` or a 5-field ``cron`` expression (exactly one is set)."""

    seconds: float | None = None
    cron: str | None = None

    def __str__(self) -> str:
        return f"cron '{self.cron}'" if self.cron is not None else f"every {self.seconds:g} s"


_NAMED = {"daily": DAY_S, "hourly": 3600.0}


def parse_schedule(raw: str) -> Schedule:
    """Seconds (``3600``, ``30s``, ``15m``, ``6h``, ``1d``), ``daily``/``hourly``, or a 5-field
    cron expression."""
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
        seconds = parse_duration(raw)
    except ValueError:
        raise ValueError(
            "expected seconds (3600, 30s, 15m, 6h, 1d), daily, hourly or a 5-field cron "
            "expression such as '0 3 * * *'"
        ) from None
    if seconds <= 0:
        raise ValueError("must be > 0 seconds")
    return Schedule(seconds=seconds)


def parse_metric(raw: str) -> Metric:
    lowered = raw.lower().replace("macro_f1", "f1").replace("macro-f1", "f1")
    if lowered == "f1":
        return "f1"
    if lowered == "accuracy":
        return "accuracy"
    raise ValueError("expected f1 or accuracy")


_MODE_ALIASES = {"true": "on", "1": "on", "yes": "on", "false": "off", "0": "off", "no": "off"}


def parse_mode(raw: str) -> Mode:
    lowered = _MODE_ALIASES.get(raw.lower(), raw.lower())
    parsed: Any = choice("auto", "on", "off")(lowered)
    return parsed  # type: ignore[no-any-return]


def positive_interval(value: Any) -> str | None:
    ok = value.cron is not None or (value.seconds is not None and value.seconds > 0)
    return None if ok else "must be > 0 seconds"


def parse_arguments(raw: str) -> tuple[str, ...]:
    """Command-line arguments, split as a POSIX shell would."""
    import shlex

    try:
        return tuple(shlex.split(raw))
    except ValueError as exc:
        raise ValueError(f"cannot split into arguments ({exc})") from None


def http_url(value: Any) -> str | None:
    ok = value is None or str(value).startswith(("http://", "https://"))
    return None if ok else "not an http(s) URL"


def parse_feedback_last(raw: str) -> int | None:
    """A count, ``all`` (None: every row) or ``off`` (0: no feedback evaluation)."""
    lowered = raw.lower()
    if lowered == "off":
        return 0
    return None if lowered == "all" else parse_int(raw)


@dataclass(frozen=True)
class StalenessSettings:
    """Everything the staleness monitor can be told."""

    enabled: bool = setting(
        "CLFSERVE_STALENESS_ENABLED", True, parse_bool,
        "monitor on/off (`GET /staleness`, gauges, schedule)",
    )  # fmt: skip
    interval: Schedule = setting(
        "CLFSERVE_STALENESS_INTERVAL", Schedule(seconds=DAY_S), parse_schedule,
        "seconds, `30s`/`15m`/`6h`/`1d`, `hourly`, `daily`, or a 5-field cron (`0 3 * * *`; "
        "weekdays by name)", check=positive_interval, shown="daily",
    )  # fmt: skip
    initial_delay_s: float | None = setting(
        "CLFSERVE_STALENESS_INITIAL_DELAY", 30.0, optional(parse_duration, "off", "none", "never"),
        "seconds after the model loads before the first run, or `off`", check=at_least(0),
    )  # fmt: skip
    validation_data: str | None = setting(
        "CLFSERVE_VALIDATION_DATA", None, optional(parse_str, "model"),
        "the model's own validation split (written into its artefact by export); "
        "`rotten_tomatoes` for that dataset's split; or a CSV/JSONL (`text,label`) re-read at "
        "every run, so operators can keep it filled with freshly labelled production samples",
        shown="model",
    )  # fmt: skip
    feedback_last: int | None = setting(
        "CLFSERVE_STALENESS_FEEDBACK_LAST", 500, parse_feedback_last,
        "also evaluate on the newest N production labels (`POST /feedback`), `all`, or `off` "
        "(no feedback evaluation)", check=at_least(0),
    )  # fmt: skip
    feedback_days: float | None = setting(
        "CLFSERVE_STALENESS_FEEDBACK_DAYS", None, optional(parse_float, "off", "none"),
        "only production labels received in the last D days (with `..._FEEDBACK_LAST`: the "
        "newest N of those)", check=above(0), shown="off",
    )  # fmt: skip
    feedback_min: int = setting(
        "CLFSERVE_STALENESS_FEEDBACK_MIN", 50, parse_int,
        "fewest production labels the feedback evaluation needs; with fewer it is skipped and "
        "says so", check=at_least(1),
    )  # fmt: skip
    metric: Metric = setting(
        "CLFSERVE_STALENESS_METRIC", "f1", parse_metric, "macro `f1` or `accuracy`"
    )
    threshold: float = setting(
        "CLFSERVE_STALENESS_THRESHOLD", 0.8, parse_float, "stale below this",
        check=between(0, 1),
    )  # fmt: skip
    history: int = setting(
        "CLFSERVE_STALENESS_HISTORY", 20, parse_int, "results kept for `/staleness`",
        check=at_least(1),
    )  # fmt: skip
    alert_webhook: str | None = setting(
        "CLFSERVE_ALERT_WEBHOOK", None, optional(parse_str, "off", "none"),
        "URL that gets a JSON POST when the model turns stale", check=http_url,
    )  # fmt: skip
    alert_timeout_s: float = setting(
        "CLFSERVE_ALERT_TIMEOUT", 5.0, parse_duration, "seconds the webhook POST may take",
        check=above(0),
    )  # fmt: skip
    tracking: Mode = setting(
        "CLFSERVE_STALENESS_TRACKING", "auto", parse_mode,
        "MLflow logging `on`, `off` or `auto` (on for `models:/` URIs or with "
        "`MLFLOW_TRACKING_URI`)",
    )  # fmt: skip
    tracking_timeout_s: float = setting(
        "CLFSERVE_STALENESS_TRACKING_TIMEOUT", 30.0, parse_duration,
        "seconds MLflow may take before the run counts as an error", check=above(0),
    )  # fmt: skip
    experiment: str = setting(
        "CLFSERVE_STALENESS_EXPERIMENT", "clfserve-staleness", parse_str,
        "MLflow experiment of the runs",
    )  # fmt: skip
    scheduler: Mode = setting(
        "CLFSERVE_SCHEDULER", "auto", parse_mode,
        "`auto`: with `CLFSERVE_REDIS_URL`, every replica schedules and one claims each run "
        "in Redis; without, with `--workers N` one process (the one holding a file lock) runs "
        "it; `on` runs it in every process; `off` leaves it to a separate instance",
    )  # fmt: skip
    drift_window: int | None = setting(
        "CLFSERVE_DRIFT_WINDOW", 2000, optional(parse_int, "off", "none", "0"),
        "label-free drift: the last N model answers of each replica are compared with the "
        "model's reference (`drift` in `GET /staleness`), or `off`", check=at_least(1),
    )  # fmt: skip
    drift_min_samples: int = setting(
        "CLFSERVE_DRIFT_MIN_SAMPLES", 200, parse_int,
        "answers in the window (all replicas together) before a drift verdict",
        check=at_least(1),
    )  # fmt: skip
    drift_threshold: float = setting(
        "CLFSERVE_DRIFT_THRESHOLD", 0.2, parse_float,
        "drifted when the population stability index of any signal is above this (0.1 "
        "moderate, 0.2 significant shift)", check=above(0),
    )  # fmt: skip
    drift_interval_s: float = setting(
        "CLFSERVE_DRIFT_INTERVAL", 30.0, parse_duration,
        "seconds between drift checks (gauges, shared window in Redis, alert)",
        check=above(0),
    )  # fmt: skip

    retrain_on_stale: bool = setting(
        "CLFSERVE_RETRAIN_ON_STALE", False, parse_bool,
        "on a stale verdict, launch `clfserve retrain` for the served `models:/NAME@ALIAS` as a "
        "separate process (one at a time per host; its exit is logged)",
    )  # fmt: skip
    retrain_args: tuple[str, ...] = setting(
        "CLFSERVE_RETRAIN_ARGS", (), parse_arguments,
        "extra arguments of that `clfserve retrain`, shell-quoted (`--max-train-samples 2000`)",
        shown="none",
    )  # fmt: skip

    def replace(self, **changes: Any) -> StalenessSettings:
        """A checked copy with ``changes`` (tests)."""
        return validate(dataclasses.replace(self, **changes))
