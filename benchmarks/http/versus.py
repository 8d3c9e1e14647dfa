"""clfserve against the design it replaces and against its own runtime, in alternated rounds.

Each round starts two servers side by side:

- ``clfserve serve``, cache off, rate limit on at `HUGE_LIMIT` (in memory), driven on `/predict`
  with distinct reviews at `CONNECTIONS` connections;
- the reference server (`reference_server`: Flask + Flask-Limiter at the same limit + PyTorch
  eager, one forward pass per request), same checkpoint, threads, texts and load;

and measures them and the runtime in this process (`InProcess.serving_rate` on the texts
`/predict` is sent) in `WINDOWS` short windows each, taking turns (window 1 of each, then window
2 of each, ...), the one that goes first moving on each turn. The machine's speed moves by a
third within seconds on a shared VM; turns a few seconds long let a slow spell fall on all three,
where one long run each did not (ratios of 0.70-1.42x between rounds). Each one's rate in a round
is its requests (texts) over its seconds, summed over its windows. Then, in a fresh server,
``clfserve serve`` with the cache on: `/predict` with one text repeated (every answer a cache hit).

The targets are ratios taken round by round (median, min, max): clfserve / reference ≥
`TARGET_VS_REFERENCE`, clfserve / in-process ≥ `TARGET_VS_IN_PROCESS`, and cached req/s ≥
`TARGET_CACHED`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.http import alternation
from benchmarks.http.inprocess import InProcess
from benchmarks.http.limiter import HUGE_LIMIT
from benchmarks.http.reference_server import GUNICORN_THREADS, running_reference
from benchmarks.http.server import post_json, running_server
from benchmarks.http.wrk import run_wrk, write_script

CONNECTIONS = 64
TARGET_VS_REFERENCE = 10.0
TARGET_VS_IN_PROCESS = 0.95
TARGET_CACHED = 5000.0
IN_PROCESS_TEXTS = 1024
"""Texts of each in-process window (the first of those `/predict` cycles through): 1-2 s."""
WINDOWS = 5
"""Turns per round: each of the three is measured this many times for duration / WINDOWS."""

RUNTIME = "runtime in-process"
CLFSERVE = "clfserve, cache off"
REFERENCE = "reference (Flask + torch)"
CACHED = "clfserve, cached (one text)"
SIDE_BY_SIDE = "runtime, clfserve and reference in turns"
TRIO = (RUNTIME, CLFSERVE, REFERENCE)


@dataclass(frozen=True)
class Setup:
    """What every round needs: where the model is, the server environment and the load."""

    common_env: dict[str, str]
    """clfserve settings shared by every server (model, device, threads, logging)."""
    checkpoint: Path
    max_length: int
    threads: int
    texts: tuple[str, ...]
    duration: float
    warmup: float
    workdir: Path


def check_predict(base: str, text: str) -> None:
    """One request by hand, so a server that answers only errors fails loudly."""
    status, body = post_json(f"{base}/predict", {"text": text})
    if status != 200 or b"label" not in body:
        raise RuntimeError(f"{base}/predict answered {status}: {body[:300]!r}")


def run_versus(
    setup: Setup, runtime: InProcess, rounds: int, max_other_share: float | None = None
) -> dict[str, Any]:
    distinct = write_script(
        setup.workdir, "versus-distinct", "/predict",
        [json.dumps({"text": t}) for t in setup.texts],
    )  # fmt: skip
    one_text = setup.texts[0]
    cached = write_script(setup.workdir, "versus-cached", "/predict",
                          [json.dumps({"text": one_text})])  # fmt: skip
    limited = {**setup.common_env, "CLFSERVE_RATE_LIMIT": HUGE_LIMIT}

    def log(name: str, round_: int) -> Path:
        return setup.workdir / f"versus-{round_}-{name.split()[0].strip(',')}.log"

    def in_process() -> dict[str, Any]:
        texts = setup.texts[:IN_PROCESS_TEXTS]
        cpu, started = time.process_time(), time.perf_counter()
        runtime.serving_rate(texts)
        return {"requests": len(texts), "seconds": time.perf_counter() - started,
                "cpu_s": time.process_time() - cpu}  # fmt: skip

    def side_by_side(round_: int) -> dict[str, Any]:
        env = {**limited, "CLFSERVE_CACHE": "false"}
        with (
            running_server(env, log(CLFSERVE, round_)) as ours,
            running_reference(
                setup.checkpoint,
                setup.max_length,
                setup.threads,
                HUGE_LIMIT,
                log(REFERENCE, round_),
            ) as theirs,
        ):
            check_predict(ours, one_text)
            check_predict(theirs, one_text)
            window = setup.duration / WINDOWS
            turns: dict[str, Callable[[], dict[str, Any]]] = {
                RUNTIME: in_process,
                CLFSERVE: lambda: alternation.wrk_turn(ours, distinct, CONNECTIONS, window),
                REFERENCE: lambda: alternation.wrk_turn(theirs, distinct, CONNECTIONS, window),
            }
            for base in (ours, theirs):
                run_wrk(base, distinct, CONNECTIONS, setup.warmup)
            in_process()  # warm-up
            rows = alternation.take_turns(turns, WINDOWS, first=round_)
        rates = ", ".join(f"{name} {row['req_per_s']:,.1f}/s" for name, row in rows.items())
        print(f"    {rates}", flush=True)
        return {**rows[CLFSERVE], "side_by_side": rows}

    def cache_hits(round_: int) -> dict[str, Any]:
        with running_server({**limited, "CLFSERVE_CACHE": "true"}, log(CACHED, round_)) as b:
            check_predict(b, one_text)  # fills the cache
            return alternation.wrk_load(b, cached, CONNECTIONS, setup.duration, setup.warmup)

    measures: dict[str, alternation.Measure] = {SIDE_BY_SIDE: side_by_side, CACHED: cache_hits}
    print(f"clfserve vs reference vs runtime, {rounds} alternated rounds:", flush=True)
    measured = alternation.alternate(measures, rounds, max_other_share)
    rows = {CACHED: measured[CACHED], **alternation.unpack(measured[SIDE_BY_SIDE], TRIO)}
    summary = {name: alternation.spread([r["req_per_s"] for r in rs]) for name, rs in rows.items()}
    vs_reference = alternation.per_round_ratio(rows, CLFSERVE, REFERENCE)
    vs_runtime = alternation.per_round_ratio(rows, CLFSERVE, RUNTIME)
    per_cpu = {
        "clfserve_vs_reference": alternation.per_round_ratio(
            rows, CLFSERVE, REFERENCE, "req_per_cpu_s"
        ),
        "clfserve_vs_in_process": alternation.per_round_ratio(
            rows, CLFSERVE, RUNTIME, "req_per_cpu_s"
        ),
    }
    return {
        "connections": CONNECTIONS,
        "limit": HUGE_LIMIT,
        "rounds": rounds,
        "in_process_texts": IN_PROCESS_TEXTS,
        "windows": WINDOWS,
        "in_process_texts_per_call": runtime.call,
        "reference_server": f"gunicorn, 1 gthread worker x {GUNICORN_THREADS} threads",
        "req_per_s": summary,
        "clfserve_vs_reference": alternation.spread(vs_reference),
        "clfserve_vs_in_process": alternation.spread(vs_runtime),
        "per_cpu_second": {k: alternation.spread(v) for k, v in per_cpu.items() if v},
        "errors": {
            n: sum(r["non_2xx"] + r["socket_errors"] for r in rs if "non_2xx" in r)
            for n, rs in rows.items()
        },
        "runs": rows,
    }


def _shares(rows: Iterable[Mapping[str, Any]]) -> str:
    """Other processes' share of the CPUs during each measurement of a round."""
    shares = [r.get("other_cpu_share") for r in rows]
    return " · ".join("?" if s is None else f"{s:.0%}" for s in shares)


