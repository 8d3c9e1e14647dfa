"""Run the real `clfserve serve` on a GPU machine and load it; writes one JSON document.

    python benchmarks/gpu/service_check.py ARTEFACT OUTPUT.json [--device cuda] [--seconds 6]

For each of 1 and 2 model calls at once (``CLFSERVE_INFERENCE_WORKERS``; the CUDA default is 2),
alternated over ``--rounds`` fresh servers on 127.0.0.1: ``/predict`` with 64 connections
(distinct validation reviews, cache off, rate limit on at a limit no client reaches) and
``/batch_predict`` of 64 reviews with 8 connections, each for ``--seconds``; requests/s, texts/s,
p50/p99 latency and every non-200 counted. The first server also reports what ``GET /model``
says it loaded and waits for its first staleness evaluation (``GET /staleness``), which runs
the validation split on the same device.

The load comes from client processes of threads with keep-alive httpx clients (no wrk needed),
so the client's own CPU cost is part of what is measured: compare the rows with each other.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

PORT = 5077
URL = f"http://127.0.0.1:{PORT}"


def texts_of(folder: Path) -> list[str]:
    lines = (folder / "validation.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines]


def start(folder: Path, device: str, calls: int, home: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CLFSERVE_MODEL_URI": str(folder),
        "CLFSERVE_HOME": str(home),
        "CLFSERVE_DEVICE": device,
        "CLFSERVE_INFERENCE_WORKERS": str(calls),
        "CLFSERVE_HOST": "127.0.0.1",
        "CLFSERVE_PORT": str(PORT),
        "CLFSERVE_CACHE": "false",
        "CLFSERVE_RATE_LIMIT": "100000000/minute",
        "CLFSERVE_STALENESS_TRACKING": "off",
        "CLFSERVE_STALENESS_INITIAL_DELAY": "2",
        "CLFSERVE_ACCESS_LOG": "false",
    }
    log = (home / f"server-{calls}.log").open("ab")
    server = subprocess.Popen([sys.executable, "-m", "clfserve.cli", "serve"], env=env,
                              stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{URL}/health/ready", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}; see {log.name}")
        time.sleep(0.2)
    server.terminate()
    raise RuntimeError("the server was not ready within 120 s")


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()


def _client(args: tuple[str, list[Any], int, float]) -> tuple[int, list[float], dict[str, int]]:
    """One client process: ``threads`` keep-alive connections posting ``bodies`` in turn."""
    route, bodies, threads, seconds = args
    deadline = time.monotonic() + seconds

    def connection(offset: int) -> tuple[int, list[float], dict[str, int]]:
        done, times, errors = 0, [], dict[str, int]()
        with httpx.Client(base_url=URL, timeout=30) as client:
            i = offset
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    status = str(client.post(route, json=bodies[i % len(bodies)]).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                times.append(time.perf_counter() - started)
                if status == "200":
                    done += 1
                else:
                    errors[status] = errors.get(status, 0) + 1
                i += threads
        return done, times, errors

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(connection, range(threads)))
    errors: dict[str, int] = {}
    for _, _, e in results:
        for key, count in e.items():
            errors[key] = errors.get(key, 0) + count
    return sum(r[0] for r in results), [t for r in results for t in r[1]], errors


def load(
    route: str, bodies: list[Any], processes: int, threads: int, seconds: float
) -> dict[str, Any]:
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        shares = [bodies[p::processes] for p in range(processes)]
        results = pool.map(_client, [(route, s, threads, seconds) for s in shares])
    wall = time.perf_counter() - started
    done = sum(r[0] for r in results)
    times = sorted(t for r in results for t in r[1])
    errors: dict[str, int] = {}
    for r in results:
        for key, count in r[2].items():
            errors[key] = errors.get(key, 0) + count
    return {
        "requests_per_s": round(done / seconds),
        "p50_ms": round(times[len(times) // 2] * 1e3, 2) if times else None,
        "p99_ms": round(times[int(len(times) * 0.99)] * 1e3, 2) if times else None,
        "ok": done,
        "errors": errors,
        "wall_s": round(wall, 1),
    }


def first_evaluation(seconds: float = 90) -> dict[str, Any]:
    """The first staleness evaluation's summary, from ``GET /staleness``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        latest = httpx.get(f"{URL}/staleness", timeout=5).json().get("latest") or {}
        if latest.get("finished_at"):
            keys = ("status", "metric", "value", "accuracy", "macro_f1", "n_samples",
                    "duration_s", "model", "error")  # fmt: skip
            return {key: latest.get(key) for key in keys}
        time.sleep(0.5)
    return {"timed_out": True}


def main(args: argparse.Namespace) -> dict[str, Any]:
    texts = texts_of(args.artefact)
    singles = [{"text": t} for t in texts]
    batches = [{"texts": texts[i : i + 64]} for i in range(0, len(texts) - 63, 64)]
    home = args.output.parent / "service-home"
    home.mkdir(exist_ok=True)
    report: dict[str, Any] = {"device": args.device, "seconds": args.seconds, "rounds": []}
    for round_ in range(args.rounds):
        for calls in (2, 1) if round_ % 2 else (1, 2):
            server = start(args.artefact, args.device, calls, home)
            try:
                if "model" not in report:
                    report["model"] = httpx.get(f"{URL}/model", timeout=5).json()
                    report["staleness"] = first_evaluation()
                predict = load("/predict", singles, args.processes, 64 // args.processes,
                               args.seconds)  # fmt: skip
                batch = load("/batch_predict", batches, args.processes, 1, args.seconds)
                batch["texts_per_s"] = batch["requests_per_s"] * 64
            finally:
                stop(server)
            row = {"round": round_, "calls": calls, "predict_c64": predict, "batch64_c": batch}
            report["rounds"].append(row)
            print(json.dumps(row), flush=True)
    for calls in (1, 2):
        rows = [r for r in report["rounds"] if r["calls"] == calls]
        report[f"calls_{calls}"] = {
            "predict_req_per_s": [r["predict_c64"]["requests_per_s"] for r in rows],
            "batch_texts_per_s": [r["batch64_c"]["texts_per_s"] for r in rows],
            "predict_median": statistics.median(r["predict_c64"]["requests_per_s"] for r in rows),
            "batch_median": statistics.median(r["batch64_c"]["texts_per_s"] for r in rows),
        }
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artefact", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", type=int, default=8, help="client processes")
    result = main(parser.parse_args())
    result_text = json.dumps(result, indent=1)
    parser.parse_args().output.write_text(result_text)
    print(result_text)
