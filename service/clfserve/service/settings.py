"""Service settings: one frozen dataclass, parsed once from ``CLFSERVE_*`` variables at the edge.

This module imports only the standard library, so `clfserve serve --help` can list the variables
without loading Litestar, MLflow or ONNX Runtime.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

Device = Literal["auto", "cpu", "cuda"]
RateUnit = Literal["second", "minute", "hour", "day"]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_MODEL_URI = "models:/clfserve-sentiment@champion"


class SettingsError(ValueError):
    """A ``CLFSERVE_*`` variable (or CLI override) has a value the service cannot use."""


@dataclass(frozen=True)
class RateLimit:
    """``count`` requests per ``unit`` and client address."""

    count: int
    unit: RateUnit

    def __str__(self) -> str:
        return f"{self.count}/{self.unit}"


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told; build it with `Settings.from_env`."""

    model_uri: str = DEFAULT_MODEL_URI
    """``models:/NAME@ALIAS`` (or ``models:/NAME/VERSION``) resolved through MLflow, or a local
    artefact folder."""
    device: Device = "auto"
    """``auto`` (CUDA when obtained, else CPU), ``cpu`` or ``cuda`` (fail unless CUDA)."""
    variant: str | None = None
    """ONNX variant to run (``int8``, ``fp32``); None lets the runtime pick for the device."""
    threads: int | None = None
    """ONNX Runtime intra-op threads per session; None splits the usable CPUs between
    ``workers`` x ``inference_workers``."""
    batch_size: int | None = None
    """Rows per ONNX Runtime call (texts are length-sorted, then chunked by this); None picks
    8 on CPU, where larger chunks only add padding (measured: /predict at 64 connections served
    467 req/s with 8 against 339 with 32), and 64 on CUDA, where big batches are nearly free."""
    microbatch_max_size: int = 32
    """Most concurrent /predict texts coalesced into one runtime call."""
    microbatch_max_wait_ms: float = 1.0
    """Under load only: how long a forming micro-batch may wait for more texts. An idle
    queue dispatches at once, so a lone request never waits."""
    inference_workers: int = 1
    """Runtime calls allowed to run at the same time (threads off the event loop)."""
    max_queue: int = 1024
    """Texts waiting for the model before /predict answers 503 (overloaded)."""
    cache_enabled: bool = True
    """Cache predictions by (model checksum, variant, exact text)."""
    cache_size: int = 10_000
    """Most cached predictions (least recently used are evicted first)."""
    cache_ttl_s: float = 3600.0
    """Seconds a cached prediction stays valid."""
    rate_limit: RateLimit | None = RateLimit(600, "minute")
    """Requests per client address, e.g. ``100/minute``; None (``off``) disables throttling."""
    trusted_proxies: tuple[IPNetwork, ...] = ()
    """Peers whose ``X-Forwarded-For`` names the real client; empty trusts nobody."""
    max_text_chars: int = 10_000
    """Longest accepted text, in characters."""
    max_batch_items: int = 256
    """Most texts in one /batch_predict request."""
    max_body_bytes: int = 4 * 1024 * 1024
    """Largest accepted request body, in bytes (413 above)."""
    host: str = "0.0.0.0"
    """Address `clfserve serve` binds."""
    port: int = 5000
    """Port `clfserve serve` binds."""
    workers: int = 1
    """Server processes; each loads its own model, cache and rate-limit counters."""
    graceful_timeout_s: float = 30.0
    """On shutdown, seconds to let in-flight requests finish."""
    log_level: str = "info"
    """Log level of the service (debug, info, warning, error)."""
    access_log: bool = False
    """Log one line per request (uvicorn's access log); off by default, it costs throughput."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Parse every ``CLFSERVE_*`` variable in ``env``; unknown keys are ignored."""
        return cls(**parse_env(ENV_VARS, env)).validated()

    def validated(self) -> Settings:
        """Return self after cross-field checks; raises `SettingsError` naming the variable."""
        positive = {
            "CLFSERVE_MICROBATCH_MAX_SIZE": self.microbatch_max_size,
            "CLFSERVE_INFERENCE_WORKERS": self.inference_workers,
            "CLFSERVE_MAX_QUEUE": self.max_queue,
            "CLFSERVE_CACHE_SIZE": self.cache_size,
            "CLFSERVE_MAX_TEXT_CHARS": self.max_text_chars,
            "CLFSERVE_MAX_BATCH_ITEMS": self.max_batch_items,
            "CLFSERVE_MAX_BODY_BYTES": self.max_body_bytes,
            "CLFSERVE_WORKERS": self.workers,
        }
        for name, value in positive.items():
            if value < 1:
                raise SettingsError(f"{name}={value}: must be >= 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise SettingsError(f"CLFSERVE_BATCH_SIZE={self.batch_size}: must be >= 1")
        if self.threads is not None and self.threads < 1:
            raise SettingsError(f"CLFSERVE_THREADS={self.threads}: must be >= 1")
        if self.microbatch_max_wait_ms < 0:
            raise SettingsError("CLFSERVE_MICROBATCH_MAX_WAIT_MS: must be >= 0")
        if self.cache_ttl_s <= 0:
            raise SettingsError("CLFSERVE_CACHE_TTL: must be > 0 seconds")
        if self.graceful_timeout_s < 0:
            raise SettingsError("CLFSERVE_GRACEFUL_TIMEOUT: must be >= 0 seconds")
        if not 0 < self.port < 65536:
            raise SettingsError(f"CLFSERVE_PORT={self.port}: not a TCP port")
        if self.log_level not in LOG_LEVELS:
            raise SettingsError(f"CLFSERVE_LOG_LEVEL={self.log_level!r}: one of {LOG_LEVELS}")
        if not self.model_uri:
            raise SettingsError("CLFSERVE_MODEL_URI: must not be empty")
        return self

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied and validated (for CLI overrides and tests)."""
        return dataclasses.replace(self, **changes).validated()


LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

# -- parsers: raw string -> value; raise ValueError with a message fit for a user ---------------


def parse_int(raw: str) -> int:
    try:
        return int(raw.replace("_", ""))
    except ValueError:
        raise ValueError("expected a whole number") from None


def parse_optional_int(raw: str) -> int | None:
    return None if raw.lower() in {"auto", "none"} else parse_int(raw)


def parse_float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("expected a number") from None


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    raise ValueError("expected true or false")


def parse_device(raw: str) -> Device:
    lowered = raw.lower()
    if lowered not in ("auto", "cpu", "cuda"):
        raise ValueError("expected auto, cpu or cuda")
    return cast(Device, lowered)


def parse_optional_str(raw: str) -> str | None:
    return None if raw.lower() in {"auto", "none"} else raw


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


def parse_networks(raw: str) -> tuple[IPNetwork, ...]:
    """Comma-separated addresses or CIDR networks, e.g. ``10.0.0.1,172.16.0.0/12``."""
    networks = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return tuple(networks)


def parse_log_level(raw: str) -> str:
    return raw.lower()


@dataclass(frozen=True)
class EnvVar:
    """One environment variable: the field it sets, how it is parsed, and what it means."""

    name: str
    field: str
    parse: Callable[[str], Any]
    help: str

    @property
    def default(self) -> str:
        value = _DEFAULTS[self.field]
        if value is None:
            return "auto" if self.field in {"threads", "variant", "batch_size"} else "off"
        if isinstance(value, tuple):
            return ",".join(str(v) for v in value) or "(none)"
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Settings)}

ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("CLFSERVE_MODEL_URI", "model_uri", str,
           "models:/NAME@ALIAS via MLflow, or a local artefact folder"),
    EnvVar("CLFSERVE_DEVICE", "device", parse_device, "auto, cpu or cuda"),
    EnvVar("CLFSERVE_VARIANT", "variant", parse_optional_str,
           "ONNX variant (int8, fp32); auto: int8 on CPU, fp32 on CUDA"),
    EnvVar("CLFSERVE_THREADS", "threads", parse_optional_int,
           "ONNX Runtime intra-op threads; auto: usable CPUs / (workers x inference workers)"),
    EnvVar("CLFSERVE_BATCH_SIZE", "batch_size", parse_optional_int,
           "rows per ONNX Runtime run (texts are length-sorted, then chunked); auto: 8 on CPU, "
           "64 on CUDA"),
    EnvVar("CLFSERVE_MICROBATCH_MAX_SIZE", "microbatch_max_size", parse_int,
           "most concurrent /predict texts coalesced into one runtime call"),
    EnvVar("CLFSERVE_MICROBATCH_MAX_WAIT_MS", "microbatch_max_wait_ms", parse_float,
           "under load only, ms a forming micro-batch waits to fill; an idle queue never waits"),
    EnvVar("CLFSERVE_INFERENCE_WORKERS", "inference_workers", parse_int,
           "runtime calls running at once, in threads off the event loop"),
    EnvVar("CLFSERVE_MAX_QUEUE", "max_queue", parse_int,
           "texts waiting for the model before /predict answers 503"),
    EnvVar("CLFSERVE_CACHE", "cache_enabled", parse_bool, "prediction cache on/off"),
    EnvVar("CLFSERVE_CACHE_SIZE", "cache_size", parse_int, "most cached predictions"),
    EnvVar("CLFSERVE_CACHE_TTL", "cache_ttl_s", parse_float,
           "seconds a cached prediction stays valid"),
    EnvVar("CLFSERVE_RATE_LIMIT", "rate_limit", parse_rate_limit,
           "per client address, COUNT/UNIT (second|minute|hour|day), or off"),
    EnvVar("CLFSERVE_TRUSTED_PROXIES", "trusted_proxies", parse_networks,
           "comma-separated proxy IPs/CIDRs whose X-Forwarded-For is believed"),
    EnvVar("CLFSERVE_MAX_TEXT_CHARS", "max_text_chars", parse_int, "longest text, in characters"),
    EnvVar("CLFSERVE_MAX_BATCH_ITEMS", "max_batch_items", parse_int,
           "most texts per /batch_predict"),
    EnvVar("CLFSERVE_MAX_BODY_BYTES", "max_body_bytes", parse_int,
           "largest request body in bytes (413 above)"),
    EnvVar("CLFSERVE_HOST", "host", str, "bind address"),
    EnvVar("CLFSERVE_PORT", "port", parse_int, "bind port"),
    EnvVar("CLFSERVE_WORKERS", "workers", parse_int,
           "server processes (each has its own model, cache and rate-limit counters)"),
    EnvVar("CLFSERVE_GRACEFUL_TIMEOUT", "graceful_timeout_s", parse_float,
           "seconds in-flight requests get to finish on shutdown"),
    EnvVar("CLFSERVE_LOG_LEVEL", "log_level", parse_log_level,
           "critical, error, warning, info or debug"),
    EnvVar("CLFSERVE_ACCESS_LOG", "access_log", parse_bool, "one log line per request"),
)  # fmt: skip


class Variable(Protocol):
    """What `parse_env` and `describe_vars` need to know of one environment variable."""

    @property
    def name(self) -> str: ...
    @property
    def field(self) -> str: ...
    @property
    def help(self) -> str: ...
    @property
    def default(self) -> str: ...

    def parse(self, raw: str) -> Any: ...


def parse_env(variables: Iterable[Variable], env: Mapping[str, str]) -> dict[str, Any]:
    """Field values of the variables set (non-blank) in ``env``; errors name the variable."""
    values: dict[str, Any] = {}
    for var in variables:
        raw = env.get(var.name)
        if raw is None or raw.strip() == "":
            continue
        try:
            values[var.field] = var.parse(raw.strip())
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"{var.name}={raw!r}: {exc}") from None
    return values


def describe_vars(heading: str, variables: Sequence[Variable]) -> str:
    """A ``--help`` block: one line per variable with its meaning and default."""
    width = max(len(var.name) for var in variables)
    lines = [heading]
    for var in variables:
        lines.append(f"  {var.name:<{width}}  {var.help} [default: {var.default}]")
    return "\n".join(lines)


def describe_env() -> str:
    """The ``--help`` epilog: every variable, its default and meaning."""
    return describe_vars("environment (CLI options override them):", ENV_VARS)