def _per_cpu(rows: Iterable[Mapping[str, Any]]) -> str:
    values = [r.get("req_per_cpu_s") for r in rows]
    return " · ".join("?" if v is None else f"{v:,.0f}" for v in values)


def _verdict(value: float, goal: float) -> str:
    return "met" if value >= goal else "MISSED"


def markdown(v: dict[str, Any]) -> list[str]:
    rows = v["runs"]
    names: Sequence[str] = (RUNTIME, CLFSERVE, REFERENCE, CACHED)
    lines = [
        "",
        f"## clfserve vs the reference server and the runtime ({v['rounds']} alternated rounds)",
        "",
        f"`/predict` at {v['connections']} connections with distinct reviews, rate limit on at "
        f"{v['limit']} in both servers (in memory), clfserve's cache off; the reference is "
        f"Flask + Flask-Limiter + PyTorch eager on the same checkpoint ({v['reference_server']}); "
        f"the runtime is `Classifier.predict` in the benchmark process on the first "
        f"{v['in_process_texts']:,} of those texts in calls of {v['in_process_texts_per_call']} "
        f"(one full micro-batch), each in {v.get('windows', 1)} windows a round, taking turns "
        "(the rate: requests over seconds, summed over the windows); cached = clfserve with the "
        "cache on, one text repeated. Fresh servers each round.",
        "",
        "| round | runtime texts/s | clfserve req/s | reference req/s | clfserve / reference "
        "| clfserve / runtime | cached req/s | per CPU second: runtime · clfserve · reference "
        "| others' CPU share |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for i in range(v["rounds"]):
        rt, cs, ref, ca = (rows[n][i]["req_per_s"] for n in names)
        lines.append(
            f"| {i + 1} | {rt:,.1f} | {cs:,.1f} | {ref:,.1f} | {cs / ref:.1f}x | {cs / rt:.0%} "
            f"| {ca:,.0f} | {_per_cpu(rows[n][i] for n in names[:3])} "
            f"| {_shares(rows[n][i] for n in names)} |"
        )
    s, r, p = v["req_per_s"], v["clfserve_vs_reference"], v["clfserve_vs_in_process"]
    spread = alternation.fmt_spread
    lines += [
        "",
        "| target | median (min–max) | goal | verdict |",
        "|---|---:|---:|---|",
        f"| clfserve / reference, `/predict` c={v['connections']} | {spread(r, '.1f', 'x')} "
        f"| ≥ {TARGET_VS_REFERENCE:.0f}x | {_verdict(r['median'], TARGET_VS_REFERENCE)} |",
        f"| clfserve `/predict` / runtime in-process | "
        f"{p['median']:.0%} ({p['min']:.0%}–{p['max']:.0%}) | ≥ {TARGET_VS_IN_PROCESS:.0%} "
        f"| {_verdict(p['median'], TARGET_VS_IN_PROCESS)} |",
        f"| cached `/predict` req/s | {spread(s[CACHED], ',.0f')} | ≥ {TARGET_CACHED:,.0f} "
        f"| {_verdict(s[CACHED]['median'], TARGET_CACHED)} |",
    ]
    cpu = v.get("per_cpu_second", {})
    if cpu:
        lines += [
            "",
            "Per CPU second (requests or texts per CPU second used by the server and wrk, or by "
            "the in-process runtime; moves little when other processes take cores): "
            + "; ".join(
                f"{name.replace('_', ' ')} {spread(s_, '.2f', 'x')}" for name, s_ in cpu.items()
            )
            + " (clfserve's CPU includes wrk's, the runtime's has no HTTP at all).",
        ]
    lines += [
        "",
        "Errors (HTTP ≥ 400, socket errors, timeouts): "
        + ", ".join(f"{n} {e}" for n, e in v["errors"].items() if n != RUNTIME)
        + ".",
    ]
    return lines
