"""The Dockerfile, checked without building it: hadolint, and what the image must (not) hold."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (the dev extra installs it on Linux x86-64)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_one_file_builds_cpu_and_gpu_from_a_build_argument() -> None:
    steps = instructions()
    assert ("ARG", "ORT=cpu") in steps
    froms = [args for name, args in steps if name == "FROM"]
    assert "${CPU_BASE} AS base-cpu" in froms
    assert "${GPU_BASE} AS base-gpu" in froms
    assert froms[-1] == "base-${ORT}"  # the final stage follows the argument
    assert any('".[${ORT},service]"' in args for name, args in steps if name == "RUN")


def test_the_final_stage_runs_as_a_non_root_user_without_a_model() -> None:
    steps = instructions()
    final = steps[max(i for i, (name, _) in enumerate(steps) if name == "FROM") :]
    users = [args for name, args in final if name == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    copied = " ".join(args for name, args in steps if name in ("COPY", "ADD"))
    assert ".clfserve" not in copied
    assert "artefacts" not in copied
    assert not any("CLFSERVE_MODEL_URI" in args for name, args in steps if name == "ENV")
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".clfserve" in ignored  # a local registry never lands in the build context
    assert ".venv" in ignored
