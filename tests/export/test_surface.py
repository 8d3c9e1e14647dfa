"""Public surface and import weight of the pipeline's modules."""

from __future__ import annotations

import subprocess
import sys

import clfserve.export


def test_export_package_surface() -> None:
    assert sorted(clfserve.export.__all__) == [
        "CheckpointError",
        "ExportConfig",
        "ExportError",
        "RegistryError",
        "ReleaseConfig",
        "TrainConfig",
        "ValidationFailed",
    ]


def test_lean_modules_stay_lean() -> None:
    """The service's staleness monitor imports these: no torch, transformers or mlflow."""
    code = (
        "import sys\n"
        "import clfserve.export, clfserve.export.registry\n"
        "import clfserve.evaluation.datasets, clfserve.evaluation.scores, clfserve.evaluation.evaluate\n"
        "heavy = {'torch', 'transformers', 'mlflow', 'optimum', 'onnx'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
