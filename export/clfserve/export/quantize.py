"""fp32 ONNX -> int8 with dynamic quantization and per-channel weights, MatMul nodes only.

We quantize the raw export, not an ORT-optimized graph: quantizing a fused graph fails
("Unable to find data type for weight_name") without extra options. Per-channel weights agree
with fp32 on ~97 % of labels where per-tensor managed ~93 % (measured on the default model).
Only MatMul is quantized: the embedding tables (Gather) stay fp32. On the default model that
raised int8/fp32 label agreement from 0.977 to 0.980 and validation accuracy from 0.822 to
0.828 at the same speed (a Gather does no arithmetic); the file grows from 23 to 59 MB.
"""

from __future__ import annotations

import logging
from pathlib import Path

from clfserve.export.errors import ExportError

log = logging.getLogger(__name__)


def quantize_int8(source: Path, output: Path) -> None:
    """Write the int8 dynamic quantization of ``source`` to ``output``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs an INFO line per tensor and a generic "consider pre-processing" WARNING
    # on the root logger; neither is actionable here, so keep CLI output readable.
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(
            model_input=source,
            model_output=output,
            per_channel=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
        )
    except Exception as exc:  # onnxruntime.quantization raises bare exceptions
        raise ExportError(f"int8 quantization of {source} failed: {exc}") from exc
    finally:
        logging.disable(logging.NOTSET)
    log.info("quantized %s (%.1f MB)", output, output.stat().st_size / 1e6)
