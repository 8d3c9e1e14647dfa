"""Start a real ``clfserve serve`` on 127.0.0.1 and a free port; always stop it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

READY_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clfserve_command() -> list[str]:
    """The ``clfserve`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("clfserve")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "clfserve.cli"]


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextlib.contextmanager
def running_server(env: Mapping[str, str], log_path: Path) -> Iterator[str]:
    """A ready ``clfserve serve`` with ``env`` added; yields its base URL, stops it on exit."""
    port = free_port()
    full_env = {**os.environ, **env}
    command = [*clfserve_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    log: IO[bytes] = log_path.open("wb")
    process = subprocess.Popen(
        command, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, base, log_path)
        yield base
    finally:
        _stop(process)
        log.close()


def _wait_ready(process: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"clfserve serve exited with {process.returncode} before becoming ready:\n"
                + _tail(log_path)
            )
        with contextlib.suppress(OSError):
            status, _ = get(f"{base}/health/ready", timeout=2.0)
            if status == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"clfserve serve not ready after {READY_TIMEOUT_S:.0f}s:\n{_tail(log_path)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (graceful), then SIGKILL the process group this runner created."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
