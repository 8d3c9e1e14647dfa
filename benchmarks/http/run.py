"""HTTP load benchmark: a real ``clfserve serve`` on 127.0.0.1, driven by wrk.

    python benchmarks/http/run.py [--duration 10] [--warmup 2] [--only NAME,...]

Measures the in-process runtime first (same texts, same threads, no server), then starts one
server per configuration (cache off/on, micro-batching on/off; rate limit and the staleness
monitor off), runs each scenario for a bounded time after a short warm-up, stops the server.
Then, each in alternated rounds: clfserve against the reference server and the runtime
(`benchmarks.http.versus`), processes x threads x ORT spinning (`benchmarks.http.cpu_layout`)
and the rate limiter's cost (`benchmarks.http.limiter`). Writes
``benchmarks/results/http-latest.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.http import cpu_layout, limiter, versus
from benchmarks.http.inprocess import InProcess
from benchmarks.http.server import get, running_server
from benchmarks.http.wrk import require_wrk, run_wrk, write_script
from benchmarks.workload import (
    RESULTS,
    MissingModel,
    bench_threads,
    machine,
    model_spec,
    resolve_artefact,
    resolve_checkpoint,
    reviews,
    serving_layout,
)
from clfserve.client import ApiError, Client

DISTINCT = 2048
"""Distinct review texts cycled through by the cache-off /predict scenarios."""
CACHED = 64
"""Texts cycled through by the cached scenario (all warmed into the cache first)."""
BATCH = 32
"""Texts per /batch_predict request."""
LIMITER = "limiter"
"""``--only limiter``: the rate limiter's cost (`benchmarks.http.limiter`)."""
VERSUS = "versus"
"""``--only versus``: clfserve vs the reference server and the runtime (`.versus`)."""
CPU = "cpu"
"""``--only cpu``: processes x threads x ORT spinning (`benchmarks.http.cpu_layout`)."""
ROUNDED = (VERSUS, CPU, LIMITER)

SERVERS: dict[str, dict[str, str]] = {
    "microbatch on, cache off": {"CLFSERVE_CACHE": "false"},
    "microbatch off, cache off": {
        "CLFSERVE_CACHE": "false",
        "CLFSERVE_MICROBATCH": "false",
    },
    "cache on": {"CLFSERVE_CACHE": "true"},
}


@dataclass(frozen=True)
class Scenario:
    name: str
    server: str
    path: str
    connections: int
    bodies: str
    """``distinct`` (one review per request), ``cached`` or ``batch`` (32 reviews)."""

    @property
    def texts_per_request(self) -> int:
        return BATCH if self.bodies == "batch" else 1


_MB_ON, _MB_OFF = "microbatch on, cache off", "microbatch off, cache off"
SCENARIOS = (
    *(Scenario(f"predict-c{c}", _MB_ON, "/predict", c, "distinct") for c in (1, 16, 64)),
    Scenario("batch32-c1", _MB_ON, "/batch_predict", 1, "batch"),
    Scenario("batch32-c4", _MB_ON, "/batch_predict", 4, "batch"),
    *(Scenario(f"predict-nomb-c{c}", _MB_OFF, "/predict", c, "distinct") for c in (1, 16, 64)),
    Scenario("cached-c64", "cache on", "/predict", 64, "cached"),
)


def bodies(kind: str, texts: Sequence[str]) -> list[str]:
    if kind == "distinct":
        return [json.dumps({"text": t}) for t in texts[:DISTINCT]]
    if kind == "cached":
        return [json.dumps({"text": t}) for t in texts[:CACHED]]
    chunks = [texts[i : i + BATCH] for i in range(0, DISTINCT, BATCH)]
    return [json.dumps({"texts": list(chunk)}) for chunk in chunks]


# -- scenarios -----------------------------------------------------------------------------------


def _microbatch_stats(base: str) -> tuple[float, float]:
    """(sum, count) of the service's micro-batch size histogram."""
    _, raw = get(f"{base}/metrics")
    total = count = 0.0
    for line in raw.decode().splitlines():
        if line.startswith("clfserve_microbatch_size_sum"):
            total = float(line.split()[-1])
        elif line.startswith("clfserve_microbatch_size_count"):
            count = float(line.split()[-1])
    return total, count


