"""Alternated rounds: every configuration once per round, in the same order, so a machine whose
speed drifts (other jobs, thermal, noisy neighbours) does not favour one of them; and the
median / min / max summaries the reports print."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.http.eval_under_load import cpu_snapshot, foreign_cpu
from benchmarks.http.wrk import run_wrk

Measure = Callable[[int], dict[str, Any]]
"""One configuration measured once: round number -> a result row with ``req_per_s``."""


def alternate(
    measures: Mapping[str, Measure], rounds: int, max_other_share: float | None = None,
    max_redos: int = 2,
) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """``rounds`` x every measure, in order; rows per configuration name.

    Each row records ``other_cpu_share``: the share of all CPUs that processes other than this
    one and its children (servers, wrk) used while it was measured. A round in which that share
    exceeded ``max_other_share`` somewhere is measured again, at most ``max_redos`` times; the
    last attempt is kept either way (the share says how clean it was)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for round_ in range(1, rounds + 1):
        for attempt in range(max_redos + 1):
            done = {name: _measured(name, measure, round_) for name, measure in measures.items()}
            shares = [
                r["other_cpu_share"] for r in done.values() if r["other_cpu_share"] is not None
            ]
            worst = max(shares, default=None)
            if max_other_share is None or worst is None or worst <= max_other_share:
                break
            if attempt < max_redos:
                print(f"  round {round_} again: other processes took {worst:.0%} of the CPUs",
                      flush=True)  # fmt: skip
        for name, row in done.items():
            rows.setdefault(name, []).append(row)
    return rows


def _measured(name: str, measure: Measure, round_: int) -> dict[str, Any]:
    before, started = cpu_snapshot(), time.perf_counter()
    row = {**measure(round_), "round": round_}
    other = foreign_cpu(before, time.perf_counter() - started)
    row["other_cpu_share"] = None if other is None else other["foreign_share_of_cpus"]
    errors = row.get("non_2xx", 0) + row.get("socket_errors", 0)
    line = f"  round {round_} {name:<44} {row['req_per_s']:>9,.1f}/s"
    if "p50_ms" in row:
        line += f"  p50 {row['p50_ms']:.2f}  p99 {row['p99_ms']:.2f} ms  errors {errors}"
    if other is not None:
        line += f"  others {row['other_cpu_share']:.0%} of the CPUs"
    print(line, flush=True)
    return row


def wrk_load(
    base: str, script: Path, connections: int, duration: float, warmup: float
) -> dict[str, Any]:
    """Warm-up (unmeasured), then one measured wrk run: its result as a dict, with the CPU
    seconds this process and its descendants (the server, wrk) used during the measured run and
    the requests served per such CPU second (``req_per_cpu_s``): unlike req/s, that moves
    little when other processes take cores away."""
    if warmup > 0:
        run_wrk(base, script, connections, warmup)
    before = cpu_snapshot()
    result: dict[str, Any] = run_wrk(base, script, connections, duration).as_dict()
    after = cpu_snapshot()
    if before is not None and after is not None and after[1] > before[1]:
        result["cpu_s"] = round(after[1] - before[1], 2)
        result["req_per_cpu_s"] = round(result["requests"] / result["cpu_s"], 1)
    return result


def spread(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def per_round_ratio(
    rows: Mapping[str, Sequence[Mapping[str, Any]]], top: str, bottom: str,
    key: str = "req_per_s",
) -> list[float]:  # fmt: skip
    """``top``'s ``key`` over ``bottom``'s, round by round (rounds lacking it are left out)."""
    return [
        a[key] / b[key]
        for a, b in zip(rows[top], rows[bottom], strict=True)
        if a.get(key) and b.get(key)
    ]


def fmt_spread(s: Mapping[str, float], form: str = ",.1f", unit: str = "") -> str:
    """``median (min–max)``, each formatted with ``form`` and followed by ``unit``."""
    return f"{s['median']:{form}}{unit} ({s['min']:{form}}{unit}–{s['max']:{form}}{unit})"
