"""Loading the model the settings name: resolve it (a folder, or the MLflow registry), then open
it in ONNX Runtime with this process's share of the CPUs. Blocking; the app runs it in a thread."""

from __future__ import annotations

import dataclasses
import logging

from clfserve.registry import RegistryError, resolve_model
from clfserve.runtime import Classifier, ModelLoadError
from clfserve.runtime.resources import usable_cpus
from clfserve.service.model_state import Model
from clfserve.service.settings import Settings

log = logging.getLogger(__name__)


def intra_op_threads(settings: Settings, cpus: int | None = None) -> int:
    """``CLFSERVE_THREADS``, or the usable CPUs split between the model calls that may run at
    once (server processes x inference workers), so they do not fight over the same cores."""
    if settings.threads is not None:
        return settings.threads
    cpus = cpus or usable_cpus()
    return max(1, cpus // (settings.workers * settings.inference_workers))


def load_model(settings: Settings) -> Model:
    """Resolve ``settings.model_uri`` and open it, not yet warmed (the gateway warms it)."""
    uri = settings.model_uri
    try:
        resolved = resolve_model(uri)
    except RegistryError as exc:
        raise ModelLoadError(str(exc)) from exc
    except Exception as exc:  # MLflow raises its own hierarchy (and OSError when unreachable)
        raise ModelLoadError(f"{uri}: could not be resolved ({type(exc).__name__}: {exc})") from exc
    if resolved.version is not None:
        log.info("resolved %s to %s v%s at %s", uri, resolved.name, resolved.version, resolved.path)
    classifier = Classifier.load(
        resolved.path,
        device=settings.device,
        variant=settings.variant,
        batch_size=settings.batch_size,
        threads=intra_op_threads(settings),
        warmup=False,
    )
    if resolved.name is not None and resolved.version is not None:
        # Clients and operators know the model by its registry name and version number.
        classifier.info = dataclasses.replace(
            classifier.info, name=resolved.name, version=resolved.version
        )
    return classifier
