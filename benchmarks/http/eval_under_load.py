"""`/predict` latency at 16 connections, with and without a staleness evaluation running.

    python benchmarks/http/eval_under_load.py [--rounds 3] [--duration 10] [--warmup 2]
        [--connections 16] [--model-uri models:/clfserve-sentiment@champion]
        [--output benchmarks/results/eval-under-load-latest.json]

Starts one real ``clfserve serve`` on 127.0.0.1 (a free port) with the rate limit and the cache
off, the staleness monitor on but never scheduled (``CLFSERVE_STALENESS_INITIAL_DELAY=off``,
MLflow tracking of evaluations off) and ``CLFSERVE_ADMIN_TOKEN=bench``; ``CLFSERVE_HOME`` and
``MLFLOW_TRACKING_URI`` come from the environment. Then, for each round, two scenarios, each a
``wrk -t1 -c16`` run of ``--duration`` seconds on ``POST /predict`` cycling 2,048 distinct real
reviews, after an unmeasured ``--warmup``:

- ``quiet``: nothing else runs;
- ``evaluating``: a background thread POSTs ``/admin/evaluate`` (``Authorization: Bearer
  bench``) back to back for the whole wrk window (it stops when wrk ends, at most 100 calls),
  and the in-flight evaluation is awaited before the next scenario starts.

Rounds alternate the order (odd rounds quiet first, even rounds evaluating first) so slow drift
affects both alike. Reported per round and scenario: wrk's p50/p90/p99/max latency, req/s and
non-2xx answers; the median/min/max over rounds; the evaluations run (count and durations, as
measured by this client and by the server) and the share of each wrk window they covered; the
machine, the load average and (Linux) the CPU time other processes used during each scenario:
on a shared machine, a run where ``other processes`` took more than a few % of the CPUs is not
clean: ``--max-other-share 0.05`` redoes such a round (at most ``--max-redos`` times) and
reports it under ``discarded_rounds``. ``--wait-load 1.5`` first waits (at most ``--wait-max``
seconds) for the 1-minute load average to drop below 1.5.

Only the HTTP contract is used (``/health/ready``, ``/predict``, ``/admin/evaluate``), so the
same command measures any version of the service. Needs ``wrk`` and the model (``make model``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import workload
from benchmarks.http.server import get, running_server
from benchmarks.http.wrk import WrkResult, require_wrk, run_wrk, write_script

DISTINCT = 2048
"""Distinct review texts cycled through by wrk (the same set as ``benchmarks/http/run.py``)."""
ADMIN_TOKEN = "bench"
MAX_EVALUATIONS = 100
"""Most ``/admin/evaluate`` calls one evaluating window may make."""
EVALUATE_TIMEOUT_S = 180.0
"""Longest one ``/admin/evaluate`` call may take (it also bounds the wait after wrk ends)."""
SCENARIOS = ("quiet", "evaluating")
METRICS = ("p50_ms", "p99_ms", "req_per_s", "non_2xx")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- CPU used by other processes (Linux /proc, best effort) --------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 is the state), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def cpu_snapshot() -> tuple[float, float] | None:
    """(CPU seconds used by the whole machine, by this process, its waited children and its
    live descendants: the server and wrk); None where /proc is unavailable."""
    try:
        busy = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        # user nice system idle iowait irq softirq steal: busy = all but idle and iowait
        total = sum(int(v) for i, v in enumerate(busy[:8]) if i not in (3, 4))
        children: dict[int, list[int]] = {}
        cpu: dict[int, int] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            fields = _proc_stat(entry.name)
            if fields is None:
                continue
            pid = int(entry.name)
            children.setdefault(int(fields[1]), []).append(pid)  # fields[1]: ppid
            cpu[pid] = int(fields[11]) + int(fields[12])  # utime + stime
        me = os.getpid()
        own = _proc_stat(me)
        ours = int(own[13]) + int(own[14]) if own else 0  # cutime + cstime: waited children
        todo = [me]
        for _ in range(10_000):  # bounded walk of the process tree
            if not todo:
                break
            pid = todo.pop()
            ours += cpu.get(pid, 0)
            todo.extend(children.get(pid, []))
    except (OSError, ValueError, IndexError):
        return None
    return total / _TICK, ours / _TICK


def foreign_cpu(before: tuple[float, float] | None, seconds: float) -> dict[str, Any] | None:
    """CPU seconds other processes used since ``before``, and their share of all CPUs."""
    after = cpu_snapshot()
    if before is None or after is None or seconds <= 0:
        return None
    total, ours = after[0] - before[0], after[1] - before[1]
    foreign = max(0.0, total - ours)
    return {
        "ours_cpu_s": round(ours, 2),
        "foreign_cpu_s": round(foreign, 2),
        "foreign_share_of_cpus": round(foreign / (seconds * (os.cpu_count() or 1)), 3),
    }


# -- the background evaluations ------------------------------------------------------------------


def post(
    url: str, body: bytes, headers: dict[str, str] | None = None, timeout: float = 60.0
) -> tuple[int, bytes]:
    """POST ``body``; (status, response body), HTTP errors included."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def evaluate_once(base: str) -> tuple[int, dict[str, Any] | str]:
    """One ``POST /admin/evaluate``: (status, the JSON record or the raw body's start)."""
    status, body = post(
        f"{base}/admin/evaluate",
        b"",
        {"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=EVALUATE_TIMEOUT_S,
    )
    try:
        record = json.loads(body)
    except ValueError:
        return status, body[:300].decode(errors="replace")
    return status, record if isinstance(record, dict) else str(record)[:300]


@dataclass
class Evaluator:
    """POSTs ``/admin/evaluate`` back to back from a thread until `stop` (at most ``limit``)."""

    base: str
    limit: int = MAX_EVALUATIONS
    calls: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, name="evaluate-loop", daemon=True)
        self._thread.start()

    def stop(self) -> float:
        """Ask the loop to end, wait for the call in flight; returns the window length (s)."""
        window = time.perf_counter() - self._t0
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=EVALUATE_TIMEOUT_S + 10)
            if self._thread.is_alive():
                raise RuntimeError("the /admin/evaluate loop did not finish in time")
        return window

    def _loop(self) -> None:
        while not self._stop.is_set() and len(self.calls) < self.limit:
            started = time.perf_counter()
            try:
                status, record = evaluate_once(self.base)
            except OSError as exc:  # connection refused/reset, timeout: record it, stop
                status, record = 0, f"{type(exc).__name__}: {exc}"
            finished = time.perf_counter()
            call: dict[str, Any] = {
                "start_s": round(started - self._t0, 3),
                "end_s": round(finished - self._t0, 3),
                "client_s": round(finished - started, 3),
                "http_status": status,
            }
            if isinstance(record, dict):
                call["status"] = record.get("status")
                call["server_duration_s"] = _round(record.get("duration_s"))
                call["n_samples"] = record.get("n_samples")
                call["macro_f1"] = _round(record.get("macro_f1"), 4)
                if record.get("error"):
                    call["error"] = str(record["error"])[:300]
            else:
                call["status"] = "error"
                call["error"] = record
            self.calls.append(call)
            if status != 200:
                return  # a broken admin route would otherwise spin; the report shows why


