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

- extra hidden units in pairs, one with pre-activation ``a x'`` and one with ``-a x'``: since
  ``GELU(v) - GELU(-v) = v Phi(v) + v Phi(-v) = v`` for every ``v``, their difference is ``a x'``
  exactly, with no offset to keep GELU in its linear part;
- their rows of the second weight write ``+w`` and ``-w`` into output channel ``c``, ``n`` pairs
  with ``n a w = k - 1``, so that no entry exceeds what that output column already holds and its
  per-column int8 scale stays.

The units' own values stay within ``a`` times the smoothed channel's peak (``a = 1``: ~4 on the
default model, under the 6-9 of the layers' largest ordinary units), so they do not widen the
int8 range of the GELU output either. (The first version kept one unit per share at ``a x' + B``,
``B`` >= 5 so that GELU passed it through; those units read 5-12.5 on every token and set that
range in layers 4 and 5.)

The graph keeps every node; the two feed-forward weights grow by the added units (on the default
model 346 units for 60 channels over six layers, ~4 % more feed-forward width in layers 0-4; the
last layer runs one row once trimmed). `pass_through` runs the graph before and after on the
calibration feeds and keeps the rewrite only if no logit moves by more than
`clfserve.export.trim.TOLERANCE` (on the default model: 6e-7).

The other inputs that dynamic int8 handles badly, the GELU outputs that feed each second weight,
hold one hidden unit in each of layers 0-3 (two in layer 2) that reads 14-25 on the ``[CLS]`` row
and ~0 elsewhere: `clfserve.export.spikes` splits those.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterable, Iterator, Sequence
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
SLOPE = 1.0
"""``a``: a pass-through unit reads the smoothed channel at this weight (on the default model,
with the spikes split, a prototype at 2 and 1.5, with fewer units, moved 22 and 15 of 2,775 int8
labels against 11 at 1, at the same speed)."""
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
class FeedForward:
    """One post-LN feed-forward block: the LayerNorm it reads (which the residual reads too)
    and the names of its weights, biases and GELU input."""

    norm: NodeProto
    up: str
    """First weight (hidden x inner) and its bias."""
    up_bias: str
    activation: str
    """The GELU's input: the hidden units' pre-activations."""
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
        added = _smooth(block, inits, peak, ratio)
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


def feed_forwards(model: ModelProto) -> list[FeedForward]:
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
            or gelu is None
            or down is None
            or down_add is None
            or down_bias is None
            or only_reader(down_add.output[0], "Add") is not residual[0]
            or not all(w in inits and len(readers[w]) == 1 for w in weights)
        ):
            continue
        blocks.append(FeedForward(norm, weights[0], up_bias, gelu.input[0], weights[1], down_bias))
    return blocks


def _own_params(norm: NodeProto, inits: set[str], readers: dict[str, list[NodeProto]]) -> bool:
    axis = next((a.i for a in norm.attribute if a.name == "axis"), -1)
    params = list(norm.input[1:3])
    return (
        axis == -1 and len(params) == 2 and all(p in inits and len(readers[p]) == 1 for p in params)
    )


def _smooth(
    block: FeedForward, inits: dict[str, TensorProto], peak: Array, ratio: float
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
    down = get(block.down)
    target = ratio * float(np.median(peak))
    chosen = [int(c) for c in np.argsort(peak)[::-1] if peak[c] > target]
    columns: list[Array] = []
    rows: list[Array] = []
    for channel in chosen:
        k = float(peak[channel]) / target
        gamma[channel] /= k
        beta[channel] /= k
        up[channel, :] *= k
        column_peak = max(float(np.abs(down[:, channel]).max()), 1e-6)
        count = max(1, math.ceil((k - 1.0) / (SLOPE * column_peak)))
        weight = (k - 1.0) / (SLOPE * count)
        for sign in (1.0, -1.0) * count:  # GELU(v) - GELU(-v) = v, exactly
            column = np.zeros(up.shape[0], np.float32)
            column[channel] = sign * SLOPE
            row = np.zeros(down.shape[1], np.float32)
            row[channel] = sign * weight
            columns.append(column)
            rows.append(row)
    if chosen:
        put(gamma_name, gamma)
        put(beta_name, beta)
        put(block.up, np.concatenate([up, np.stack(columns, axis=1)], axis=1))
        put(block.up_bias, np.concatenate([up_bias, np.zeros(len(columns), np.float32)]))
        put(block.down, np.concatenate([down, np.stack(rows, axis=0)], axis=0))
    return len(chosen), len(rows)


def _channel_ranges(
    model: ModelProto, tensors: Sequence[str], feeds: Iterable[Feed], checks: list[Feed]
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Per-channel min and max of ``tensors`` over ``feeds``; the first feeds go to ``checks``."""
    lows: dict[str, Array] = {}
    highs: dict[str, Array] = {}
    for feed, values in activations(model, tensors, feeds):
        if len(checks) < _CHECK_FEEDS:
            checks.append(feed)
        for name, value in zip(tensors, values, strict=True):
            low, high = value.min(axis=0), value.max(axis=0)
            lows[name] = np.minimum(lows[name], low) if name in lows else low
            highs[name] = np.maximum(highs[name], high) if name in highs else high
    return lows, highs


def activations(
    model: ModelProto, tensors: Sequence[str], feeds: Iterable[Feed]
) -> Iterator[tuple[Feed, list[Array]]]:
    """Each feed with the values ``model`` computes for ``tensors`` on it, every tensor as rows
    (all positions, padding included) x its last axis."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in tensors:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, 1, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    for feed in feeds:
        values = session.run(list(tensors), {k: v for k, v in feed.items() if k in wanted})
        yield feed, [np.asarray(v).reshape(-1, np.asarray(v).shape[-1]) for v in values]


def _unchanged(
    source: Path, output: Path, ratio: float, blocks: int, why: str
) -> PassThroughReport:
    shutil.copyfile(source, output)
    return PassThroughReport(ratio, blocks, 0, 0, 0.0, 0.0, skipped=why)


__all__ = [
    "DEFAULT_RATIO",
    "FeedForward",
    "PassThroughReport",
    "activations",
    "feed_forwards",
    "pass_through",
]
