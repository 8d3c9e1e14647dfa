"""The fp16 variant, for CUDA: ONNX Runtime's int8 on GPUs goes through TensorRT, not the CUDA
provider, which would run the int8 graph's dynamic quantization on the CPU; without fp16 a GPU
runs fp32, while half precision is what its tensor cores are fastest at.

The fp32 graph first goes through ONNX Runtime's BERT optimizer with its GPU fusions (fused
EmbedLayerNormalization, Attention, SkipLayerNormalization and BiasGelu), then its weights and
activations become float16. The inputs (token ids) and the logits keep their types, so the runtime
feeds and reads it like any other variant. Constants beyond float16's range are clamped to it (the
attention mask's ``finfo(float32).min`` becomes -1e4, which still zeroes a padded position after
softmax). A graph the optimizer cannot handle (another architecture) is converted unfused.

Measured on an NVIDIA H200 with onnxruntime-gpu 1.31.1 and the default model as exported (two
runs of 5 alternated rounds, medians; texts/s through `Classifier.predict`): at batch 64, fp32
12,245-12,373, fp16 unfused 17,550-20,440, this fused fp16 22,433-25,639; at batch 1, 444-627,
522-701 and 1,110-1,274. All three gave the same validation accuracy (0.8337) and the same labels
as fp32 on the CPU; the fused graph's probabilities were within 0.0037 of fp32's.

ONNX Runtime's CPU provider runs the graph too (slowly), so export validates it on the CPU like the
others: accuracy, macro-F1 and label agreement with fp32. The GPU rounds differently from the CPU;
the runtime's reference check bounds that difference when a GPU loads it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clfserve.export.errors import ExportError

if TYPE_CHECKING:
    from onnxruntime.transformers.onnx_model import OnnxModel

log = logging.getLogger(__name__)


def convert_fp16(
    source: Path, output: Path, num_heads: int = 0, hidden_size: int = 0
) -> dict[str, Any]:
    """Write ``source`` (an fp32 graph), fused for GPUs and in float16, to ``output``; return
    how it was made. ``num_heads`` and ``hidden_size`` guide the attention fusion (0: read them
    from the graph)."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    made: dict[str, Any] = {"method": "float16", "keep_io_types": True}
    with _quiet():
        try:
            model, made["fused"] = _fuse(source, num_heads, hidden_size)
        except Exception as exc:  # the optimizer raises untyped errors on graphs it does not know
            log.warning("fp16: ONNX Runtime's BERT fusions failed (%s); converting unfused", exc)
            model, made["fused"] = OnnxModel(onnx.load(str(source))), {}
            made["fusion_error"] = str(exc)
        try:
            model.convert_float_to_float16(keep_io_types=True)  # shape inference knows fused ops
        except Exception as exc:  # the converter raises untyped errors on graphs it cannot type
            raise ExportError(f"{source}: cannot convert to float16 ({exc})") from exc
        model.save_model_to_file(str(output))
    log.info("fp16 variant: %s (%.1f MB)", made["fused"] or "unfused", output.stat().st_size / 1e6)
    return made


def _fuse(source: Path, num_heads: int, hidden_size: int) -> tuple[OnnxModel, dict[str, int]]:
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(
        str(source), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, use_gpu=True
    )
    counts = model.get_fused_operator_statistics()
    return model, {name: int(count) for name, count in sorted(counts.items()) if count}


@contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's optimizer and converter log a line per fusion pass and per save at INFO."""
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
