"""The reference server (``benchmarks/http/reference/app.py``): its environment and its process.

The reference is the design clfserve replaces, Flask + Flask-Limiter + PyTorch eager, served by
gunicorn (one ``gthread`` worker: the ``sync`` worker cannot keep connections alive and stalls
under a closed-loop load generator). Its packages are not clfserve's dependencies: they live in
``benchmarks/http/reference/.venv`` (git-ignored), made on first use. That environment reuses the
packages of the interpreter running the benchmark (a ``.pth`` file adds its site-packages, so
torch and transformers, which the export side already pins, are not installed twice) and pip
installs only what ``requirements.txt`` asks for beyond them, from the configured package index.
pip is never allowed to fetch torch: its default PyPI build is a multi-GB CUDA one.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from benchmarks.http.server import running_process

FOLDER = Path(__file__).resolve().parent / "reference"
VENV = FOLDER / ".venv"
REQUIREMENTS = FOLDER / "requirements.txt"
GUNICORN_THREADS = 8
"""Request threads of the one gunicorn worker (torch releases the GIL inside a forward pass)."""


def _python() -> Path:
    return VENV / "bin" / "python"


def _pinned(name: str) -> str | None:
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(rf"{name}==(\S+)", line.strip())
        if match:
            return match.group(1)
    return None


def ensure_environment() -> Path:
    """The reference environment's interpreter, made (or brought up to date) first if needed."""
    stamp = VENV / ".requirements-sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if _python().is_file() and stamp.is_file() and stamp.read_text() == wanted:
        return _python()
    torch_pin = _pinned("torch")
    try:
        have = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        have = None
    if have is None or (torch_pin and have.split("+")[0] != torch_pin):
        raise SystemExit(
            f"the reference server needs torch=={torch_pin} (CPU build) in this environment "
            f"(found {have}): install the export extra first (`make install`)"
        )
    print(f"reference server: preparing {VENV} ...", flush=True)
    if not _python().is_file():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    site = subprocess.run(
        [str(_python()), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "_benchmark_host.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8"
    )
    subprocess.run(
        [str(_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-r", str(REQUIREMENTS)],
        check=True, timeout=600,
    )  # fmt: skip
    stamp.write_text(wanted)
    return _python()


@contextlib.contextmanager
def running_reference(
    checkpoint: Path, max_length: int, threads: int, rate_limit: str, log_path: Path
) -> Iterator[str]:
    """A ready reference server on 127.0.0.1; yields its base URL, stops it on exit."""
    command = [
        str(ensure_environment()), "-m", "gunicorn", "--chdir", str(FOLDER),
        "--bind", "127.0.0.1:{port}", "--workers", "1", "--worker-class", "gthread",
        "--threads", str(GUNICORN_THREADS), "--log-level", "warning", "app:app",
    ]  # fmt: skip
    env = {
        "REFERENCE_CHECKPOINT": str(checkpoint),
        "REFERENCE_MAX_LENGTH": str(max_length),
        "REFERENCE_THREADS": str(threads),
        "REFERENCE_RATE_LIMIT": rate_limit,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    with running_process(command, env, log_path, "/health") as base:
        yield base
