"""Start `clfserve serve` as a real process on 127.0.0.1 and always stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

CLFSERVE = Path(sys.executable).parent / "clfserve"
READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> int:
        """SIGTERM (graceful), then SIGKILL if it does not exit in time; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        return self.process.returncode


def wait_ready(server: Server, timeout: float = READY_TIMEOUT_S) -> None:
    """Until ``/health/ready`` is 200 (bounded); fails early if the process exits."""
    _wait(server, "/health/ready", timeout)


def wait_listening(server: Server, timeout: float = READY_TIMEOUT_S) -> None:
    """Until ``/health/live`` answers 200, model or not (bounded)."""
    _wait(server, "/health/live", timeout)


def _wait(server: Server, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.url, timeout=2.0) as http:
        for _ in range(int(timeout / 0.1) + 1):
            if server.process.poll() is not None:
                raise AssertionError(
                    f"server exited with {server.process.returncode}:\n{server.log_tail()}"
                )
            try:
                if http.get(path).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
    raise AssertionError(f"no 200 from {path} after {timeout:.0f}s:\n{server.log_tail()}")


@contextmanager
def running_server(
    log_dir: Path, env: Mapping[str, str], *args: str, ready: bool = True
) -> Iterator[Server]:
    """A `clfserve serve` on a free 127.0.0.1 port with ``env`` added; stopped on exit."""
    port = free_port()
    log = log_dir / f"server-{port}.log"
    # Only the test's own clfserve home (a temporary folder) is passed on, so a server's data
    # (local model copies, the feedback database) never lands in the working directory.
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith("CLFSERVE_") or k == "CLFSERVE_HOME"}  # fmt: skip
    # The staleness monitor (its own tests) would evaluate in the background: keep it out.
    environment["CLFSERVE_STALENESS_ENABLED"] = "false"
    environment.update(env)
    command = [str(CLFSERVE), "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=environment, stdout=sink, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        if ready:
            wait_ready(server)
        yield server
    finally:
        server.stop()
