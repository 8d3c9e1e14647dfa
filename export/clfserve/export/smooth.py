"""Activation smoothing before dynamic int8 quantization (SmoothQuant, Xiao et al. 2022).

Dynamic quantization gives each MatMul input one scale for the whole tensor. In the default
model one hidden channel of the layers' output LayerNorm peaks near 28 while the median
channel peaks near 2 (GELU outputs likewise), so that one channel decides the scale and the
others keep ~4 bits. Smoothing divides every input channel j by

    s_j = max|X_j| ** alpha / max|W_j| ** (1 - alpha)

in a `Mul` inserted before the MatMul(s) reading X, and multiplies row j of their weights by
s_j: the fp32 function is unchanged, the activation range moves into the (per-channel
quantized) weights. ``max|X_j|`` comes from running the fp32 graph on calibration texts.

On the default model, int8/fp32 label agreement at batch 8 (validation / test): plain 0.977 / 0.980;
alpha 0.5 0.966 / 0.965; 0.7 0.980 / 0.987; 0.8 0.994 / 0.988; 0.9 0.984 / 0.988;
1.0 0.986 / 0.990. The `Mul`s cost ~3 % per call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from clfserve.export.errors import ExportError
from clfserve.export.feeds import Feed

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto

DEFAULT_ALPHA = 0.8
SUFFIX = "_smoothed"


@dataclass(frozen=True)
class SmoothReport:
    """What smoothing did: how many MatMul inputs it rescaled and how skewed they were."""

    alpha: float
    inputs: int
    """Distinct activation tensors rescaled (one `Mul` each)."""
    matmuls: int
    worst_channel_ratio: float
    """Largest max-channel / median-channel peak over those inputs, before smoothing."""


def smooth_model(
    source: Path,
    output: Path,
    feeds: Iterable[Feed],
    alpha: float = DEFAULT_ALPHA,
) -> SmoothReport:
    """Write to ``output`` the graph of ``source`` with its weight MatMul inputs smoothed."""
    import onnx

    if not 0.0 < alpha <= 1.0:
        raise ExportError(f"smoothing alpha must be in (0, 1], not {alpha}")
    model = onnx.load(str(source))
    groups = _weight_matmuls(model)
    peaks = activation_peaks(model, list(groups), feeds) if groups else {}
    weights = {init.name: init for init in model.graph.initializer}
    muls: dict[str, NodeProto] = {}
    worst = 0.0
    for tensor, nodes in groups.items():
        peak = np.maximum(peaks[tensor], 1e-5)
        worst = max(worst, float(peak.max() / np.median(peak)))
        arrays = [onnx.numpy_helper.to_array(weights[node.input[1]]) for node in nodes]
        weight_peak = np.maximum(np.max([np.abs(w).max(axis=1) for w in arrays], axis=0), 1e-5)
        scale = (peak**alpha / weight_peak ** (1.0 - alpha)).astype(np.float32)
        for node, array in zip(nodes, arrays, strict=True):
            scaled = (array * scale[:, None]).astype(np.float32)
            weights[node.input[1]].CopyFrom(onnx.numpy_helper.from_array(scaled, node.input[1]))
            node.input[0] = tensor + SUFFIX
        inverse = onnx.numpy_helper.from_array((1.0 / scale).astype(np.float32), tensor + "_scale")
        model.graph.initializer.append(inverse)
        muls[nodes[0].name] = onnx.helper.make_node(
            "Mul", [tensor, inverse.name], [tensor + SUFFIX], name=tensor + "_smooth"
        )
    _insert_before(model, muls)
    onnx.save(model, str(output))
    return SmoothReport(
        alpha=alpha,
        inputs=len(groups),
        matmuls=sum(len(nodes) for nodes in groups.values()),
        worst_channel_ratio=round(worst, 1),
    )


def activation_peaks(
    model: ModelProto, tensors: list[str], feeds: Iterable[Feed]
) -> dict[str, npt.NDArray[np.float32]]:
    """Per-channel max |value| of each named tensor (last axis) over all ``feeds``."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in tensors:
        output = onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        probe.graph.output.append(output)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    peaks: dict[str, npt.NDArray[np.float32]] = {}
    for feed in feeds:
        outputs = session.run(tensors, {k: v for k, v in feed.items() if k in wanted})
        for name, value in zip(tensors, outputs, strict=True):
            array = np.asarray(value)
            peak = np.abs(array).reshape(-1, array.shape[-1]).max(axis=0)
            peaks[name] = np.maximum(peaks[name], peak) if name in peaks else peak
    if not peaks:
        raise ExportError("smoothing needs at least one calibration text")
    return peaks


def _weight_matmuls(model: ModelProto) -> dict[str, list[NodeProto]]:
    """MatMul nodes whose B is a 2-D initializer (the ones int8 quantizes), by input A.

    A weight that anything else also reads (tied weights) is left alone: rescaling it would
    change that other reader.
    """
    two_d = {init.name for init in model.graph.initializer if len(init.dims) == 2}
    readers = Counter(name for node in model.graph.node for name in node.input)
    groups: dict[str, list[NodeProto]] = {}
    for node in model.graph.node:
        weight = node.input[1] if len(node.input) > 1 else ""
        if node.op_type == "MatMul" and weight in two_d and readers[weight] == 1:
            groups.setdefault(node.input[0], []).append(node)
    return groups


def _insert_before(model: ModelProto, muls: Mapping[str, NodeProto]) -> None:
    """Put each new `Mul` just before the first node that reads its output (graphs are sorted)."""
    nodes = list(model.graph.node)
    del model.graph.node[:]
    for node in nodes:
        if node.name in muls:
            model.graph.node.append(muls[node.name])
        model.graph.node.append(node)