def run_scenario(
    base: str, scenario: Scenario, script: Path, duration: float, warmup: float
) -> dict[str, Any]:
    if warmup > 0:
        run_wrk(base, script, scenario.connections, warmup)
    before = _microbatch_stats(base)
    load = [round(x, 2) for x in os.getloadavg()]
    result = run_wrk(base, script, scenario.connections, duration)
    after = _microbatch_stats(base)
    batches = after[1] - before[1]
    row: dict[str, Any] = {
        "name": scenario.name,
        "server": scenario.server,
        "path": scenario.path,
        "connections": scenario.connections,
        "texts_per_request": scenario.texts_per_request,
        **result.as_dict(),
        "seqs_per_s": round(result.req_per_s * scenario.texts_per_request, 1),
        "mean_microbatch": round((after[0] - before[0]) / batches, 2) if batches else None,
        "load_avg_before": load,
    }
    print(
        f"  {scenario.name:<18} {row['req_per_s']:>9,.1f} req/s {row['seqs_per_s']:>9,.1f} seqs/s"
        f"  p50 {row['p50_ms']:.2f}  p90 {row['p90_ms']:.2f}  p99 {row['p99_ms']:.2f} ms"
        f"  errors {row['non_2xx'] + row['socket_errors']}  batch~{row['mean_microbatch']}",
        flush=True,
    )
    return row


def run_all(
    artefact: Path, texts: Sequence[str], chosen: Sequence[Scenario], threads: int,
    duration: float, warmup: float, workdir: Path,
) -> list[dict[str, Any]]:  # fmt: skip
    rows = []
    common = common_env(artefact, threads)
    for server, extra in SERVERS.items():
        todo = [s for s in chosen if s.server == server]
        if not todo:
            continue
        print(f"server: {server}", flush=True)
        with running_server({**common, **extra}, workdir / f"server-{len(rows)}.log") as base:
            if server == "cache on":  # fill the cache with every text the scenario sends
                with Client(base, timeout=60.0) as client:
                    client.batch_predict(texts[:CACHED])
            for scenario in todo:
                script = write_script(
                    workdir, scenario.name, scenario.path, bodies(scenario.bodies, texts)
                )
                _check_one(base, scenario, texts)
                rows.append(run_scenario(base, scenario, script, duration, warmup))
    return rows


def common_env(artefact: Path, cpus: int) -> dict[str, str]:
    """Every server's settings: the model on CPU with the layout `serving_layout` gives."""
    calls, threads = serving_layout(cpus)
    return {
        "CLFSERVE_MODEL_URI": str(artefact),
        "CLFSERVE_DEVICE": "cpu",
        "CLFSERVE_INFERENCE_WORKERS": str(calls),
        "CLFSERVE_THREADS": str(threads),
        "CLFSERVE_RATE_LIMIT": "off",
        "CLFSERVE_STALENESS_ENABLED": "false",
        "CLFSERVE_LOG_LEVEL": "warning",
        "CLFSERVE_ACCESS_LOG": "false",
    }


def limiter_cost(
    artefact: Path, texts: Sequence[str], threads: int, duration: float, warmup: float,
    workdir: Path, rounds: int,
) -> dict[str, Any]:  # fmt: skip
    print("rate limiter cost (alternated rounds):", flush=True)
    scenario = Scenario(LIMITER, "", "/predict", limiter.CONNECTIONS, "distinct")
    script = write_script(workdir, LIMITER, "/predict", bodies("distinct", texts))
    return limiter.run_limiter_cost(
        common_env(artefact, threads), script, lambda base: _check_one(base, scenario, texts),
        duration, warmup, workdir, rounds,
    )  # fmt: skip


def _check_one(base: str, scenario: Scenario, texts: Sequence[str]) -> None:
    """One request by hand, so a scenario that only produces errors fails loudly."""
    try:
        with Client(base, timeout=60.0) as client:
            if scenario.bodies == "batch":
                client.batch_predict(texts[:BATCH])
            else:
                client.predict(texts[0])
    except ApiError as exc:
        raise RuntimeError(f"{scenario.name}: POST {scenario.path} answered {exc}") from None


