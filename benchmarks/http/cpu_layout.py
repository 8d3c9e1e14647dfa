"""How to spend the cores: server processes x ONNX Runtime threads, and ORT's thread spinning.

`/predict` at `CONNECTIONS` connections, distinct reviews, cache off, rate limit on at
`HUGE_LIMIT`, one fresh server per configuration and round, configurations alternated:

- 1 process x T intra-op threads (the CPU default), ORT threads spinning (ORT's default) or not;
- T processes (``CLFSERVE_WORKERS``) x 1 thread, spinning or not;
- 1 process, T model calls at once (``CLFSERVE_INFERENCE_WORKERS``) x 1 thread.

T is the benchmark's thread count (the usable CPUs). Spinning is switched off with a
benchmark-only knob (`ort_knobs`), not a clfserve setting. Every configuration's rate is also
taken relative to the default's in the same round (median, min, max of those ratios).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.http import alternation
from benchmarks.http.limiter import HUGE_LIMIT
from benchmarks.http.server import running_server

CONNECTIONS = 64
KNOBS = Path(__file__).resolve().parent / "ort_knobs"
SPINNING = "CLFSERVE_BENCH_ORT_SPINNING"


def configurations(threads: int) -> dict[str, dict[str, str]]:
    """Name -> extra environment; the first is clfserve's CPU default."""
    one = {"CLFSERVE_WORKERS": "1", "CLFSERVE_THREADS": str(threads)}
    procs = {"CLFSERVE_WORKERS": str(threads), "CLFSERVE_THREADS": "1"}
    calls = {"CLFSERVE_WORKERS": "1", "CLFSERVE_INFERENCE_WORKERS": str(threads),
             "CLFSERVE_THREADS": "1"}  # fmt: skip
    off = {SPINNING: "0"}
    return {
        f"1 process x {threads} threads (default)": one,
        f"1 process x {threads} threads, no spinning": {**one, **off},
        f"{threads} processes x 1 thread": procs,
        f"{threads} processes x 1 thread, no spinning": {**procs, **off},
        f"1 process, {threads} model calls x 1 thread": calls,
    }


def run_cpu_layout(
    common: Mapping[str, str], script: Path, check: Any, threads: int, duration: float,
    warmup: float, workdir: Path, rounds: int, max_other_share: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    python_path = os.pathsep.join(p for p in (str(KNOBS), os.environ.get("PYTHONPATH")) if p)
    base_env = {**common, "CLFSERVE_CACHE": "false", "CLFSERVE_RATE_LIMIT": HUGE_LIMIT,
                "PYTHONPATH": python_path}  # fmt: skip
    configs = configurations(threads)

    def measure(index: int, extra: Mapping[str, str]) -> alternation.Measure:
        def once(round_: int) -> dict[str, Any]:
            with running_server({**base_env, **extra}, workdir / f"cpu-{round_}-{index}.log") as b:
                check(b)
                return alternation.wrk_load(b, script, CONNECTIONS, duration, warmup)

        return once

    print(f"processes x threads x spinning, {rounds} alternated rounds:", flush=True)
    rows = alternation.alternate(
        {n: measure(i, e) for i, (n, e) in enumerate(configs.items())}, rounds, max_other_share
    )
    default = next(iter(configs))
    return {
        "connections": CONNECTIONS,
        "limit": HUGE_LIMIT,
        "rounds": rounds,
        "configurations": {
            name: {
                "env": configs[name],
                "req_per_s": alternation.spread([r["req_per_s"] for r in rs]),
                "p99_ms": alternation.spread([r["p99_ms"] for r in rs]),
                "req_per_cpu_s": alternation.spread([r.get("req_per_cpu_s") or 0.0 for r in rs]),
                "vs_default": alternation.spread(alternation.per_round_ratio(rows, name, default)),
                "errors": sum(r["non_2xx"] + r["socket_errors"] for r in rs),
                "other_cpu_share": [r["other_cpu_share"] for r in rs],
            }
            for name, rs in rows.items()
        },
        "runs": rows,
    }


def markdown(c: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"## Processes x threads x ORT spinning ({c['rounds']} alternated rounds)",
        "",
        f"`/predict` at {c['connections']} connections, distinct reviews, cache off, rate limit "
        f"{c['limit']}; a fresh server per configuration and round. Median (min–max).",
        "",
        "| configuration | req/s | p99 ms | vs default, same round | requests per CPU second "
        "| errors | others' CPU share per round |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    spread = alternation.fmt_spread
    for name, s in c["configurations"].items():
        lines.append(
            f"| {name} | {spread(s['req_per_s'])} | {spread(s['p99_ms'], '.0f')} "
            f"| {spread(s['vs_default'], '.2f', 'x')} | {spread(s['req_per_cpu_s'], ',.0f')} "
            f"| {s['errors']} | "
            + " · ".join("?" if x is None else f"{x:.0%}" for x in s["other_cpu_share"])
            + " |"
        )
    return lines
