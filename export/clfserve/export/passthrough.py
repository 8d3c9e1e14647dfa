"""Outlier channels of a feed-forward input smoothed without adding a node: pass-through units.

Dynamic int8 gives a MatMul input one scale for the whole tensor. In the default model the input
of layers 0-4's feed-forward (the LayerNorm after attention) holds one channel, 99, that reads
~28 on the ``[CLS]`` row of every text while no other token goes past 6-15 in any channel (train
texts, fp32), so that one row sets the scale for all. SmoothQuant would divide the channel by
``k`` before the feed-forward and multiply row 99 of its first weight by ``k``; but in post-LN
BERT the same LayerNorm output is also the residual, so ``1/k`` folded into its gamma and beta
changes the residual too, and until now it took a `Mul` node (`clfserve.export.smooth`).

Here ``1/k`` goes into gamma and beta anyway, and the feed-forward itself hands the residual back
the ``(k - 1) x'`` it lost (``x' = x / k``, the channel as the LayerNorm now writes it):

- extra hidden units, each with pre-activation ``a x' + B``, where ``B`` keeps it at or above
  `FLOOR` on every calibration token, so that GELU passes it through (``GELU(v) = v Phi(v)``,
  and ``Phi(5) = 1 - 2.9e-7``);
- their rows of the second weight write ``(k - 1) / (a n)`` into output channel ``c`` (``n`` units,
  so that no entry exceeds what that output column already holds and its per-column int8 scale
  stays), and the second bias takes back the constant ``B`` part.

The graph keeps every node; the two feed-forward weights grow by the added units (on the default
model 173 units for 60 channels over six layers, about 2 % more feed-forward work in layers 0-4;
the last layer runs one row once trimmed). `pass_through` runs the graph before and after on the
calibration feeds and keeps the rewrite only if no logit moves by more than
`clfserve.export.trim.TOLERANCE` (on the default model: 6e-7).

Measured on the default model's ``fused`` graph (2026-11-28, int8 against fp32 on the 1,275
validation texts and 1,500 train texts the calibration never saw): texts whose label moved 50 ->
38, mean |change of the logit margin| 0.145 -> 0.115; on validation alone agreement stayed 0.9804
(25 texts, not all the same ones), accuracy 0.8282 -> 0.8314, macro-F1 0.8238 -> 0.8275.
Speed against the same graph without it, 7 alternated rounds: 0.99x one text per call, 0.98x in
calls of 32.

The other inputs that dynamic int8 handles badly, the GELU outputs that feed each layer's second
weight, are one hidden unit in each of layers 0-3 (two in layer 2) that reads 14-25 on the
``[CLS]`` row and ~0 elsewhere. Carrying such a unit through pass-through units
(``GELU(u) = u + GELU(-u)``) needs them to span its whole range at a fraction of the slope, and
their int8 rounding then costs more than it saves (mean logit error 0.39); a `Mul` before each
of the six second weights brought agreement to 0.9929 but cost 3 % one text per call and 5 % in
calls of 32.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from clfserve.export.feeds import Feed
from clfserve.export.trim import TOLERANCE, largest_logit_change

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto, TensorProto

DEFAULT_RATIO = 2.0
"""A channel is smoothed down to this multiple of the median channel's peak, where it peaks
above it."""
FLOOR = 5.0
"""Lowest pre-activation of a pass-through unit on the calibration texts; there GELU is the
identity to within ``5 * Phi(-5) = 1.4e-6``."""
SLOPE = 1.0
"""``a``: a pass-through unit reads the smoothed channel at this weight."""
_MARGIN = 0.25
_DITHER = 0.05
"""Offset between the ``B`` of units carrying the same channel, so that their int8 rounding
errors do not all fall the same way."""
_CHECK_FEEDS = 2
Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class PassThroughReport:
    """What `pass_through` changed."""

    ratio: float
    feed_forwards: int
    """LayerNorm -> feed-forward -> residual blocks found."""
    channels: int
    """Channels smoothed, over all of them."""
    units: int
    """Hidden units added, over all of them."""
    worst_channel_ratio: float
    """Largest max-channel / median-channel peak of a feed-forward input, before."""
    max_logit_change: float
    skipped: str = ""
    """Why the graph was left as it was, if it was."""


@dataclass(frozen=True)
class _FeedForward:
    norm: NodeProto
    up: str
    """First weight (hidden x inner) and its bias."""
    up_bias: str
    down: str
    """Second weight (inner x hidden) and its bias."""
    down_bias: str


def pass_through(
    source: Path, output: Path, feeds: Iterable[Feed], ratio: float = DEFAULT_RATIO
) -> PassThroughReport:
    """Write ``source`` to ``output`` with each feed-forward input's outlier channels smoothed
    by pass-through units, if the logits stay put on ``feeds`` (else an unchanged copy)."""
    import onnx

    checks: list[Feed] = []
    model = onnx.load(str(source))
    blocks = feed_forwards(model)
    if not blocks:
        return _unchanged(source, output, ratio, 0, "no LayerNorm -> feed-forward -> residual")
    lows, highs = _channel_ranges(model, [b.norm.output[0] for b in blocks], feeds, checks)
    if not checks:
        return _unchanged(source, output, ratio, len(blocks), "no texts to calibrate on")
    inits = {init.name: init for init in model.graph.initializer}
    channels = units = 0
    worst = 0.0
    for block in blocks:
        low, high = lows[block.norm.output[0]], highs[block.norm.output[0]]
        peak = np.maximum(np.abs(low), np.abs(high))
        worst = max(worst, float(peak.max() / np.median(peak)))
        added = _smooth(block, inits, low, peak, ratio)
        channels += added[0]
        units += added[1]
    if not channels:
        return _unchanged(source, output, ratio, len(blocks), f"no channel over {ratio:g}x")
    del model.graph.value_info[:]  # the inner width changed; ORT infers the shapes again
    onnx.save(model, str(output))
    change = largest_logit_change(source, output, checks)
    if change > TOLERANCE:
        return _unchanged(source, output, ratio, len(blocks), f"logits moved by {change:.2g}")
    return PassThroughReport(ratio, len(blocks), channels, units, round(worst, 1), change)


def feed_forwards(model: ModelProto) -> list[_FeedForward]:
    """Each LayerNorm whose output feeds one weight MatMul (+ bias, GELU, weight MatMul, bias)
    and the residual ``Add`` that sums that feed-forward's output with it, in graph order."""
    inits = {init.name for init in model.graph.initializer}
    readers: dict[str, list[NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def only_reader(tensor: str, op_type: str) -> NodeProto | None:
        found = readers.get(tensor, [])
        return found[0] if len(found) == 1 and found[0].op_type == op_type else None

    def bias_of(add: NodeProto | None, other: str) -> str | None:
        if add is None or other not in add.input:
            return None
        bias = next((name for name in add.input if name != other), "")
        return bias if bias in inits and len(readers[bias]) == 1 else None

    blocks = []
    for norm in model.graph.node:
        if norm.op_type != "LayerNormalization" or not _own_params(norm, inits, readers):
            continue
        hidden = norm.output[0]
        up = [n for n in readers.get(hidden, []) if n.op_type == "MatMul"]
        residual = [n for n in readers.get(hidden, []) if n.op_type == "Add"]
        if len(up) != 1 or len(residual) != 1 or len(readers[hidden]) != 2:
            continue
        up_add = only_reader(up[0].output[0], "Add")
        gelu = only_reader(up_add.output[0], "Gelu") if up_add else None
        down = only_reader(gelu.output[0], "MatMul") if gelu else None
        down_add = only_reader(down.output[0], "Add") if down else None
        up_bias = bias_of(up_add, up[0].output[0])
        down_bias = bias_of(down_add, down.output[0]) if down else None
        weights = [up[0].input[1], down.input[1] if down else ""]
        if (
            up_bias is None
            or down is None
            or down_add is None
            or down_bias is None
            or only_reader(down_add.output[0], "Add") is not residual[0]
            or not all(w in inits and len(readers[w]) == 1 for w in weights)
        ):
            continue
        blocks.append(_FeedForward(norm, weights[0], up_bias, weights[1], down_bias))
    return blocks


def _own_params(norm: NodeProto, inits: set[str], readers: dict[str, list[NodeProto]]) -> bool:
    axis = next((a.i for a in norm.attribute if a.name == "axis"), -1)
    params = list(norm.input[1:3])
    return (
        axis == -1 and len(params) == 2 and all(p in inits and len(readers[p]) == 1 for p in params)
    )


def _smooth(
    block: _FeedForward, inits: dict[str, TensorProto], low: Array, peak: Array, ratio: float
) -> tuple[int, int]:
    """Smooth ``block``'s outlier channels in place; return (channels, units added)."""
    from onnx import numpy_helper

    def get(name: str) -> Array:
        return numpy_helper.to_array(inits[name]).astype(np.float32)

    def put(name: str, value: Array | npt.NDArray[np.float64]) -> None:
        inits[name].CopyFrom(numpy_helper.from_array(np.asarray(value, np.float32), name))

    gamma_name, beta_name = block.norm.input[1], block.norm.input[2]
    gamma, beta = get(gamma_name), get(beta_name)
    up, up_bias = get(block.up), get(block.up_bias)
    down, down_bias = get(block.down), get(block.down_bias)
    target = ratio * float(np.median(peak))
    chosen = [int(c) for c in np.argsort(peak)[::-1] if peak[c] > target]
    columns: list[Array] = []
    biases: list[float] = []
    rows: list[Array] = []
    for channel in chosen:
        k = float(peak[channel]) / target
        gamma[channel] /= k
        beta[channel] /= k
        up[channel, :] *= k
        base = FLOOR + max(0.0, -SLOPE * float(low[channel]) / k) + _MARGIN
        column_peak = max(float(np.abs(down[:, channel]).max()), 1e-6)
        count = max(1, math.ceil((k - 1.0) / (SLOPE * column_peak)))
        weight = (k - 1.0) / (SLOPE * count)
        for index in range(count):
            offset = base + _DITHER * index
            column = np.zeros(up.shape[0], np.float32)
            column[channel] = SLOPE
            row = np.zeros(down.shape[1], np.float32)
            row[channel] = weight
            columns.append(column)
            biases.append(offset)
            rows.append(row)
            down_bias[channel] -= weight * offset
    if chosen:
        put(gamma_name, gamma)
        put(beta_name, beta)
        put(block.up, np.concatenate([up, np.stack(columns, axis=1)], axis=1))
        put(block.up_bias, np.concatenate([up_bias, np.asarray(biases, np.float32)]))
        put(block.down, np.concatenate([down, np.stack(rows, axis=0)], axis=0))
        put(block.down_bias, down_bias)
    return len(chosen), len(rows)


def _channel_ranges(
    model: ModelProto, tensors: Sequence[str], feeds: Iterable[Feed], checks: list[Feed]
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Per-channel min and max of ``tensors`` over ``feeds``; the first feeds go to ``checks``."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in tensors:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, 1, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    lows: dict[str, Array] = {}
    highs: dict[str, Array] = {}
    for feed in feeds:
        if len(checks) < _CHECK_FEEDS:
            checks.append(feed)
        values = session.run(list(tensors), {k: v for k, v in feed.items() if k in wanted})
        for name, value in zip(tensors, values, strict=True):
            rows = np.asarray(value).reshape(-1, np.asarray(value).shape[-1])
            low, high = rows.min(axis=0), rows.max(axis=0)
            lows[name] = np.minimum(lows[name], low) if name in lows else low
            highs[name] = np.maximum(highs[name], high) if name in highs else high
    return lows, highs


def _unchanged(
    source: Path, output: Path, ratio: float, blocks: int, why: str
) -> PassThroughReport:
    shutil.copyfile(source, output)
    return PassThroughReport(ratio, blocks, 0, 0, 0.0, 0.0, skipped=why)


__all__ = ["DEFAULT_RATIO", "FLOOR", "PassThroughReport", "feed_forwards", "pass_through"]
