"""The real default recipe end to end (minutes): opt in with CLFSERVE_RUN_SLOW=1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clfserve.runtime.manifest import Manifest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("CLFSERVE_RUN_SLOW") != "1",
        reason="trains all-MiniLM-L6-v2 for minutes; set CLFSERVE_RUN_SLOW=1",
    ),
]


def test_default_release_meets_the_quality_target(mlflow_tracking: str) -> None:
    clfserve = str(Path(sys.executable).with_name("clfserve"))
    result = subprocess.run(
        [clfserve, "release", "--no-progress", "--min-accuracy", "0.83", "--min-macro-f1", "0.83"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    from clfserve.registry import resolve_model

    folder = resolve_model("models:/clfserve-sentiment@champion").path
    int8 = Manifest.read(folder).validation["variants"]["int8"]
    assert int8["accuracy"] >= 0.83
    assert int8["macro_f1"] >= 0.83