def _round(value: object, digits: int = 3) -> float | None:
    return round(value, digits) if isinstance(value, int | float) else None


def summarise_calls(calls: Sequence[dict[str, Any]], window_s: float) -> dict[str, Any]:
    """How many evaluations ran and how much of the wrk window they covered."""
    busy = sum(max(0.0, min(c["end_s"], window_s) - max(c["start_s"], 0.0)) for c in calls)
    ok = [c for c in calls if c["http_status"] == 200 and c.get("status") != "error"]
    return {
        "calls": len(calls),
        "succeeded": len(ok),
        "completed_in_window": sum(1 for c in calls if c["end_s"] <= window_s),
        "window_s": round(window_s, 2),
        "busy_fraction": round(busy / window_s, 3) if window_s > 0 else None,
        "client_s": [c["client_s"] for c in calls],
        "server_duration_s": [c.get("server_duration_s") for c in calls],
        "details": list(calls),
    }


# -- scenarios -----------------------------------------------------------------------------------


def run_scenario(
    base: str, name: str, script: Path, connections: int, duration: float, warmup: float
) -> dict[str, Any]:
    if warmup > 0:
        run_wrk(base, script, connections, warmup)
    load_before = _load()
    cpu_before, t0 = cpu_snapshot(), time.perf_counter()
    evaluator: Evaluator | None = None
    if name == "evaluating":
        evaluator = Evaluator(base)
        evaluator.start()
    try:
        result: WrkResult = run_wrk(base, script, connections, duration)
    finally:
        window = evaluator.stop() if evaluator is not None else 0.0
    other = foreign_cpu(cpu_before, time.perf_counter() - t0)
    row: dict[str, Any] = {
        "scenario": name,
        "connections": connections,
        **result.as_dict(),
        "load_avg_before": load_before,
        "other_processes": other,
    }
    line = (
        f"  {name:<11} p50 {result.p50_ms:7.2f}  p90 {result.p90_ms:7.2f}  "
        f"p99 {result.p99_ms:7.2f} ms  {result.req_per_s:8.1f} req/s  "
        f"non-2xx {result.non_2xx}  socket errors {result.socket_errors}"
    )
    if evaluator is not None:
        evals = summarise_calls(evaluator.calls, window)
        row["evaluations"] = evals
        line += (
            f"  evaluations {evals['calls']} ({evals['succeeded']} ok, "
            f"busy {evals['busy_fraction']:.0%}, client s {evals['client_s']})"
        )
        failed = [c for c in evaluator.calls if c["http_status"] != 200]
        if failed:
            raise RuntimeError(f"/admin/evaluate failed: {failed[0]}")
    if other is not None:
        line += f"  other processes {other['foreign_share_of_cpus']:.0%} of the CPUs"
    print(line, flush=True)
    return row


