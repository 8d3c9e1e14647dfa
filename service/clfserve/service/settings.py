"""Everything the service can be told, each setting declared once (see `envsettings`).

`Settings` is parsed once, at the edge (`clfserve serve`, or `create_app_from_env`); the rest of
the service reads the frozen object. Standard library only (plus the registry's URI parser), so
`clfserve serve --help` stays quick.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from clfserve.registry.errors import RegistryError
from clfserve.registry.uri import DEFAULT_MODEL_URI, is_registry_uri, parse_model_uri
from clfserve.service.envsettings import (
    DAY_S,
    IPNetwork,
    SettingsError,
    above,
    at_least,
    between,
    choice,
    describe,
    group,
    load,
    markdown_table,
    not_blank,
    optional,
    parse_bool,
    parse_duration,
    parse_float,
    parse_int,
    parse_networks,
    parse_str,
    setting,
    validate,
)

Device = Literal["auto", "cpu", "cuda"]
RateUnit = Literal["second", "minute", "hour", "day"]
RateFallback = Literal["local", "open", "closed"]
VARIANTS = ("int8", "fp32", "fp16")
"""The ONNX variants an export writes."""
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

__all__ = [
    "Device",
    "IPNetwork",
    "Metric",
    "Mode",
    "RateLimit",
    "Schedule",
    "Settings",
    "SettingsError",
    "StalenessSettings",
]


@dataclass(frozen=True)
class RateLimit:
    """``count`` requests per ``unit`` and client address."""

    count: int
    unit: RateUnit

    def __str__(self) -> str:
        return f"{self.count}/{self.unit}"


_RATE = re.compile(r"^(\d+)\s*/\s*(second|minute|hour|day|s|sec|min|m|h|d)s?$", re.IGNORECASE)
_UNITS: dict[str, RateUnit] = {"s": "second", "sec": "second", "min": "minute", "m": "minute",
                               "h": "hour", "d": "day"}  # fmt: skip


def parse_rate_limit(raw: str) -> RateLimit | None:
    """``100/minute`` (also ``10/s``, ``5000/hour``, ``1/day``); ``off`` disables."""
    if raw.lower() in {"off", "none", "disabled", "0"}:
        return None
    match = _RATE.match(raw)
    if not match:
        raise ValueError("expected COUNT/UNIT with UNIT second, minute, hour or day, or off")
    count, unit = int(match.group(1)), match.group(2).lower()
    if count < 1:
        raise ValueError("the count must be >= 1 (use off to disable)")
    return RateLimit(count, _UNITS.get(unit, cast(RateUnit, unit)))


def parse_run_cost(raw: str) -> float | Literal["auto"] | None:
    """``auto``, ``off`` (None: fixed chunks of the batch size) or padded tokens >= 0."""
    lowered = raw.lower()
    if lowered == "auto":
        return "auto"
    if lowered in {"off", "none"}:
        return None
    value = parse_float(raw)
    if value < 0:
        raise ValueError("expected auto, off or a number of tokens >= 0")
    return value


def valid_model_uri(value: Any) -> str | None:
    """A local folder (checked when loading) or a well-formed ``models:/`` URI."""
    if not str(value).strip():
        return "must not be empty"
    if is_registry_uri(value):
        try:
            parse_model_uri(value)
        except RegistryError as exc:
            return str(exc).split(": ", 1)[-1]
    return None


REDIS_SCHEMES = ("redis", "rediss", "unix")


def valid_redis_url(value: Any) -> str | None:
    scheme, sep, rest = str(value).partition("://")
    if value is None or (sep and rest and scheme.lower() in REDIS_SCHEMES):
        return None
    return "expected redis://HOST:PORT/DB, rediss://HOST:PORT/DB or unix:///PATH"


def valid_database_url(value: Any) -> str | None:
    scheme, sep, _ = str(value).partition("://")
    if value is None or (sep and scheme):
        return None
    return "expected an SQLAlchemy URL: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"


def valid_log_level(value: Any) -> str | None:
    return None if value in LOG_LEVELS else f"expected one of {', '.join(LOG_LEVELS)}"


def valid_port(value: Any) -> str | None:
    return None if 0 < value < 65536 else "not a TCP port"


# The staleness monitor's settings: a group of `Settings`, shown in a table of their own.

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


# The service's own settings.

_AUTO = ("auto", "none")


@dataclass(frozen=True)
class Settings:
    """What the service is told; build it with `Settings.from_env`."""

    model_uri: str = setting(
        "CLFSERVE_MODEL_URI", DEFAULT_MODEL_URI, parse_str,
        "`models:/NAME@ALIAS` or `models:/NAME/VERSION` resolved through MLflow, or a local "
        "artefact folder", check=valid_model_uri, option="--model-uri",
    )  # fmt: skip
    reload_interval_s: float | None = setting(
        "CLFSERVE_RELOAD_INTERVAL", 30.0, optional(parse_duration, "off", "none", "never"),
        "with a `models:/NAME@ALIAS` URI, how often to check where the alias points and follow "
        "it (seconds, `30s`, `5m`), or `off`", check=above(0),
    )  # fmt: skip
    device: Device = setting(
        "CLFSERVE_DEVICE", "auto", choice("auto", "cpu", "cuda"),
        "`auto` (CUDA when obtained, else CPU), `cpu`, or `cuda` (fail unless CUDA)",
        option="--device",
    )  # fmt: skip
    variant: str | None = setting(
        "CLFSERVE_VARIANT", None, optional(choice(*VARIANTS), *_AUTO),
        "ONNX variant, `int8`, `fp32` or `fp16`; auto: int8 on CPU, fp16 on CUDA (each where "
        "the artefact has it, else fp32)",
        option="--variant", shown="auto",
    )  # fmt: skip
    threads: int | None = setting(
        "CLFSERVE_THREADS", None, optional(parse_int, *_AUTO),
        "ONNX Runtime intra-op threads per model call; auto: usable CPUs / (workers x "
        "inference workers)",
        check=at_least(1), option="--threads", shown="auto",
    )  # fmt: skip
    thread_spinning: bool = setting(
        "CLFSERVE_THREAD_SPINNING", False, parse_bool,
        "idle ONNX Runtime intra-op threads busy-wait for work (`true`, its own default) or "
        "sleep; measured in one process (int8 default model, 2 threads, 2 shared vCPUs, 5 "
        "alternated rounds): with a busy Python thread beside the calls, as an event loop, off "
        "ran micro-batches of 32 1.7x as fast and that thread made 1.4x the progress; idle, off "
        "spent 4.2 instead of 8.2 CPU ms per text",
    )  # fmt: skip
    batch_size: int | None = setting(
        "CLFSERVE_BATCH_SIZE", None, optional(parse_int, *_AUTO),
        "rows per ONNX Runtime run, the one row budget: micro-batches, `/batch_predict` and "
        "evaluations are length-sorted and cut to it; auto: 8 on CPU (larger chunks only add "
        "padding), 64 on CUDA",
        check=at_least(1), shown="auto",
    )  # fmt: skip
    run_cost: float | Literal["auto"] | None = setting(
        "CLFSERVE_RUN_COST", "auto", parse_run_cost,
        "what one more ONNX Runtime run is worth, in padded tokens: the length-sorted texts are "
        "cut into chunks where the padding saved outweighs a run; auto: 8 on CPU (measured: "
        "~0.47 ms a run, ~0.07 ms a token), `off` on CUDA; `off` cuts every batch size rows",
    )  # fmt: skip
    microbatch: bool = setting(
        "CLFSERVE_MICROBATCH", True, parse_bool,
        "coalesce concurrent `/predict` texts into model calls of up to the batch size",
    )  # fmt: skip
    microbatch_max_wait_ms: float = setting(
        "CLFSERVE_MICROBATCH_MAX_WAIT_MS", 1.0, parse_float,
        "under load only: ms a forming micro-batch waits to fill; an idle queue never waits",
        check=at_least(0),
    )  # fmt: skip
    inference_workers: int | None = setting(
        "CLFSERVE_INFERENCE_WORKERS", None, optional(parse_int, *_AUTO),
        "model calls running at once, in threads off the event loop; auto: on CPU 2 when the "
        "process has 2 or more CPUs, the threads split between them, else 1, plus one spare "
        "call when that leaves each call one thread (3 on 2 vCPUs); on CUDA 1 (on an H200, 2 "
        "gave `/batch_predict` 1.23x the texts/s but `/predict` 0.81x the req/s). Measured on 2 "
        "vCPUs: 2 "
        "calls x 1 thread against 1 call on 2 threads, 1.39-1.47x the `/predict` req/s at 64 "
        "connections and lone requests at 3.6-4.9 ms p50 against 4.6-5.6; the spare call, "
        "1.04-1.14x at 64 connections and 1.02x at 16 in runs of one server at a time, "
        "0.94x and 1.06x in two runs of servers side by side taking turns",
        check=at_least(1), shown="auto",
    )  # fmt: skip
    max_queue: int = setting(
        "CLFSERVE_MAX_QUEUE", 1024, parse_int,
        "texts waiting for the model before `/predict` answers 503", check=at_least(1),
    )  # fmt: skip
    cache_enabled: bool = setting("CLFSERVE_CACHE", True, parse_bool, "prediction cache on/off")
    cache_size: int = setting(
        "CLFSERVE_CACHE_SIZE", 10_000, parse_int, "most cached predictions (LRU)",
        check=at_least(1),
    )  # fmt: skip
    cache_ttl_s: float = setting(
        "CLFSERVE_CACHE_TTL", 3600.0, parse_duration, "seconds a cached prediction stays valid",
        check=above(0),
    )  # fmt: skip
    rate_limit: RateLimit | None = setting(
        "CLFSERVE_RATE_LIMIT", RateLimit(600, "minute"), parse_rate_limit,
        "per client address, COUNT/UNIT (second, minute, hour, day), or `off`",
        option="--rate-limit",
    )  # fmt: skip
    trusted_proxies: tuple[IPNetwork, ...] = setting(
        "CLFSERVE_TRUSTED_PROXIES", (), parse_networks,
        "comma-separated proxy IPs/CIDRs whose `X-Forwarded-For` is believed",
    )  # fmt: skip
    max_text_chars: int = setting(
        "CLFSERVE_MAX_TEXT_CHARS", 10_000, parse_int, "longest text, in characters",
        check=at_least(1),
    )  # fmt: skip
    max_batch_items: int = setting(
        "CLFSERVE_MAX_BATCH_ITEMS", 256, parse_int, "most texts per `/batch_predict`",
        check=at_least(1),
    )  # fmt: skip
    max_body_bytes: int = setting(
        "CLFSERVE_MAX_BODY_BYTES", 4 * 1024 * 1024, parse_int,
        "largest request body in bytes (413 above)", check=at_least(1),
    )  # fmt: skip
    host: str = setting("CLFSERVE_HOST", "0.0.0.0", parse_str, "bind address", option="--host")
    port: int = setting(
        "CLFSERVE_PORT", 5000, parse_int, "bind port", check=valid_port, option="--port"
    )
    workers: int = setting(
        "CLFSERVE_WORKERS", 1, parse_int,
        "server processes (each has its own model; cache, rate-limit counters and schedule "
        "are per process unless `CLFSERVE_REDIS_URL` shares them)",
        check=at_least(1), option="--workers",
    )  # fmt: skip
    graceful_timeout_s: float = setting(
        "CLFSERVE_GRACEFUL_TIMEOUT", 30.0, parse_duration,
        "seconds in-flight requests get to finish on shutdown (SIGTERM)", check=at_least(0),
    )  # fmt: skip
    log_level: str = setting(
        "CLFSERVE_LOG_LEVEL", "info", choice(*LOG_LEVELS),
        "critical, error, warning, info or debug", check=valid_log_level, option="--log-level",
    )  # fmt: skip
    access_log: bool = setting(
        "CLFSERVE_ACCESS_LOG", False, parse_bool,
        "one log line per request (costs throughput)",
    )  # fmt: skip
    admin_token: str | None = setting(
        "CLFSERVE_ADMIN_TOKEN", None, optional(parse_str, "off", "none"),
        "Bearer token for `POST /admin/evaluate` and `POST /admin/reload`; unset = admin routes "
        "disabled (404)",
    )  # fmt: skip
    feedback_db: str | None = setting(
        "CLFSERVE_FEEDBACK_DB", None, optional(parse_str, "default"),
        "SQLAlchemy URL of the production labels `POST /feedback` stores (and the staleness "
        "monitor scores); replicas share one with `postgresql+psycopg://USER:PASSWORD@HOST/DB` "
        "(the driver must be installed)", check=valid_database_url, shown="`<home>/feedback.db`",
    )  # fmt: skip
    feedback_token: str | None = setting(
        "CLFSERVE_FEEDBACK_TOKEN", None, optional(parse_str, "off", "none"),
        "Bearer token `POST /feedback` requires (401 without it); unset = anyone may post",
        shown="off",
    )  # fmt: skip
    prediction_id_key: str | None = setting(
        "CLFSERVE_PREDICTION_ID_KEY", None, optional(parse_str, "off", "none"),
        "secret that signs `prediction_id`s (give every replica the same); unset = a built-in "
        "key: edited ids are refused, but anyone could mint one", shown="built-in",
    )  # fmt: skip
    redis_url: str | None = setting(
        "CLFSERVE_REDIS_URL", None, optional(parse_str, "off", "none"),
        "shared state: `redis://HOST:6379/0` (or `rediss://`, `unix://`); every process naming "
        "it shares one rate-limit budget per client, one prediction cache and one staleness "
        "schedule; unset = each process keeps its own", check=valid_redis_url, shown="off",
    )  # fmt: skip
    redis_prefix: str = setting(
        "CLFSERVE_REDIS_PREFIX", "clfserve", parse_str,
        "prefix of every key in Redis: processes with the same URL and prefix are one service",
        check=not_blank,
    )  # fmt: skip
    redis_timeout_s: float = setting(
        "CLFSERVE_REDIS_TIMEOUT", 0.5, parse_duration,
        "seconds one Redis operation may take (connect, then answer) before the process uses "
        "its local state", check=above(0),
    )  # fmt: skip
    redis_retry_s: float = setting(
        "CLFSERVE_REDIS_RETRY", 2.0, parse_duration,
        "while Redis is unreachable, seconds between reconnection probes", check=above(0),
    )  # fmt: skip
    rate_limit_fallback: RateFallback = setting(
        "CLFSERVE_RATE_LIMIT_FALLBACK", "local", choice("local", "open", "closed"),
        "while Redis is unreachable: `local` (each process counts for itself, so N processes "
        "admit up to N x the limit), `open` (no limit) or `closed` (limited routes answer 429)",
    )  # fmt: skip
    shared_cache_size: int = setting(
        "CLFSERVE_SHARED_CACHE_SIZE", 100_000, parse_int,
        "most predictions cached in Redis (slots of a direct-mapped cache, each expiring after "
        "`CLFSERVE_CACHE_TTL`); the in-process cache stays in front of it", check=at_least(1),
    )  # fmt: skip
    staleness: StalenessSettings = group(StalenessSettings)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], overrides: Mapping[str, str] | None = None
    ) -> Settings:
        """Parse every ``CLFSERVE_*`` variable in ``env`` (``overrides`` win); unknown keys
        are ignored. Raises `SettingsError` naming the variable."""
        return load(cls, env, overrides)

    def replace(self, **changes: Any) -> Settings:
        """A checked copy with ``changes`` applied (tests, embedding)."""
        return validate(dataclasses.replace(self, **changes))


def describe_env() -> str:
    """The ``--help`` epilog: every variable, its default and meaning."""
    return (
        describe(Settings, "environment (CLI options override them):")
        + "\n\n"
        + describe(StalenessSettings, "staleness monitor environment:")
    )


def markdown_tables() -> str:
    """The README's two settings tables, derived from the declarations (a test compares them)."""
    return f"{markdown_table(Settings)}\n\n{markdown_table(StalenessSettings)}\n"
