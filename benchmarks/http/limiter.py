"""The rate limiter's cost: ``/predict`` at 64 connections, cache off, with the limit off vs at
100,000,000/minute (in memory, and in Redis when ``redis-server`` is installed).

Each round starts one fresh server per configuration, side by side, and drives them in `TURNS`
turns of duration / `TURNS` seconds each (`alternation.take_turns`), so a machine whose speed
drifts does not favour one of them. The target: the in-memory limiter within 5 % of no limiter.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from benchmarks.http import alternation
from benchmarks.http.server import running_server

CONNECTIONS = 64
TURNS = 5
HUGE_LIMIT = "100000000/minute"
TARGET = 0.05
"""Most throughput the in-memory limiter may cost against no limiter."""


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str | None]:
    """A throwaway redis-server on a free 127.0.0.1 port (its URL), or None when not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def configurations(redis_url: str | None) -> dict[str, dict[str, str]]:
    configs = {
        "limit off": {"CLFSERVE_RATE_LIMIT": "off"},
        "limit in memory": {"CLFSERVE_RATE_LIMIT": HUGE_LIMIT},
    }
    if redis_url is not None:
        configs["limit in Redis"] = {"CLFSERVE_RATE_LIMIT": HUGE_LIMIT,
                                     "CLFSERVE_REDIS_URL": redis_url}  # fmt: skip
    return configs


def run_limiter_cost(
    common: Mapping[str, str],
    script: Path,
    check: Callable[[str], None],
    duration: float,
    warmup: float,
    workdir: Path,
    rounds: int = 2,
) -> dict[str, Any]:
    """Alternated rounds of every configuration; req/s per round and the ratios to 'off'."""

    def side_by_side(configs: Mapping[str, Mapping[str, str]]) -> alternation.Measure:
        def once(round_: int) -> dict[str, Any]:
            servers = {
                name: running_server(
                    {**common, "CLFSERVE_CACHE": "false", **extra},
                    workdir / f"limiter-{round_}-{name.replace(' ', '-')}.log",
                )
                for name, extra in configs.items()
            }
            with alternation.side_by_side(servers, check, script, CONNECTIONS, warmup) as bases:
                rows = alternation.wrk_turns(bases, script, CONNECTIONS, duration, TURNS, round_)
            print("    " + ", ".join(f"{n} {r['req_per_s']:,.1f}/s" for n, r in rows.items()))
            return {**rows[next(iter(configs))], "side_by_side": rows}

        return once

    with redis_server(workdir) as redis_url:
        configs = configurations(redis_url)
        measured = alternation.alternate({"side by side": side_by_side(configs)}, rounds)
    per_config = alternation.unpack(measured["side by side"], list(configs))
    off = statistics.mean(r["req_per_s"] for r in per_config["limit off"])
    summary = {
        name: {
            "req_per_s": [r["req_per_s"] for r in results],
            "mean_req_per_s": round(statistics.mean(r["req_per_s"] for r in results), 1),
            "vs_off": round(statistics.mean(r["req_per_s"] for r in results) / off, 3),
            "errors": sum(r["non_2xx"] + r["socket_errors"] for r in results),
        }
        for name, results in per_config.items()
    }
    return {"connections": CONNECTIONS, "limit": HUGE_LIMIT, "rounds": rounds, "turns": TURNS,
            "configurations": summary, "runs": per_config}  # fmt: skip


def markdown(limiter: dict[str, Any]) -> list[str]:
    configs = limiter["configurations"]
    lines = [
        "",
        f"Rate limiter cost, `/predict` c={limiter['connections']}, cache off, limit "
        f"{limiter['limit']}, {limiter['rounds']} rounds (fresh servers side by side, "
        f"{limiter.get('turns', 1)} turns each a round):",
        "",
        "| configuration | req/s per round | mean req/s | vs limit off | errors |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, c in configs.items():
        rounds = " · ".join(f"{r:,.1f}" for r in c["req_per_s"])
        lines.append(
            f"| {name} | {rounds} | {c['mean_req_per_s']:,.1f} | {c['vs_off']:.3f} | "
            f"{c['errors']} |"
        )
    memory = configs.get("limit in memory")
    if memory is not None:
        cost = 1 - memory["vs_off"]
        lines += ["", f"Target: the in-memory limiter costs ≤ {TARGET:.0%}: measured {cost:+.1%}."]
    return lines
