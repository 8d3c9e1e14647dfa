"""How to spend the cores: server processes x model calls at once x ONNX Runtime threads.

`/predict` at `CONNECTIONS` connections, distinct reviews, cache off, rate limit on at
`HUGE_LIMIT`. Each round starts one server per configuration, side by side, and drives them in
`TURNS` turns of duration / `TURNS` seconds each (`alternation.take_turns`), then each at 1
connection (lone requests: their latency). The configurations:

- clfserve's CPU default (every CPU setting `auto`): 2 model calls at once
  (``CLFSERVE_INFERENCE_WORKERS``), the CPUs split between them, plus a spare call when that
  leaves one thread a call; and, where it has one, the same without the spare call;
- 1 model call with every CPU as intra-op threads, ORT's threads sleeping when idle (clfserve's
  ``CLFSERVE_THREAD_SPINNING`` default) or spinning (ORT's own default);
- one server process per CPU (``CLFSERVE_WORKERS``), one call and one thread each.

Every configuration's rate is also taken relative to the default's in the same round (median,
min, max of those ratios). Idle servers cost nothing measurable: two of them beside the runtime
used 0.03 CPU seconds in 10 s.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.http import alternation
from benchmarks.http.limiter import HUGE_LIMIT
from benchmarks.http.server import running_server
from benchmarks.http.wrk import run_wrk
from benchmarks.workload import serving_layout

CONNECTIONS = 64
TURNS = 5
LAYOUTS = "every layout in turns"
AUTO = {"CLFSERVE_WORKERS": "1", "CLFSERVE_INFERENCE_WORKERS": "auto", "CLFSERVE_THREADS": "auto"}


def configurations(cpus: int) -> dict[str, dict[str, str]]:
    """Name -> extra environment; the first is clfserve's CPU default."""
    from clfserve.runtime.resources import cpu_calls

    calls, threads = serving_layout(cpus)
    one_call = {**AUTO, "CLFSERVE_INFERENCE_WORKERS": "1"}
    layouts = {f"1 process, default ({calls} model calls x {threads} thread)": AUTO}
    if calls > cpu_calls(cpus):  # the default has a spare call: measure it without one
        without = cpu_calls(cpus)
        layouts[f"1 process, {without} model calls x {threads} thread (no spare call)"] = {
            **AUTO,
            "CLFSERVE_INFERENCE_WORKERS": str(without),
        }
    return {
        **layouts,
        f"1 process, 1 model call x {cpus} threads": one_call,
        f"1 process, 1 model call x {cpus} threads, spinning": {
            **one_call,
            "CLFSERVE_THREAD_SPINNING": "true",
        },
        f"{cpus} processes x 1 model call x 1 thread": {**AUTO, "CLFSERVE_WORKERS": str(cpus)},
    }


def run_cpu_layout(
    common: Mapping[str, str], script: Path, check: Any, threads: int, duration: float,
    warmup: float, workdir: Path, rounds: int, max_other_share: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    base_env = {**common, "CLFSERVE_CACHE": "false", "CLFSERVE_RATE_LIMIT": HUGE_LIMIT}
    configs = configurations(threads)

    def side_by_side(round_: int) -> dict[str, Any]:
        servers = {
            name: running_server({**base_env, **extra}, workdir / f"cpu-{round_}-{i}.log")
            for i, (name, extra) in enumerate(configs.items())
        }
        with alternation.side_by_side(servers, check, script, CONNECTIONS, warmup) as bases:
            rows = alternation.wrk_turns(bases, script, CONNECTIONS, duration, TURNS, round_)
            for name, base in bases.items():
                lone = run_wrk(base, script, 1, duration / 2)
                rows[name] |= {"lone_p50_ms": lone.p50_ms, "lone_p99_ms": lone.p99_ms}
        line = ", ".join(f"{row['req_per_s']:,.1f}/s" for row in rows.values())
        print(f"    {line}", flush=True)
        return {**rows[next(iter(configs))], "side_by_side": rows}

    print(f"processes x model calls x threads, {rounds} alternated rounds:", flush=True)
    measured = alternation.alternate({LAYOUTS: side_by_side}, rounds, max_other_share)
    rows = alternation.unpack(measured[LAYOUTS], list(configs))
    default = next(iter(configs))
    return {
        "connections": CONNECTIONS,
        "limit": HUGE_LIMIT,
        "rounds": rounds,
        "turns": TURNS,
        "configurations": {
            name: {
                "env": configs[name],
                "req_per_s": alternation.spread([r["req_per_s"] for r in rs]),
                "p99_ms": alternation.spread([r["p99_ms"] for r in rs]),
                "lone_p50_ms": alternation.spread([r["lone_p50_ms"] for r in rs]),
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
        f"## Processes x model calls x threads ({c['rounds']} alternated rounds)",
        "",
        f"`/predict` at {c['connections']} connections, distinct reviews, cache off, rate limit "
        f"{c['limit']}; per round, one fresh server per configuration, side by side, taking "
        f"{c.get('turns', 1)} turns each. Median (min–max).",
        "",
        "| configuration | req/s | p99 ms | vs default, same round | requests per CPU second "
        "| errors | lone requests (1 connection): p50 ms | others' CPU share per round |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    spread = alternation.fmt_spread
    for name, s in c["configurations"].items():
        lines.append(
            f"| {name} | {spread(s['req_per_s'])} | {spread(s['p99_ms'], '.0f')} "
            f"| {spread(s['vs_default'], '.2f', 'x')} | {spread(s['req_per_cpu_s'], ',.0f')} "
            f"| {s['errors']} | {spread(s['lone_p50_ms'], '.1f')} | "
            + " · ".join("?" if x is None else f"{x:.0%}" for x in s["other_cpu_share"])
            + " |"
        )
    return lines
