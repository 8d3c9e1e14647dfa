"""Activation smoothing before int8 quantization (SmoothQuant, Xiao et al. 2022).

Dynamic quantization gives each MatMul input one scale for the whole tensor. In the default
model one hidden channel of the layers' output LayerNorm peaks near 28 while the median
channel peaks near 2 (GELU outputs likewise), so that one channel decides the scale and the
others keep ~4 bits. Smoothing divides every input channel j by

    s_j = max|X_j| ** alpha / max|W_j| ** (1 - alpha)

and multiplies row j of the weights of the MatMul(s) reading X by s_j: the fp32 function is
unchanged, the activation range moves into the (per-channel quantized) weights. ``max|X_j|``
comes from running the fp32 graph on calibration texts.

Where the ``1/s`` goes (`Placement`):

- ``mul``: a `Mul` node before the MatMul(s).
- ``fold``: into the node that makes X where that adds nothing: the weight columns and bias of
  the value projection when X is the attention context (softmax·V is linear in V, channel for
  channel), or the gamma and beta of a LayerNormalization only the MatMuls read (pre-LN
  models). Elsewhere a `Mul`.
- ``free``: as ``fold``, but inputs that would need a `Mul` stay unsmoothed.

In post-LN BERT the LayerNorm before Q/K/V and the FFN also feeds the residual `Add`, so its
gamma/beta cannot carry ``1/s``; a scaled copy of the LayerNorm stops ONNX Runtime fusing
Add+LayerNorm into SkipLayerNormalization, and folding ``1/s`` into GELU's ``* 0.5`` constant
stops its Gelu fusion. Kernels after ORT's optimizations on the default model: 181 unsmoothed,
205 with `Mul`s, 204 with LayerNorm copies (unfused Add + 2 LayerNorms each), 222 with copies
and the GELU fold: neither beats the `Mul` it replaces, so ``fold`` does not do them and keeps
18 of the 24 `Mul`s. On the default model (2 vCPUs, dynamic int8) the 24 `Mul`s of ``mul``
cost ~2 % at batch 1 and ~5 % at the serving batch of 32 texts (256 vs 261 and 330 vs 350
texts/s unsmoothed, medians of 5 alternated rounds on a quiet 2-vCPU Xeon; an earlier
measurement on a 2-vCPU EPYC put the batch-1 cost at ~25 %, 258 vs 336).

On the default model, int8/fp32 label agreement at batch 8 (validation / test), ``mul``: plain
0.977 / 0.980; alpha 0.5 0.966 / 0.965; 0.7 0.980 / 0.987; 0.8 0.994 / 0.988; 0.9 0.984 / 0.988;
1.0 0.986 / 0.990.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from clfserve.export.errors import ExportError
from clfserve.export.feeds import Feed

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto

DEFAULT_ALPHA = 0.8
SUFFIX = "_smoothed"
Placement = Literal["mul", "fold", "free"]
Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class SmoothReport:
    """What smoothing did: how many MatMul inputs it rescaled and how skewed they were."""

    alpha: float
    inputs: int
    """Distinct activation tensors rescaled."""
    matmuls: int
    worst_channel_ratio: float
    """Largest max-channel / median-channel peak over those inputs, before smoothing."""
    placement: Placement = "mul"
    placed: dict[str, int] = field(default_factory=dict)
    """Where each input's ``1/s`` went: ``mul``, ``layernorm``, ``value`` (or ``skipped``: left
    unsmoothed by ``free``)."""


Peaks = Mapping[str, npt.NDArray[np.float32]]
"""Per-channel max |value| of each weight-MatMul input, from `calibrate`."""


def calibrate(source: Path, feeds: Iterable[Feed]) -> Peaks:
    """Activation peaks of ``source``'s weight-MatMul inputs over ``feeds`` (one pass, shared
    by every smoothing of the same graph)."""
    import onnx

    model = onnx.load(str(source))
    groups = _weight_matmuls(model)
    return activation_peaks(model, list(groups), feeds) if groups else {}


def smooth_model(
    source: Path,
    output: Path,
    peaks: Peaks,
    alpha: float = DEFAULT_ALPHA,
    placement: Placement = "mul",
) -> SmoothReport:
    """Write to ``output`` the graph of ``source`` with its weight MatMul inputs smoothed,
    scales from ``peaks`` (`calibrate` on the same graph)."""
    import onnx

    if not 0.0 < alpha <= 1.0:
        raise ExportError(f"smoothing alpha must be in (0, 1], not {alpha}")
    model = onnx.load(str(source))
    groups = _weight_matmuls(model)
    if set(groups) - set(peaks):
        raise ExportError(f"{source}: the peaks come from another graph")
    graph = _Graph(model)
    placed: Counter[str] = Counter()
    worst = 0.0
    smoothed = 0
    for tensor, nodes in groups.items():
        peak = np.maximum(peaks[tensor], 1e-5)
        arrays = [graph.array(node.input[1]) for node in nodes]
        weight_peak = np.maximum(np.max([np.abs(w).max(axis=1) for w in arrays], axis=0), 1e-5)
        scale = (peak**alpha / weight_peak ** (1.0 - alpha)).astype(np.float32)
        where = graph.place_inverse(tensor, nodes, scale, placement)
        placed[where] += 1
        if where == "skipped":
            continue
        smoothed += 1
        worst = max(worst, float(peak.max() / np.median(peak)))
        for node, array in zip(nodes, arrays, strict=True):
            graph.set_array(node.input[1], array * scale[:, None])
    graph.finish()
    onnx.save(model, str(output))
    return SmoothReport(
        alpha=alpha,
        inputs=smoothed,
        matmuls=sum(len(nodes) for t, nodes in groups.items() if graph.smoothed(t)),
        worst_channel_ratio=round(worst, 1),
        placement=placement,
        placed=dict(sorted(placed.items())),
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


_CHANNEL_PRESERVING = ("Reshape", "Transpose")
"""Ops between V's projection and the attention context that move channels without mixing
them (BERT splits heads as h*64+d and merges them back the same way)."""


class _Graph:
    """Edits of one ModelProto: initializer access, readers, and where ``1/s`` can go."""

    def __init__(self, model: ModelProto) -> None:
        self.model = model
        self.inits = {init.name: init for init in model.graph.initializer}
        self.producer = {out: node for node in model.graph.node for out in node.output}
        self.readers = Counter(name for node in model.graph.node for name in node.input)
        self.readers.update(out.name for out in model.graph.output)
        for node in model.graph.node:  # a Shape reads no values: scaling cannot change it
            if node.op_type == "Shape":
                self.readers[node.input[0]] -= 1
        self._skipped: set[str] = set()
        self._added: dict[str, list[NodeProto]] = {}

    def array(self, name: str) -> Array:
        import onnx

        return onnx.numpy_helper.to_array(self.inits[name]).astype(np.float32)

    def set_array(self, name: str, value: Array) -> None:
        import onnx

        array = value.astype(np.float32)
        self.inits[name].CopyFrom(onnx.numpy_helper.from_array(array, name))

    def smoothed(self, tensor: str) -> bool:
        return tensor not in self._skipped

    def place_inverse(
        self, tensor: str, nodes: Sequence[NodeProto], scale: Array, placement: Placement
    ) -> str:
        """Apply ``tensor / scale`` for ``nodes``; return where it went."""
        inverse = (1.0 / scale).astype(np.float32)
        if placement != "mul":
            node = self.producer.get(tensor)
            exclusive = self.readers[tensor] == len(nodes)
            if node is not None and exclusive and self._fold_into(node, inverse):
                return _kind(node)
            if placement == "free":
                self._skipped.add(tensor)
                return "skipped"
        self._mul(tensor, nodes, inverse)
        return "mul"

    # -- placements -------------------------------------------------------------------------

    def _fold_into(self, node: NodeProto, inverse: Array) -> bool:
        if self._norm(node):
            for name in node.input[1:3]:
                self.set_array(name, self.array(name) * inverse)
            return True
        projection = self._value_projection(node)
        if projection is not None:
            weight, bias = projection
            self.set_array(weight, self.array(weight) * inverse[None, :])
            if bias is not None:
                self.set_array(bias, self.array(bias) * inverse)
            return True
        return False

    def _norm(self, node: NodeProto) -> bool:
        """A LayerNorm over the last axis whose gamma and beta are initializers of their own."""
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        params = node.input[1:3]
        return (
            node.op_type == "LayerNormalization"
            and axis == -1
            and len(params) == 2
            and all(p in self.inits and self.readers[p] == 1 for p in params)
            and len(node.output) == 1
        )

    def _value_projection(self, node: NodeProto) -> tuple[str, str | None] | None:
        """(weight, bias) of the projection whose output channels ``node``'s output follows
        one for one: a chain of Reshape/Transpose, a MatMul reading it as B (softmax·V), more
        Reshape/Transpose, then ``x·W (+ b)`` with W (and b) initializers."""
        through_matmul = False
        current: NodeProto | None = node
        while current is not None:
            if current.op_type in _CHANNEL_PRESERVING and _keeps_last_axis(current):
                source = current.input[0]
            elif current.op_type == "MatMul" and not through_matmul:
                through_matmul = True
                source = current.input[1]
            elif current.op_type == "Add" and through_matmul:
                return self._biased_projection(current)
            elif current.op_type == "MatMul" and through_matmul:
                return self._bare_projection(current)
            else:
                return None
            if self.readers[source] != 1:
                return None
            current = self.producer.get(source)
        return None

    def _biased_projection(self, add: NodeProto) -> tuple[str, str | None] | None:
        for position, bias in enumerate(add.input):
            matmul = self.producer.get(add.input[1 - position])
            if bias in self.inits and self.readers[bias] == 1 and matmul is not None:
                projection = self._bare_projection(matmul)
                if projection is not None and self.readers[matmul.output[0]] == 1:
                    return projection[0], bias
        return None

    def _bare_projection(self, matmul: NodeProto) -> tuple[str, str | None] | None:
        weight = matmul.input[1]
        init = self.inits.get(weight)
        if matmul.op_type != "MatMul" or init is None or len(init.dims) != 2:
            return None
        return (weight, None) if self.readers[weight] == 1 else None

    def _mul(self, tensor: str, nodes: Sequence[NodeProto], inverse: Array) -> None:
        import onnx

        init = onnx.numpy_helper.from_array(inverse, tensor + "_scale")
        self.model.graph.initializer.append(init)
        mul = onnx.helper.make_node(
            "Mul", [tensor, init.name], [tensor + SUFFIX], name=tensor + "_smooth"
        )
        self._insert(mul)
        for node in nodes:
            node.input[0] = mul.output[0]

    def _insert(self, new: NodeProto) -> None:
        self._added.setdefault(new.input[0], []).append(new)

    def finish(self) -> None:
        """Rebuild the node list once: each new node right after the node making its first
        input (graph inputs first), dropped Constants left out; the graph stays sorted."""
        nodes = list(self.model.graph.node)
        ordered = [n for name in self._graph_inputs() for n in self._added.get(name, [])]
        for node in nodes:
            ordered.append(node)
            ordered.extend(n for out in node.output for n in self._added.get(out, []))
        del self.model.graph.node[:]
        self.model.graph.node.extend(ordered)

    def _graph_inputs(self) -> list[str]:
        return [i.name for i in self.model.graph.input]


def _keeps_last_axis(node: NodeProto) -> bool:
    perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
    return node.op_type != "Transpose" or (perm is not None and perm[-1] == len(perm) - 1)


def _kind(node: NodeProto) -> str:
    return "layernorm" if node.op_type == "LayerNormalization" else "value"


__all__ = [
    "DEFAULT_ALPHA",
    "SUFFIX",
    "Placement",
    "SmoothReport",
    "activation_peaks",
    "smooth_model",
]
