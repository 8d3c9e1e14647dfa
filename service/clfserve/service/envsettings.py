"""Settings read from ``CLFSERVE_*`` environment variables, each declared exactly once.

A settings class is a frozen dataclass whose fields are declared with `setting`: the variable,
the default, the parser, the help text, an optional check and an optional CLI option. Everything
else derives from that one declaration: `load` (parsing and validation, errors naming the
variable), `describe` (``clfserve serve --help``), `options` (the CLI flags that override
variables) and `markdown_table` (the README's settings tables, which a test compares).

Standard library only, so `clfserve serve --help` imports neither Litestar nor MLflow.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
Check = Callable[[Any], "str | None"]
"""Returns what is wrong with a parsed value, or None when it is fine."""

_VAR = "clfserve.var"
_GROUP = "clfserve.group"


class SettingsError(ValueError):
    """A ``CLFSERVE_*`` variable (or CLI option) has a value the service cannot use."""


@dataclass(frozen=True)
class Var:
    """How one field is read from the environment, and how it is explained."""

    env: str
    parse: Callable[[str], Any]
    help: str
    check: Check | None = None
    option: str | None = None
    """CLI flag that overrides the variable (``--port``), or None."""
    shown: str | None = None
    """How the default reads in help and the README; None renders the default value."""


@dataclass(frozen=True)
class Declared:
    """One declared setting of a class: its field name, variable and default."""

    field: str
    var: Var
    default: Any

    @property
    def shown_default(self) -> str:
        return self.var.shown if self.var.shown is not None else render(self.default)


def setting(
    env: str,
    default: Any,
    parse: Callable[[str], Any],
    help: str,
    *,
    check: Check | None = None,
    option: str | None = None,
    shown: str | None = None,
) -> Any:
    """Declare a dataclass field read from ``env`` (see the module docstring)."""
    var = Var(env, parse, help, check, option, shown)
    return dataclasses.field(default=default, metadata={_VAR: var})


def group(cls: type[Any]) -> Any:
    """Declare a field holding a nested settings class, read from the same environment."""
    return dataclasses.field(default_factory=cls, metadata={_GROUP: cls})


def declared(cls: type[Any]) -> Iterator[Declared]:
    """The settings of ``cls`` in declaration order (nested groups not included)."""
    for f in dataclasses.fields(cls):
        if _VAR in f.metadata:
            yield Declared(f.name, f.metadata[_VAR], f.default)


def groups(cls: type[Any]) -> Iterator[tuple[str, type[Any]]]:
    for f in dataclasses.fields(cls):
        if _GROUP in f.metadata:
            yield f.name, f.metadata[_GROUP]


def load(cls: type[T], env: Mapping[str, str], overrides: Mapping[str, str] | None = None) -> T:
    """Parse and check every setting of ``cls`` (and its groups) from ``env``.

    ``overrides`` maps a variable name to a raw value that wins over ``env`` (CLI options).
    Unset or blank variables keep their defaults; unknown variables are ignored.
    """
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for item in declared(cls):
        raw = overrides.get(item.var.env, env.get(item.var.env))
        if raw is None or raw.strip() == "":
            continue
        try:
            value = item.var.parse(raw.strip())
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"{item.var.env}={raw!r}: {exc}") from None
        _check(item, value, raw)
        values[item.field] = value
    for name, nested in groups(cls):
        values[name] = load(nested, env, overrides)
    return cls(**values)


def validate(settings: T) -> T:
    """Run every check on ``settings`` as built in code (tests, `dataclasses.replace`)."""
    for item in declared(type(settings)):
        _check(item, getattr(settings, item.field), None)
    for name, _ in groups(type(settings)):
        validate(getattr(settings, name))
    return settings


def _check(item: Declared, value: Any, raw: str | None) -> None:
    problem = item.var.check(value) if item.var.check is not None else None
    if problem:
        shown = raw if raw is not None else render(value)
        raise SettingsError(f"{item.var.env}={shown!r}: {problem}")


def describe(cls: type[Any], heading: str) -> str:
    """A ``--help`` block: one line per variable with its meaning and default."""
    items = list(declared(cls))
    width = max(len(item.var.env) for item in items)
    lines = [heading]
    for item in items:
        lines.append(f"  {item.var.env:<{width}}  {item.var.help} [default: {item.shown_default}]")
    return "\n".join(lines)


def markdown_table(cls: type[Any]) -> str:
    """The README table of ``cls``'s variables: variable, default, meaning."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for item in declared(cls):
        lines.append(f"| `{item.var.env}` | {item.shown_default} | {item.var.help} |")
    return "\n".join(lines)


def options(cls: type[Any]) -> Iterator[Declared]:
    """Settings of ``cls`` and its groups that have a CLI option."""
    for item in declared(cls):
        if item.var.option is not None:
            yield item
    for _, nested in groups(cls):
        yield from options(nested)


def render(value: Any) -> str:
    """A default as a person would type it into the variable."""
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "(none)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- parsers: raw string -> value; raise ValueError with a message fit for a user ---------------


def parse_str(raw: str) -> str:
    return raw


def parse_int(raw: str) -> int:
    try:
        return int(raw.replace("_", ""))
    except ValueError:
        raise ValueError("expected a whole number") from None


def parse_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("expected a finite number")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    raise ValueError("expected true or false")


def optional(parse: Callable[[str], T], *words: str) -> Callable[[str], T | None]:
    """``parse``, or None for any of ``words`` (e.g. ``auto``, ``off``)."""
    nones = {w.lower() for w in words}

    def parse_optional(raw: str) -> T | None:
        return None if raw.lower() in nones else parse(raw)

    return parse_optional


def choice(*allowed: str) -> Callable[[str], str]:
    """One of ``allowed`` (case-insensitive)."""

    def parse_choice(raw: str) -> str:
        lowered = raw.lower()
        if lowered not in allowed:
            raise ValueError(f"expected {_either(allowed)}")
        return lowered

    return parse_choice


def _either(words: tuple[str, ...]) -> str:
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?$", re.IGNORECASE)
DAY_S = 86_400.0
_UNIT_S = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": DAY_S}


def parse_duration(raw: str) -> float:
    """``90``, ``1.5``, ``30s``, ``15m``, ``6h``, ``1d`` -> seconds."""
    match = _DURATION.match(raw.strip())
    if not match:
        raise ValueError("expected seconds, e.g. 30, 30s, 15m, 6h or 1d")
    return float(match.group(1)) * _UNIT_S[(match.group(2) or "s").lower()]


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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


# -- checks -------------------------------------------------------------------------------------


def at_least(low: float) -> Check:
    def check(value: Any) -> str | None:
        return None if value is None or value >= low else f"must be >= {render(low)}"

    return check


def above(low: float) -> Check:
    def check(value: Any) -> str | None:
        return None if value is None or value > low else f"must be > {render(low)}"

    return check


def between(low: float, high: float) -> Check:
    def check(value: Any) -> str | None:
        ok = value is None or low <= value <= high
        return None if ok else f"must be from {render(low)} to {render(high)}"

    return check


def not_blank(value: Any) -> str | None:
    return None if str(value).strip() else "must not be empty"
