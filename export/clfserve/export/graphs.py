"""The int8 graphs export can build from one fp32 graph (`Int8Graph`), all from the same
calibration texts:

- ``mul``: SmoothQuant with each ``1/s`` in a `Mul` node, then dynamic int8 (MatMul only);
- ``plain``: dynamic int8 of the raw graph, no smoothing;
- ``folded``: SmoothQuant folded into the graph (`clfserve.export.smooth`, ``fold``), then
  dynamic int8;
- ``fused``: smoothing folded where no node is added (``free``), ORT's BERT fusions (those
  faster on CPU, `clfserve.export.quantize.fuse_bert`), the feed-forward inputs' outlier
  channels smoothed by pass-through units (`clfserve.export.passthrough`) and the hidden units
  that spike on one token split (`clfserve.export.spikes`), neither adding a node, then dynamic
  int8 with QAttention;
- ``static``: folded smoothing, then static QDQ int8 calibrated on the texts.

Every graph is trimmed before it is quantized (`clfserve.export.trim`): the last layer computes
only the row the classifier reads and the attention reshapes get constant targets, checked to
leave the fp32 logits as they were. ``fused`` is trimmed after its fusions (ORT's attention
fusion needs each layer's full Q/K/V pattern): its last layer's output projection and
feed-forward run on one row.

``auto`` builds `AUTO_CANDIDATES` and keeps the one `clfserve.export.choice` measures fastest
among those that keep the fp32 answers.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, get_args

from clfserve.export.config import Int8Graph
from clfserve.export.errors import ExportError
from clfserve.export.feeds import Feed, text_feeds
from clfserve.export.passthrough import pass_through
from clfserve.export.quantize import fuse_bert, quantize_fused, quantize_int8, quantize_static
from clfserve.export.smooth import Peaks, Placement, calibrate, smooth_model
from clfserve.export.spikes import split_spikes
from clfserve.export.trim import trim_model
from clfserve.runtime.manifest import Manifest

GRAPHS: tuple[str, ...] = get_args(Int8Graph)[1:]
AUTO_CANDIDATES: tuple[str, ...] = ("mul", "plain", "folded", "fused")
"""What ``auto`` measures: ``mul`` stays in as the graph the others must beat. ``static`` does
not: per-tensor activation ranges fixed in advance agreed with fp32 on 0.875 of the default
model's validation labels (dynamic int8: 0.978-0.991)."""
CALIBRATION_BATCH = 32
_SMOOTHING: dict[str, Placement | None] = {
    "mul": "mul",
    "plain": None,
    "folded": "fold",
    "fused": "free",
    "static": "fold",
}


@dataclass(frozen=True)
class Calibration:
    """The fp32 graph of an artefact folder and the texts that calibrate its int8 graphs."""

    folder: Path
    manifest: Manifest
    texts: Sequence[str]
    alpha: float
    """SmoothQuant strength; 0 = no smoothing for any graph."""
    num_heads: int = 0
    hidden_size: int = 0
    """Attention heads and hidden width for ORT's fusions (0: ORT reads them from the graph)."""
    trim: bool = True
    """Trim the fp32 graph before quantizing it (`clfserve.export.trim`)."""

    @property
    def fp32(self) -> Path:
        return self.folder / self.manifest.variants["fp32"].file

    def feeds(self) -> Iterator[Feed]:
        """The calibration texts as the graph's inputs, in length-sorted batches."""
        for feed in text_feeds(self.folder, self.manifest, self.texts, CALIBRATION_BATCH):
            yield {name: feed[name] for name in self.manifest.inputs}

    @functools.cached_property
    def peaks(self) -> Peaks:
        return calibrate(self.fp32, self.feeds())


def int32_inputs(source: Path, output: Path) -> None:
    """Write ``source`` with its int64 inputs declared int32 (token ids and masks fit; the
    runtime feeds whatever dtype the session declares)."""
    import onnx

    model = onnx.load(str(source))
    for graph_input in model.graph.input:
        if graph_input.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            graph_input.type.tensor_type.elem_type = onnx.TensorProto.INT32
    del model.graph.value_info[:]  # inferred int64 types downstream; ORT infers them again
    onnx.save(model, str(output))


def build_graph(kind: str, calibration: Calibration, output: Path) -> dict[str, Any]:
    """Write the int8 graph ``kind`` to ``output``; return how it was made (for the manifest)."""
    if kind not in GRAPHS:
        raise ExportError(f"unknown int8 graph {kind!r}; choose from {', '.join(GRAPHS)}")
    placement = _SMOOTHING[kind] if calibration.alpha > 0 and calibration.texts else None
    method = "static" if kind == "static" else "dynamic"
    made: dict[str, Any] = {"method": method, "per_channel": True, "smoothing": None}
    source = calibration.fp32
    smoothed = output.with_name(f".{output.name}.smoothed")
    fused = output.with_name(f".{output.name}.fused")
    passed = output.with_name(f".{output.name}.passed")
    split = output.with_name(f".{output.name}.split")
    trimmed = output.with_name(f".{output.name}.trimmed")
    try:
        if placement is not None:
            report = smooth_model(source, smoothed, calibration.peaks, calibration.alpha, placement)
            made["smoothing"] = {**asdict(report), "calibration_texts": len(calibration.texts)}
            source = smoothed
        if kind == "fused":  # before the trim: ORT fuses attention only with full Q/K/V
            made["fused"] = fuse_bert(source, fused, calibration.num_heads, calibration.hidden_size)
            source = fused
            if placement is not None:  # smoothing on: the outliers the fold could not reach
                made["pass_through"] = asdict(pass_through(source, passed, calibration.feeds()))
                made["spikes"] = asdict(split_spikes(passed, split, calibration.feeds))
                source = split
        if calibration.trim:
            made["trim"] = asdict(trim_model(source, trimmed, calibration.feeds()))
            source = trimmed
        if kind == "fused":
            quantize_fused(source, output)
        elif kind == "static":
            made["calibration_texts"] = len(calibration.texts)
            quantize_static(source, output, calibration.feeds)
        else:
            quantize_int8(source, output)
    finally:
        for temporary in (smoothed, fused, passed, split, trimmed):
            temporary.unlink(missing_ok=True)
    return made
