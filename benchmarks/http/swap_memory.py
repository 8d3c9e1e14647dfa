"""Peak memory of a live model swap: a real ``clfserve serve`` following ``models:/NAME@ALIAS``,
its resident set sampled every 20 ms while the alias moves to a new version.

    CLFSERVE_HOME=... python benchmarks/http/swap_memory.py [--name clfserve-sentiment]

Registers the serving version's artefact again as a new version (identical files, so the swap
is the only thing that changes), moves the alias, and reports RSS before, the peak during the
swap and after it, in MB. Run it on a copy of a home: it adds a version to the registry.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import os
import subprocess
import tempfile

from benchmarks.http.server import _stop, _wait_ready, clfserve_command, free_port, get

SAMPLE_S = 0.02
SWAP_TIMEOUT_S = 120.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="clfserve-sentiment")
    parser.add_argument("--alias", default="champion")
    args = parser.parse_args()

    from clfserve.registry import alias_version, resolve_model, set_alias
    from clfserve.registry.store import register_artefact

    env = {
        "CLFSERVE_MODEL_URI": f"models:/{args.name}@{args.alias}",
        "CLFSERVE_RELOAD_INTERVAL": "0.5",
        "CLFSERVE_STALENESS_ENABLED": "false",
        "CLFSERVE_RATE_LIMIT": "off",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = Path(tempfile.mkdtemp()) / "server.log"
    command = [*clfserve_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        _wait_ready(process, url, log_path)
        before_version = json.loads(get(f"{url}/model")[1])["version"]
        time.sleep(2)
        before = rss_mb(process.pid)
        samples: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(rss_mb(process.pid))
                time.sleep(SAMPLE_S)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        current = alias_version(args.name, args.alias)
        assert current is not None
        folder = resolve_model(f"models:/{args.name}/{current.version}").path
        new = register_artefact(folder, name=args.name, alias=None, params={}, metrics={})
        set_alias(args.name, args.alias, new.version)
        deadline = time.monotonic() + SWAP_TIMEOUT_S
        while time.monotonic() < deadline:
            if json.loads(get(f"{url}/model")[1])["version"] == new.version:
                break
            time.sleep(0.1)
        time.sleep(3)  # the old model is freed once its last call ends
        done.set()
        sampler.join()
        after = rss_mb(process.pid)
    finally:
        _stop(process)
    result = {
        "from_version": before_version,
        "to_version": new.version,
        "rss_before_mb": round(before, 1),
        "rss_peak_during_swap_mb": round(max(samples), 1),
        "rss_after_mb": round(after, 1),
        "samples": len(samples),
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
