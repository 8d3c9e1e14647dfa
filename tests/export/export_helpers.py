"""Helpers of the export tests: a quick export config and fp32 logits of a graph on texts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from clfserve.export.config import ExportConfig
from clfserve.export.feeds import text_feeds
from clfserve.runtime.manifest import Manifest


def small_export(checkpoint: Path, output: Path, **changes: Any) -> ExportConfig:
    """A quick export of a tiny checkpoint: 64 validation texts, no agreement floor."""
    defaults: dict[str, Any] = {"max_length": 64, "max_eval_samples": 64, "min_agreement": 0.0}
    return ExportConfig(checkpoint, output, **{**defaults, **changes})


def logits(model: Path, folder: Path, texts: Sequence[str]) -> np.ndarray:
    """The logits of graph ``model`` for ``texts``, tokenized as artefact ``folder`` says."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    rows = []
    for feed in text_feeds(folder, Manifest.read(folder), texts, batch_size=16):
        (out,) = session.run(["logits"], {k: v for k, v in feed.items() if k in wanted})
        rows.append(out)
    return np.concatenate(rows)
