"""Alternated rounds: every configuration once per round, in the same order, so a machine whose
speed drifts (other jobs, thermal, noisy neighbours) does not favour one of them; turns within a
round (`take_turns`), for servers running side by side; and the median / min / max summaries the
reports print.

This VM's speed moves by a third within seconds, so one 10 s run per configuration and round
compares moments as much as configurations: the in-process runtime's rate swung 517-913 texts/s
between the rounds of one run. Taking 2 s turns within a round, the same run's two ratios stayed
within 8.0-8.4x and 85-97 %."""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
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


def take_turns(
    measures: Mapping[str, Callable[[], dict[str, Any]]], turns: int, first: int = 0
) -> dict[str, dict[str, Any]]:
    """Every measure ``turns`` times, taking turns: each once per turn, the one that goes first
    moving on every turn (``first`` shifts it), the machine left to go idle (`settle`) after
    each. Returns each measure's turns as one row (`pooled`)."""
    names = list(measures)
    done: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    settle()  # after the warm-ups
    for turn in range(turns):
        lead = (turn + first) % len(names)
        for name in names[lead:] + names[:lead]:
            done[name].append(measures[name]())
            settle()
    return {name: pooled(rows) for name, rows in done.items()}


@contextlib.contextmanager
def side_by_side(
    servers: Mapping[str, AbstractContextManager[str]], check: Callable[[str], None],
    script: Path, connections: int, warmup: float,
) -> Iterator[dict[str, str]]:  # fmt: skip
    """Every server started, checked (``check``: one request by hand) and warmed up with wrk;
    yields name -> base URL and stops them all on exit."""
    with contextlib.ExitStack() as stack:
        bases = {name: stack.enter_context(server) for name, server in servers.items()}
        for base in bases.values():
            check(base)
            run_wrk(base, script, connections, warmup)
        yield bases


def wrk_turns(
    bases: Mapping[str, str], script: Path, connections: int, duration: float, turns: int,
    first: int = 0,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """`take_turns` of wrk runs, ``duration`` seconds in all per server."""
    window = duration / turns
    return take_turns(
        {name: functools.partial(wrk_turn, base, script, connections, window)
         for name, base in bases.items()},
        turns, first,
    )  # fmt: skip


def wrk_turn(base: str, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    """One wrk run as a turn: its result, with the CPU seconds this process and its descendants
    used meanwhile (``cpu_s``, None where /proc is unavailable)."""
    before = cpu_snapshot()
    result = run_wrk(base, script, connections, seconds)
    after = cpu_snapshot()
    cpu = after[1] - before[1] if before is not None and after is not None else None
    return {**result.as_dict(), "cpu_s": cpu}


def settle(quiet_cpus: float = 0.1, step: float = 0.25, limit: float = 10.0) -> float:
    """Wait until the machine is idle (under ``quiet_cpus`` CPUs busy over ``step`` seconds),
    at most ``limit`` seconds; return the seconds waited.

    When wrk stops, the requests it had in flight are still being served: the reference server
    has up to a second of them queued at 64 connections. Measured straight after, the next turn
    would share the CPUs with them."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        before = cpu_snapshot()
        time.sleep(step)
        after = cpu_snapshot()
        if before is None or after is None or after[0] - before[0] < quiet_cpus * step:
            break
    return time.perf_counter() - started


def pooled(turns: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One measure's turns as one row: rates over the summed requests and seconds, the median
    turn's latency percentiles, every turn's rate (``turn_req_per_s``)."""
    requests = sum(t["requests"] for t in turns)
    seconds = sum(t["seconds"] for t in turns)
    cpus = [t.get("cpu_s") for t in turns]
    cpu = None if None in cpus else sum(float(c) for c in cpus if c is not None)
    row: dict[str, Any] = {
        "requests": requests,
        "seconds": round(seconds, 2),
        "req_per_s": round(requests / seconds, 1),
        "turn_req_per_s": [round(t["requests"] / t["seconds"], 1) for t in turns],
    }
    if cpu:
        row["cpu_s"] = round(cpu, 2)
        row["req_per_cpu_s"] = round(requests / cpu, 1)
    if "p50_ms" in turns[0]:
        for key in ("p50_ms", "p99_ms"):
            row[key] = round(statistics.median(t[key] for t in turns), 2)
        row["non_2xx"] = sum(t["non_2xx"] for t in turns)
        row["socket_errors"] = sum(t["socket_errors"] for t in turns)
    return row


def unpack(
    rounds: Sequence[Mapping[str, Any]], names: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Rows per name from rounds whose row holds every name's row under ``side_by_side`` (each
    keeps the round's number and the other processes' CPU share)."""
    return {
        name: [
            {
                **r["side_by_side"][name],
                "round": r["round"],
                "other_cpu_share": r["other_cpu_share"],
            }
            for r in rounds
        ]
        for name in names
    }
