"""Opening the model a URI names: resolve it (a folder, or a version in the MLflow registry),
keep a local copy of registry versions, then open it in ONNX Runtime with this process's share
of the CPUs. Blocking; the service runs it in a thread."""

from __future__ import annotations

import dataclasses
import logging

from clfserve.registry import (
    RegistryError,
    ResolvedModel,
    is_registry_uri,
    keep_local_copy,
    parse_model_uri,
    resolve_model,
)
from clfserve.runtime import Classifier, ModelLoadError
from clfserve.runtime.resources import cpu_calls, usable_cpus
from clfserve.service.model_state import Model
from clfserve.service.settings import Settings

log = logging.getLogger(__name__)


SPARE_CALLS = 1
"""Model calls allowed beyond the CPU layout's when each call has one intra-op thread. When a
call ends, its core would wait while the event loop answers the call's requests and forms the
next batch; a spare call already holds the GIL-free work that core can run meanwhile. Measured
on 2 vCPUs (`/predict`, cache off, alternated rounds, 3 calls against 2): at 64 connections
1.14x (1.01-1.23x) and 1.04x (0.99-1.09x) the req/s in two runs of 4 rounds, with the server's
CPU use up from 90-93 % to 96 %; at 16 connections 1.02x (0.86-1.11x, 7 rounds); a fourth call
added nothing (1.00x). Measured later with the servers side by side, taking 2 s turns (3 rounds
each), 2 calls ran 1.06x (1.04-1.07x) the 3, then 0.94x (0.93-0.99x) in the next run: the
spare's effect is within what moves between runs, and it stays. Calls of several threads get no
spare: their threads would oversubscribe the cores."""


CUDA_CALLS = 1
"""Model calls at once on CUDA. Measured on an NVIDIA H200 (onnxruntime-gpu 1.31.1, the default
model's fp16 graph):

- the runtime alone (one session, threads each predicting distinct batches of 64 reviews, 7
  alternated rounds after 3 warm-up passes): 1 call 25,166 texts/s (24,237-27,198), 2 calls
  41,414 (40,231-44,581), 4 calls 50,170 but 8,514 and 29,354 in the first two rounds;
- the service (one server process, 2 alternated rounds of 6 s, Python clients on the same
  machine): `/batch_predict` of 64 reviews at 8 connections 15,104-15,744 texts/s with 1 call and
  18,176-19,904 with 2 (1.23x), but `/predict` at 64 connections 613-646 req/s with 1 call and
  471-546 with 2 (0.81x). What holds `/predict` near 630 req/s there (p50 ~100 ms at 64
  connections, while the GPU runs a batch of 64 in ~2.5 ms) was not established.

One call stays the default because `/predict` is the route most traffic takes; set
``CLFSERVE_INFERENCE_WORKERS=2`` where batches dominate."""


def inference_workers(settings: Settings, cpus: int | None = None) -> int:
    """``CLFSERVE_INFERENCE_WORKERS``, or on CPU the calls of the CPU layout for this process's
    share of ``cpus`` (under ``--workers``): 2 from 2 CPUs up, else 1, plus `SPARE_CALLS` when
    those calls get one thread each (3 on 2 or 3 CPUs). With CUDA (``cuda``, or ``auto`` where
    ONNX Runtime offers it) `CUDA_CALLS`."""
    if settings.inference_workers is not None:
        return settings.inference_workers
    if settings.device == "cuda" or (settings.device == "auto" and _cuda_offered()):
        return CUDA_CALLS
    share = (cpus or usable_cpus()) // settings.workers
    calls = cpu_calls(share)
    return calls + SPARE_CALLS if calls > 1 and share // calls == 1 else calls


def _cuda_offered() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def intra_op_threads(settings: Settings, cpus: int | None = None) -> int:
    """``CLFSERVE_THREADS``, or the usable CPUs split between the model calls that may run at
    once (server processes x inference workers), so they do not fight over the same cores."""
    if settings.threads is not None:
        return settings.threads
    cpus = cpus or usable_cpus()
    return max(1, cpus // (settings.workers * inference_workers(settings, cpus)))


def resolve(uri: str) -> ResolvedModel:
    """A local folder for ``uri``; registry versions are copied under the clfserve home (kept
    for starts while the registry is down). `ModelLoadError` with the reason."""
    try:
        resolved = resolve_model(uri)
        if resolved.version is None:
            return resolved
        alias = parse_model_uri(uri).alias if is_registry_uri(uri) else None
        kept = keep_local_copy(resolved, alias)
    except RegistryError as exc:
        raise ModelLoadError(str(exc)) from exc
    except OSError as exc:
        raise ModelLoadError(f"{uri}: could not keep a local copy ({exc})") from exc
    except Exception as exc:  # MLflow raises its own hierarchy (and OSError when unreachable)
        raise ModelLoadError(f"{uri}: could not be resolved ({type(exc).__name__}: {exc})") from exc
    log.info("resolved %s to %s v%s at %s", uri, kept.name, kept.version, kept.path)
    return kept


def open_model(settings: Settings, resolved: ResolvedModel) -> Model:
    """Open ``resolved`` in ONNX Runtime, not yet warmed (the gateway warms and vets it)."""
    classifier = Classifier.load(
        resolved.path,
        device=settings.device,
        variant=settings.variant,
        batch_size=settings.batch_size,
        run_cost=settings.run_cost,
        threads=intra_op_threads(settings),
        spinning=settings.thread_spinning,
        warmup=False,
    )
    if resolved.name is not None and resolved.version is not None:
        # Clients and operators know the model by its registry name and version number.
        classifier.info = dataclasses.replace(
            classifier.info, name=resolved.name, version=resolved.version
        )
    return classifier


def load_model(settings: Settings) -> Model:
    """The model ``settings.model_uri`` names, opened (the app's default loader)."""
    return open_model(settings, resolve(settings.model_uri))
