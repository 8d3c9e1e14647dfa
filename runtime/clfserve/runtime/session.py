"""Build ONNX Runtime sessions and find out which execution provider they really got.

onnxruntime-gpu lists CUDA as available even where no driver exists and then silently falls back
to CPU, so the truth is `session.get_providers()` after creation, never the request.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import onnxruntime as ort

from clfserve.runtime.errors import ModelLoadError, ProviderError

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
CPU_FUSIONS_OFF = ("SkipLayerNormFusion",)
"""ONNX Runtime graph fusions a CPU-only session leaves off, because the unfused graph is faster.

``SkipLayerNormFusion`` turns a residual ``Add`` + ``LayerNormalization`` into one
``SkipLayerNormalization``, whose float CPU kernel (in ONNX Runtime's source) normalises each row
in a plain loop with a running sum. With onnxruntime 1.32 on a 2-vCPU Xeon and one intra-op thread
it took 530 us against 73 us for the unfused pair on one (8, 26, 384) float tensor, and the default
model's int8 graph ran 1.14-1.28x the texts/s in length-sorted chunks of 8 and 1.14-1.16x one text
at a time (two runs of 5 and 11 alternated rounds); with two threads per call the two were within
noise. The kernels round differently, so int8 answers may move on a borderline text: on the default
model one validation text in 1,275 changed label (int8 probability 0.503 -> 0.501), and two test
texts in 1,276, one each way. Only graphs where the fusion applies change: the default model's int8
graph, not its fp32 export. CUDA sessions keep every fusion.
"""


@dataclass(frozen=True)
class SessionInputs:
    """The graph's declared inputs: names in order and the numpy dtype each expects."""

    names: tuple[str, ...]
    dtypes: tuple[str, ...]


def cuda_listed() -> bool:
    """Whether this onnxruntime build lists CUDA (not proof that CUDA works)."""
    return CUDA in ort.get_available_providers()


@functools.cache
def preload_cuda_libraries() -> None:
    """Load CUDA/cuDNN from the nvidia-* wheels so onnxruntime-gpu works without torch imported."""
    try:
        ort.preload_dlls()
    except Exception as exc:  # missing libraries surface later as a CPU fallback, logged there
        log.debug("onnxruntime.preload_dlls() failed: %s", exc)


def requested_providers(device: Device) -> list[str]:
    if device == "cpu":
        return [CPU]
    if device == "cuda":
        return [CUDA, CPU]
    return [CUDA, CPU] if cuda_listed() else [CPU]


def create_session(
    path: Path,
    providers: list[str],
    threads: int,
    *,
    cuda_tf32: bool = False,
    spinning: bool = True,
    fusions_off: Sequence[str] | None = None,
) -> ort.InferenceSession:
    """An inference session on ``path`` with ``threads`` intra-op threads.

    ``spinning=False`` makes idle intra-op threads sleep at once instead of busy-waiting for
    the next piece of work (ONNX Runtime's ``session.intra_op.allow_spinning``): less CPU burnt
    between calls, which other threads of the process (an event loop) get instead.

    On CUDA, TF32 matmuls are off unless ``cuda_tf32``: measured on an H100 with the default
    model they moved logits by up to 1.7e-3 from the CPU reference (2e-6 without) for a 1.7x
    faster batch-32 run, and the export validated the model at fp32 precision.

    ``fusions_off`` names ONNX Runtime graph fusions to skip; None means `CPU_FUSIONS_OFF` for a
    CPU-only session and none otherwise.
    """
    chosen: list[str | tuple[str, dict[str, str]]] = list(providers)
    if CUDA in providers and cuda_listed():
        preload_cuda_libraries()
        chosen = [
            (CUDA, {"use_tf32": "1" if cuda_tf32 else "0"}) if p == CUDA else p for p in providers
        ]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if fusions_off is None:
        fusions_off = CPU_FUSIONS_OFF if providers == [CPU] else ()
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=chosen, disabled_optimizers=list(fusions_off)
        )
    except Exception as exc:  # ORT raises its own untyped errors for corrupt graphs
        raise ModelLoadError(f"{path}: ONNX Runtime cannot load it ({exc})") from exc


def check_device(device: Device, got: list[str]) -> None:
    """Raise when CUDA was demanded but the session runs on something else."""
    if device == "cuda" and CUDA not in got:
        reason = (
            "this onnxruntime build has no CUDA provider (install onnxruntime-gpu)"
            if not cuda_listed()
            else "CUDA is listed but could not be initialised (no GPU, driver or CUDA/cuDNN libs)"
        )
        raise ProviderError(f"device='cuda' requested but not obtained: {reason}; got {got}")


def session_inputs(session: ort.InferenceSession) -> SessionInputs:
    declared = session.get_inputs()
    dtypes = tuple("int32" if i.type == "tensor(int32)" else "int64" for i in declared)
    return SessionInputs(names=tuple(i.name for i in declared), dtypes=dtypes)