def max_other_share(rounds: Sequence[dict[str, Any]]) -> float | None:
    """The largest share of the CPUs other processes took in any scenario of ``rounds``."""
    shares = [
        r[name]["other_processes"]["foreign_share_of_cpus"]
        for r in rounds
        for name in SCENARIOS
        if r[name].get("other_processes")
    ]
    return max(shares) if shares else None


def aggregate(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Median/min/max over rounds of each metric, per scenario, and evaluating vs quiet."""
    out: dict[str, Any] = {}
    for name in SCENARIOS:
        rows = [r[name] for r in rounds]
        out[name] = {
            metric: {
                "median": round(statistics.median(r[metric] for r in rows), 3),
                "min": min(r[metric] for r in rows),
                "max": max(r[metric] for r in rows),
            }
            for metric in METRICS
        }
    out["other_processes_max_share_of_cpus"] = max_other_share(rounds)
    quiet, busy = out["quiet"], out["evaluating"]
    out["evaluating_vs_quiet"] = {
        metric: round(busy[metric]["median"] / quiet[metric]["median"], 3)
        for metric in ("p50_ms", "p99_ms", "req_per_s")
        if quiet[metric]["median"]
    }
    return out


def _machine() -> dict[str, Any]:
    describe = getattr(workload, "machine", None)
    if describe is not None:
        with contextlib.suppress(Exception):  # an import moved by a refactor: keep the basics
            return dict(describe())
    return {"cpus": os.cpu_count(), "load_avg": _load(), "python": sys.version.split()[0]}


def wait_for_quiet(limit: float | None, max_wait_s: float) -> list[float]:
    """Wait (bounded) until the 1-minute load average is below ``limit``; the last reading."""
    deadline = time.monotonic() + max_wait_s
    load = _load()
    while limit is not None and load[0] > limit and time.monotonic() < deadline:
        print(f"load average {load} above {limit}: waiting", flush=True)
        time.sleep(min(15.0, max(0.0, deadline - time.monotonic())))
        load = _load()
    return load


def server_env(model_uri: str, device: str | None, threads: int | None) -> dict[str, str]:
    env = {
        "CLFSERVE_MODEL_URI": model_uri,
        "CLFSERVE_RATE_LIMIT": "off",
        "CLFSERVE_CACHE": "false",
        "CLFSERVE_ADMIN_TOKEN": ADMIN_TOKEN,
        "CLFSERVE_STALENESS_ENABLED": "true",
        "CLFSERVE_STALENESS_INITIAL_DELAY": "off",
        "CLFSERVE_STALENESS_TRACKING": "off",
        "CLFSERVE_LOG_LEVEL": "warning",
        "CLFSERVE_ACCESS_LOG": "false",
    }
    if device:
        env["CLFSERVE_DEVICE"] = device
    if threads:
        env["CLFSERVE_THREADS"] = str(threads)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both scenarios")
    parser.add_argument("--duration", type=float, default=10.0, help="measured s per scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured s before each")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument(
        "--model-uri",
        default=workload.DEFAULT_MODEL_URI,
        help="what the server serves: models:/NAME@ALIAS or an artefact folder",
    )
    parser.add_argument("--device", default="cpu", help="CLFSERVE_DEVICE ('' = server default)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CLFSERVE_THREADS (default: the server's own choice)",
    )
    parser.add_argument(
        "--output", type=Path, default=workload.RESULTS / "eval-under-load-latest.json"
    )
    parser.add_argument(
        "--texts",
        type=Path,
        default=None,
        help="JSON list of the texts to send (default: the first 2,048 benchmark reviews)",
    )
    parser.add_argument(
        "--save-texts", type=Path, default=None, help="write the texts sent as a JSON list"
    )
    parser.add_argument(
        "--max-other-share",
        type=float,
        default=None,
        help="redo a round when other processes took more than this share of the CPUs "
        "during it (e.g. 0.05; Linux only; default: keep every round)",
    )
    parser.add_argument(
        "--max-redos", type=int, default=6, help="most rounds redone for --max-other-share"
    )
    parser.add_argument(
        "--wait-load",
        type=float,
        default=None,
        help="wait until the 1-minute load average is below this",
    )
    parser.add_argument(
        "--wait-max", type=float, default=600.0, help="longest wait for --wait-load, seconds"
    )
    args = parser.parse_args(argv)  # fmt: skip
    if not 1 <= args.rounds <= 20 or not 1 <= args.duration <= 120 or args.warmup < 0:
        parser.error("--rounds 1..20, --duration 1..120 s, --warmup >= 0")
    if not 0 <= args.max_redos <= 50:
        parser.error("--max-redos 0..50")
    if not 1 <= args.connections <= 256:
        parser.error("--connections 1..256")

    require_wrk()
    texts = load_texts(args.texts) if args.texts else workload.reviews()[:DISTINCT]
    if args.save_texts:
        args.save_texts.parent.mkdir(parents=True, exist_ok=True)
        args.save_texts.write_text(json.dumps(texts, ensure_ascii=False) + "\n", encoding="utf-8")
    bodies = [json.dumps({"text": t}) for t in texts]
    digest = hashlib.sha256("\n".join(bodies).encode()).hexdigest()[:16]
    load_start = wait_for_quiet(args.wait_load, args.wait_max)
    started = _machine()
    print(f"model {args.model_uri}; {len(texts)} texts (sha256 {digest}); "
          f"load average {load_start}", flush=True)  # fmt: skip
    env = server_env(args.model_uri, args.device or None, args.threads)
    rounds: list[dict[str, Any]] = []
    discarded: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="clfserve-eval-under-load-") as tmp:
        workdir = Path(tmp)
        script = write_script(workdir, "predict", "/predict", bodies)
        try:
            with running_server(env, workdir / "server.log") as base:
                served = check(base, texts[0])
                print(f"serving {served['model']}; warm-up evaluation "
                      f"{served['warmup_evaluation']['client_s']} s", flush=True)  # fmt: skip
                for attempt in range(args.rounds + args.max_redos):
                    if len(rounds) == args.rounds:
                        break
                    if discarded:  # the machine was busy: give it a moment (bounded)
                        wait_for_quiet(args.wait_load or 1.5, 60.0)
                    order = SCENARIOS if len(rounds) % 2 == 0 else SCENARIOS[::-1]
                    print(f"round {len(rounds) + 1}/{args.rounds} (try {attempt + 1})", flush=True)
                    one: dict[str, Any] = {"round": len(rounds) + 1, "order": list(order)}
                    for name in order:
                        one[name] = run_scenario(
                            base, name, script, args.connections, args.duration, args.warmup
                        )
                    share = max_other_share([one])
                    if args.max_other_share is not None and (
                        share is None or share > args.max_other_share
                    ):
                        print(f"  discarded: other processes used {share} of the CPUs "
                              f"(limit {args.max_other_share})", flush=True)  # fmt: skip
                        discarded.append(one)
                    else:
                        rounds.append(one)
        except RuntimeError as exc:
            log = workdir / "server.log"
            tail = log.read_text(errors="replace")[-3000:] if log.is_file() else ""
            print(f"eval-under-load: {exc}\n{tail}", file=sys.stderr)
            return 1
    report = {
        "benchmark": "eval-under-load",
        "datetime": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_uri": args.model_uri,
        "served": served,
        "server_env": env,
        "clfserve_home": os.environ.get("CLFSERVE_HOME"),
        "texts": {
            "count": len(texts),
            "sha256_16": digest,
            "source": str(args.texts) if args.texts else "benchmarks.workload.reviews()",
        },
        "connections": args.connections,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "machine": started,
        "load_avg_start": load_start,
        "load_avg_end": _load(),
        "max_other_share": args.max_other_share,
        "complete": len(rounds) == args.rounds,
        "rounds": rounds,
        "discarded_rounds": discarded,
        "summary": aggregate(rounds) if rounds else None,
        "evaluations_total": sum(r["evaluating"]["evaluations"]["calls"] for r in rounds),
    }
    print(json.dumps({"summary": report["summary"], "evaluations_total":
                      report["evaluations_total"], "load_avg_end": report["load_avg_end"]},
                     indent=2))  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    if not report["complete"]:
        print(f"eval-under-load: only {len(rounds)} of {args.rounds} rounds were clean "
              f"({len(discarded)} discarded)", file=sys.stderr)  # fmt: skip
        return 3
    return 0


def load_texts(path: Path) -> list[str]:
    """The texts of a ``--save-texts`` file (the same workload for another code version)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, list) or not raw or not all(isinstance(t, str) for t in raw):
        raise SystemExit(f"{path}: expected a non-empty JSON list of strings")
    return raw[:DISTINCT]


def check(base: str, text: str) -> dict[str, Any]:
    """One /predict and one /admin/evaluate by hand (both must answer 200), unmeasured."""
    status, body = post(f"{base}/predict", json.dumps({"text": text}).encode())
    if status != 200:
        raise RuntimeError(f"POST /predict answered {status}: {body[:300]!r}")
    model = json.loads(body).get("model")
    ready_status, ready = get(f"{base}/health/ready")
    started = time.perf_counter()
    eval_status, record = evaluate_once(base)
    client_s = round(time.perf_counter() - started, 3)
    if eval_status != 200 or not isinstance(record, dict) or record.get("status") == "error":
        raise RuntimeError(f"POST /admin/evaluate answered {eval_status}: {record}")
    return {
        "model": model,
        "ready": {"status": ready_status, "body": ready[:300].decode(errors="replace")},
        "warmup_evaluation": {
            "client_s": client_s,
            "server_duration_s": _round(record.get("duration_s")),
            "n_samples": record.get("n_samples"),
            "status": record.get("status"),
            "accuracy": _round(record.get("accuracy"), 4),
            "macro_f1": _round(record.get("macro_f1"), 4),
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())