# -- report --------------------------------------------------------------------------------------


def targets(rows: list[dict[str, Any]], ref: dict[str, Any]) -> dict[str, Any]:
    by = {r["name"]: r for r in rows}
    out: dict[str, Any] = {}
    if "predict-c64" in by:
        r = by["predict-c64"]
        out["predict_c64_vs_in_process"] = round(r["seqs_per_s"] / ref["serving_texts_per_s"], 3)
        out["predict_c64_errors"] = r["non_2xx"] + r["socket_errors"]
    if "predict-c1" in by:
        out["predict_c1_p50_minus_runtime_ms"] = round(
            by["predict-c1"]["p50_ms"] - ref["batch1_p50_ms"], 3
        )
    if "cached-c64" in by:
        out["cached_req_per_s"] = by["cached-c64"]["req_per_s"]
    return out


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown(report: dict[str, Any]) -> str:
    m, ref = report["machine"], report["in_process"]
    rows, t = report["scenarios"], report["targets"]
    lines = [
        "# HTTP benchmark (latest run)",
        "",
        f"{report['datetime']} on {m['cpu']}, {m['cpus']} CPUs shared by wrk (1 thread) and the "
        f"server; onnxruntime {m['onnxruntime']}, {ref.get('callers', 1)} model calls at once x "
        f"{ref['threads']} intra-op threads, variant "
        f"{ref['variant']}; model `{report['model']}`; {report['duration_s']:.0f} s per scenario "
        f"after {report['warmup_s']:.0f} s warm-up; load average at start {m['load_avg']}, at "
        f"end {report['load_avg_end']}.",
        "",
        "In-process runtime (same texts and threads, no server): batch-1 p50 "
        f"{ref['batch1_p50_ms']:.2f} ms ({ref['batch1_texts_per_s']:,.0f} texts/s one by one); "
        f"{ref['serving_texts_per_s']:,.0f} texts/s in calls of {ref['texts_per_call']} in send "
        f"order (one full micro-batch, chunks of {ref['batch_size']}); "
        f"{ref['one_call_texts_per_s']:,.0f} texts/s in one sorted {ref['texts']:,}-text call.",
        "",
    ]
    if rows:
        lines += [
            _row("scenario", "server", "conns", "req/s", "seqs/s", "p50 ms", "p90 ms", "p99 ms",
                 "errors", "mean micro-batch"),
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]  # fmt: skip
    for r in rows:
        lines.append(
            _row(f"{r['name']} ({r['path']})", r["server"], r["connections"],
                 f"{r['req_per_s']:,.1f}", f"{r['seqs_per_s']:,.1f}", f"{r['p50_ms']:.2f}",
                 f"{r['p90_ms']:.2f}", f"{r['p99_ms']:.2f}", r["non_2xx"] + r["socket_errors"],
                 r["mean_microbatch"] or "–")
        )  # fmt: skip
    by = {r["name"]: r for r in rows}
    pairs = [(c, by.get(f"predict-c{c}"), by.get(f"predict-nomb-c{c}")) for c in (1, 16, 64)]
    if any(on and off for _, on, off in pairs):
        lines += ["", "Micro-batching, `/predict` distinct texts, cache off:", "",
                  _row("conns", "on: req/s", "on: p50 / p99 ms", "off: req/s",
                       "off: p50 / p99 ms", "on / off"),
                  "|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for c, on, off in pairs:
            if on and off:
                lines.append(
                    _row(c, f"{on['req_per_s']:,.1f}", f"{on['p50_ms']:.2f} / {on['p99_ms']:.2f}",
                         f"{off['req_per_s']:,.1f}", f"{off['p50_ms']:.2f} / {off['p99_ms']:.2f}",
                         f"{on['req_per_s'] / off['req_per_s']:.2f}x")
                )  # fmt: skip
    if t:
        lines += ["", "Targets:", "", "| target | measured | goal |", "|---|---:|---:|"]
    if "predict_c64_vs_in_process" in t:
        measured = f"{t['predict_c64_vs_in_process']:.0%}, {t['predict_c64_errors']} errors"
        lines.append(_row("/predict c=64 seqs/s vs in-process (micro-batch calls)", measured,
                          "≥ 95 %, 0 errors"))  # fmt: skip
    if "predict_c1_p50_minus_runtime_ms" in t:
        measured = f"{t['predict_c1_p50_minus_runtime_ms']:+.2f} ms"
        lines.append(_row("/predict c=1 p50 − runtime batch-1 p50", measured, "≤ 1 ms"))
    if "cached_req_per_s" in t:
        lines.append(_row("cached /predict req/s (1 worker)", f"{t['cached_req_per_s']:,.0f}",
                          "≥ 5,000"))  # fmt: skip
    if report.get("versus"):
        lines += versus.markdown(report["versus"])
    if report.get("cpu_layout"):
        lines += cpu_layout.markdown(report["cpu_layout"])
    if report.get("limiter"):
        lines += limiter.markdown(report["limiter"])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="measured seconds per scenario"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated scenarios of: {', '.join(s.name for s in SCENARIOS)}, "
        f"{', '.join(ROUNDED)}",
    )
    parser.add_argument(
        "--limiter-rounds", type=int, default=5, help="alternated rounds of the limiter cost"
    )
    parser.add_argument(
        "--versus-rounds", type=int, default=5, help="alternated rounds of clfserve vs reference"
    )
    parser.add_argument(
        "--cpu-rounds", type=int, default=3, help="alternated rounds of processes x threads"
    )
    parser.add_argument(
        "--max-other-share", type=float, default=None,
        help="redo an alternated round (at most twice) when other processes took more than this "
        "share of the CPUs during it (e.g. 0.1 on a shared machine)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for http-latest.json/.md")
    args = parser.parse_args(argv)  # fmt: skip

    require_wrk()
    try:
        artefact = resolve_artefact()
    except MissingModel as exc:
        print(f"bench-http: no model to benchmark: {exc}", file=sys.stderr)
        return 2
    wanted = {n for n in args.only.split(",") if n}
    chosen = [s for s in SCENARIOS if not wanted or s.name in wanted]
    unknown = wanted - {s.name for s in SCENARIOS} - set(ROUNDED)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    threads = bench_threads()
    texts = reviews()[:DISTINCT]
    started = machine()
    print(f"model {artefact}; {threads} threads; load average {started['load_avg']}", flush=True)
    calls, per_call = serving_layout(threads)
    runtime = InProcess(artefact, per_call, calls)
    ref = runtime.profile(texts)
    print(f"in-process: {ref}", flush=True)
    parts: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="clfserve-bench-http-") as tmp:
        rows = run_all(artefact, texts, chosen, threads, args.duration, args.warmup, Path(tmp))
        if not wanted or VERSUS in wanted:
            setup = versus.Setup(
                common_env(artefact, threads), resolve_checkpoint(artefact),
                runtime.classifier.manifest.max_length, threads, tuple(texts), args.duration,
                args.warmup, Path(tmp),
            )  # fmt: skip
            parts["versus"] = versus.run_versus(
                setup, runtime, args.versus_rounds, args.max_other_share
            )
        if not wanted or CPU in wanted:
            script = write_script(Path(tmp), CPU, "/predict", bodies("distinct", texts))
            parts["cpu_layout"] = cpu_layout.run_cpu_layout(
                common_env(artefact, threads), script, lambda b: versus.check_predict(b, texts[0]),
                threads, args.duration, args.warmup, Path(tmp), args.cpu_rounds,
                args.max_other_share,
            )  # fmt: skip
        if not wanted or LIMITER in wanted:
            parts["limiter"] = limiter_cost(
                artefact, texts, threads, args.duration, args.warmup, Path(tmp),
                args.limiter_rounds,
            )  # fmt: skip
    report = {
        "datetime": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": model_spec(),
        "artefact": str(artefact),
        "machine": started,
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "in_process": ref,
        "scenarios": rows,
        **parts,
    }
    report["targets"] = targets(rows, ref)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "http-latest.json").write_text(
        json.dumps(report, indent=2) + "\n", encoding="utf-8"
    )
    text = markdown(report)
    (args.out / "http-latest.md").write_text(text, encoding="utf-8")
    print("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
