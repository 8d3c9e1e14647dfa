"""The seam between the service and the runtime: what a predictor is, and how one is loaded."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from clfserve.runtime import Classifier, ModelInfo, ModelLoadError, Prediction
from clfserve.runtime.resources import usable_cpus
from clfserve.service.settings import Settings

log = logging.getLogger(__name__)


class Predictor(Protocol):
    """Anything that predicts texts and says which model it is; `Classifier` is one."""

    @property
    def info(self) -> ModelInfo: ...

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Predict every text, results in the caller's order; must be safe to call from threads."""
        ...


@dataclass(frozen=True)
class ModelSource:
    """Where a model URI led: a local folder, plus the registry identity when there is one."""

    path: Path
    name: str | None = None
    version: str | None = None


def resolve_model_path(uri: str) -> Path:
    """A local artefact folder for ``uri``: the folder itself, or MLflow's download of it."""
    return resolve_model_source(uri).path


def resolve_model_source(uri: str) -> ModelSource:
    """Resolve ``uri``; registry URIs also yield the registered name and version number."""
    local = Path(uri).expanduser()
    if local.is_dir():
        return ModelSource(local)
    if "://" not in uri and not uri.startswith("models:/"):
        raise ModelLoadError(f"{uri}: no such artefact folder")
    try:  # on demand: resolving goes through MLflow
        from clfserve.export.registry import resolve_model_uri
    except ImportError as exc:
        raise ModelLoadError(f"{uri}: cannot resolve model URIs here ({exc})") from exc
    try:
        resolved = resolve_model_uri(uri)
    except ModelLoadError:
        raise
    except Exception as exc:  # MLflow raises its own hierarchy (and OSError when unreachable)
        raise ModelLoadError(f"{uri}: could not be resolved ({type(exc).__name__}: {exc})") from exc
    log.info("resolved %s to %s v%s at %s", uri, resolved.name, resolved.version, resolved.path)
    version = None if resolved.version is None else str(resolved.version)
    return ModelSource(Path(resolved.path), resolved.name, version)


def intra_op_threads(settings: Settings, cpus: int | None = None) -> int:
    """``CLFSERVE_THREADS``, or the usable CPUs split between the runtime calls that may run at
    once (server processes x inference workers), so they do not fight over the same cores."""
    if settings.threads is not None:
        return settings.threads
    cpus = cpus or usable_cpus()
    return max(1, cpus // (settings.workers * settings.inference_workers))


def load_classifier(settings: Settings) -> Predictor:
    """Resolve ``settings.model_uri`` and load it into ONNX Runtime, warmed up (blocking)."""
    source = resolve_model_source(settings.model_uri)
    classifier = Classifier.load(
        source.path,
        device=settings.device,
        variant=settings.variant,
        batch_size=settings.batch_size,
        threads=intra_op_threads(settings),
    )
    if source.name is not None and source.version is not None:
        # Clients and operators know the model by its registry name and version number.
        classifier.info = dataclasses.replace(
            classifier.info, name=source.name, version=source.version
        )
    return classifier
