"""Drive a URL with ``wrk`` (one thread, N connections) cycling through prepared POST bodies.

The Lua script writes one JSON line with the totals and latency percentiles when wrk finishes;
wrk counts statuses >= 400 as ``errors.status``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

MARKER = "CLFSERVE_WRK "

_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    "MARKER", summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
""".replace("MARKER", MARKER)


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    req_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(
            "wrk not found: install it with `apt-get update && apt-get install -y wrk` "
            "(a Python load loop saturates near 450 req/s here, below the server)"
        )
    return path


def _long_string(text: str) -> str:
    """A Lua long-bracket literal holding ``text`` verbatim (no escape processing)."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def write_script(folder: Path, name: str, path: str, bodies: Sequence[str]) -> Path:
    """A Lua script POSTing ``bodies`` to ``path`` in turn (each connection continues the cycle)."""
    table = ",\n".join(_long_string(body) for body in bodies)
    script = f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {{
{table}
}}
local n = #bodies
local i = 0
request = function()
  i = i % n + 1
  return wrk.format(nil, "{path}", nil, bodies[i])
end
{_DONE}
"""
    target = folder / f"{name}.lua"
    target.write_text(script, encoding="utf-8")
    return target


def run_wrk(
    base: str, script: Path, connections: int, seconds: float, timeout_s: float = 10.0
) -> WrkResult:
    command = [
        require_wrk(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
        f"--timeout={round(timeout_s)}s", "-s", str(script), base,
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in completed.stdout.splitlines():
        if line.startswith(MARKER):
            raw = json.loads(line[len(MARKER) :])
            break
    else:
        raise RuntimeError(
            f"wrk gave no result ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
        )
    seconds_run = raw["duration_us"] / 1e6
    return WrkResult(
        requests=raw["requests"],
        seconds=round(seconds_run, 2),
        req_per_s=round(raw["requests"] / seconds_run, 1),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        non_2xx=raw["status"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
    )
