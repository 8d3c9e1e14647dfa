"""Start a real ``clfserve serve`` (or another HTTP server) on 127.0.0.1 and a free port; always
stop it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
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


def post_json(url: str, payload: object, timeout: float = 60.0) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextlib.contextmanager
def running_server(env: Mapping[str, str], log_path: Path) -> Iterator[str]:
    """A ready ``clfserve serve`` with ``env`` added; yields its base URL, stops it on exit."""
    command = [*clfserve_command(), "serve", "--host", "127.0.0.1", "--port", "{port}"]
    with running_process(command, env, log_path, "/health/ready") as base:
        yield base


@contextlib.contextmanager
def running_process(
    command: Sequence[str], env: Mapping[str, str], log_path: Path, ready_path: str
) -> Iterator[str]:
    """``command`` (``{port}`` replaced by a free port) with ``env`` added, once ``GET
    ready_path`` answers 200; yields the base URL and stops the process group on exit."""
    port = free_port()
    full_env = {**os.environ, **env}
    argv = [part.replace("{port}", str(port)) for part in command]
    log: IO[bytes] = log_path.open("wb")
    process = subprocess.Popen(
        argv, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, f"{base}{ready_path}", log_path)
        yield base
    finally:
        _stop(process)
        log.close()


def _wait_ready(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    name = Path(str(process.args[0] if isinstance(process.args, list) else process.args)).name
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {process.returncode} before becoming ready:\n"
                + _tail(log_path)
            )
        with contextlib.suppress(OSError):
            status, _ = get(url, timeout=2.0)
            if status == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"{name} not ready after {READY_TIMEOUT_S:.0f}s:\n{_tail(log_path)}")


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
