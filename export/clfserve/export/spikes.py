"""Hidden units that spike on one token, split so that they no longer set their layer's int8 range.

Dynamic int8 gives the GELU output that feeds each feed-forward's second weight one scale for
the whole tensor. In the default model one hidden unit in each of layers 0-3 (two in layer 2)
reads 13.6-25 on the ``[CLS]`` row of every text, nearly the same value each time (standard
deviation 0.01-0.13 across texts), and ~0 on every other row, while no other unit goes past
6-9. That one value sets the scale, and the rounding step, for every other unit and token.

Such a unit has pre-activations in two clusters far apart: the spike, ``[h_lo, h_hi]``, and the
rest, at most ``l_hi`` (padding included); it is split where the gap is at least ``2 FLOOR + 1``
and the spike narrow enough that the copies read under ``2 FLOOR`` on it. It becomes ``n``
copies of a unit with pre-activation ``a u + b``, where ``a (h_lo - l_hi) = 2 FLOOR + 1/2`` and
``a h_lo + b = FLOOR``: on the spike the copies read ``FLOOR``-and-a-little (GELU is the
identity there to within ``5 Phi(-5) = 1.4e-6``), on the rest ``-FLOOR`` or less (GELU ~0).
Their rows of the second weight share ``beta`` times the unit's row, ``beta`` chosen so that the
copies give the spike's mean exactly; the second bias takes the rest's mean GELU value (``c``,
real tokens only). No node is added and no other unit changes.

This is not exact the way `clfserve.export.passthrough` is: the rest's GELU values (-0.17..0)
become their mean, and a spike's variation around its mean is scaled by ``beta a``. On the
default model's ``fused`` graph in fp32 that moved 5 of 2,775 labels (validation texts and 1,500
train texts the calibration never saw; mean |change of the logit margin| 0.015), against an int8
error that went from 0.120 to 0.060 with it (labels moved by int8: 36 -> 14, as many as the
``folded`` graph's). So `split_spikes` keeps the rewrite if no fp32 logit moves by more than
`TOLERANCE` on the calibration feeds it checks, and export's choice then measures the int8 graph
against the untouched fp32 one as always.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from clfserve.export.feeds import Feed
from clfserve.export.passthrough import activations, feed_forwards
from clfserve.export.trim import largest_logit_change

if TYPE_CHECKING:
    from onnx import ModelProto, TensorProto

    from clfserve.export.passthrough import FeedForward

SPIKE_RATIO = 5.0
"""A unit is a candidate where its largest GELU output exceeds this multiple of the median
unit's largest (default model: medians 1.8-2.1, spikes 13.6-25, the next units 6-9)."""
FLOOR = 5.0
"""Where the copies read on the spike, and at most minus this on the rest."""
TOLERANCE = 0.05
"""Largest change of an fp32 logit on the checked feeds for the rewrite to be kept (default
model: 0.010)."""
_CHECK_FEEDS = 2
Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SpikeReport:
    """What `split_spikes` changed."""

    ratio: float
    feed_forwards: int
    units: int
    """Spiking units split, over all feed-forwards."""
    copies: int
    """Hidden units they became (each split unit is reused as its first copy)."""
    largest_spike: float
    """The largest GELU output of a split unit, before."""
    max_logit_change: float
    not_split: int = 0
    """Candidates left alone: their two clusters too close to separate, or the spike too wide."""
    skipped: str = ""


@dataclass(frozen=True)
class _Spike:
    unit: int
    low_top: float
    """``l_hi``: the highest pre-activation off the spike."""
    spike_low: float
    """``h_lo``: the lowest on it."""
    spike_mean: float
    rest_mean_gelu: float
    """``c``: the mean GELU output off the spike, real tokens only."""


def split_spikes(
    source: Path,
    output: Path,
    feeds: Callable[[], Iterable[Feed]],
    ratio: float = SPIKE_RATIO,
) -> SpikeReport:
    """Write ``source`` to ``output`` with every feed-forward's spiking hidden units split, if
    the fp32 logits stay within `TOLERANCE` on ``feeds`` (else an unchanged copy). ``feeds`` is
    called twice: once to find the candidates, once to measure them."""
    import onnx

    model = onnx.load(str(source))
    blocks = feed_forwards(model)
    if not blocks:
        return _unchanged(source, output, ratio, 0, "no LayerNorm -> feed-forward -> residual")
    tensors = [block.activation for block in blocks]
    peaks: dict[str, Array] = {}
    for _, values in activations(model, tensors, feeds()):
        for name, value in zip(tensors, values, strict=True):
            top = value.max(axis=0).astype(np.float64)
            peaks[name] = np.maximum(peaks[name], top) if name in peaks else top
    if not peaks:
        return _unchanged(source, output, ratio, len(blocks), "no texts to calibrate on")
    candidates = {name: _candidates(peaks[name], ratio) for name in tensors}
    if not any(len(units) for units in candidates.values()):
        return _unchanged(source, output, ratio, len(blocks), f"no unit over {ratio:g}x")
    checks: list[Feed] = []
    spikes, not_split = _measure(model, candidates, feeds(), checks)
    inits = {init.name: init for init in model.graph.initializer}
    copies = sum(_split(block, inits, spikes[block.activation]) for block in blocks)
    units = sum(len(found) for found in spikes.values())
    if not units:
        why = "no candidate with two clusters"
        return _unchanged(source, output, ratio, len(blocks), why, not_split)
    largest = max(
        float(_gelu(peaks[name][spike.unit])) for name in tensors for spike in spikes[name]
    )
    del model.graph.value_info[:]  # the inner width changed; ORT infers the shapes again
    onnx.save(model, str(output))
    change = largest_logit_change(source, output, checks)
    if change > TOLERANCE:
        return _unchanged(source, output, ratio, len(blocks), f"logits moved by {change:.2g}")
    return SpikeReport(
        ratio, len(blocks), units, copies, round(largest, 1), change, not_split=not_split
    )


def _candidates(peak: Array, ratio: float) -> npt.NDArray[np.intp]:
    outputs = _gelu(peak)
    return np.flatnonzero(outputs > ratio * float(np.median(outputs)))


def _measure(
    model: ModelProto,
    candidates: dict[str, npt.NDArray[np.intp]],
    feeds: Iterable[Feed],
    checks: list[Feed],
) -> tuple[dict[str, list[_Spike]], int]:
    """Each candidate's two clusters, where they are far enough apart; and how many were not."""
    tensors = list(candidates)
    columns: dict[str, list[Array]] = {name: [] for name in tensors}
    real: list[npt.NDArray[np.bool_]] = []
    for feed, values in activations(model, tensors, feeds):
        if len(checks) < _CHECK_FEEDS:
            checks.append(feed)
        mask = feed.get("attention_mask")
        rows = values[0].shape[0]
        real.append(np.ones(rows, bool) if mask is None else np.asarray(mask).reshape(-1) > 0)
        for name, value in zip(tensors, values, strict=True):
            columns[name].append(value[:, candidates[name]].astype(np.float64))
    is_real = np.concatenate(real)
    spikes: dict[str, list[_Spike]] = {name: [] for name in tensors}
    not_split = 0
    for name in tensors:
        if not len(candidates[name]):
            continue
        measured = np.concatenate(columns[name])
        for index, unit in enumerate(candidates[name]):
            found = _clusters(int(unit), measured[:, index], is_real)
            if found is None:
                not_split += 1
            else:
                spikes[name].append(found)
    return spikes, not_split


def _clusters(unit: int, u: Array, is_real: npt.NDArray[np.bool_]) -> _Spike | None:
    """Split ``u`` at its widest gap; None where the gap is too narrow for the copies, or the
    spike so wide that they would read over ``2 FLOOR`` on it (no narrower a range)."""
    ordered = np.sort(u)
    cut = int(np.argmax(np.diff(ordered)))
    low_top, spike_low = float(ordered[cut]), float(ordered[cut + 1])
    gap = spike_low - low_top
    if gap < 2 * FLOOR + 1.0 or _slope(gap) * (float(ordered[-1]) - spike_low) > FLOOR:
        return None
    on_spike = u >= spike_low
    rest = u[~on_spike & is_real]
    return _Spike(
        unit,
        low_top,
        spike_low,
        float(u[on_spike].mean()),
        float(_gelu(rest).mean()) if len(rest) else 0.0,
    )


def _slope(gap: float) -> float:
    """The copies' slope: the gap between the clusters becomes ``2 FLOOR + 1/2``."""
    return (2 * FLOOR + 0.5) / gap


def _split(block: FeedForward, inits: dict[str, TensorProto], spikes: list[_Spike]) -> int:
    """Split ``spikes`` in ``block`` in place; return the hidden units they now take."""
    from onnx import numpy_helper

    if not spikes:
        return 0

    def get(name: str) -> Array:
        return numpy_helper.to_array(inits[name]).astype(np.float64)

    def put(name: str, value: Array) -> None:
        inits[name].CopyFrom(numpy_helper.from_array(np.asarray(value, np.float32), name))

    up, up_bias = get(block.up), get(block.up_bias)
    down, down_bias = get(block.down), get(block.down_bias)
    column_peak = np.maximum(np.abs(down).max(axis=0), 1e-6)
    columns: list[Array] = []
    biases: list[float] = []
    rows: list[Array] = []
    taken = 0
    for spike in spikes:
        j = spike.unit
        slope = _slope(spike.spike_low - spike.low_top)
        offset = FLOOR - slope * spike.spike_low
        # beta (slope * mean + offset) = mean - c: the copies give the spike's mean exactly
        beta = (spike.spike_mean - spike.rest_mean_gelu) / (slope * spike.spike_mean + offset)
        row = down[j].copy()
        down_bias += spike.rest_mean_gelu * row
        # each copy's row stays within its output columns' largest entries (their int8 scales)
        count = max(1, math.ceil(beta * float(np.max(np.abs(row) / column_peak)) - 1e-9))
        column, bias = slope * up[:, j], slope * up_bias[j] + offset
        up[:, j], up_bias[j], down[j] = column, bias, row * beta / count
        for _ in range(count - 1):
            columns.append(column)
            biases.append(bias)
            rows.append(row * beta / count)
        taken += count
    if columns:
        up = np.concatenate([up, np.stack(columns, axis=1)], axis=1)
        up_bias = np.concatenate([up_bias, np.asarray(biases)])
        down = np.concatenate([down, np.stack(rows, axis=0)], axis=0)
    put(block.up, up)
    put(block.up_bias, up_bias)
    put(block.down, down)
    put(block.down_bias, down_bias)
    return taken


def _gelu(x: Array | float) -> Array:
    values = np.asarray(x, np.float64)
    gelu: Array = 0.5 * values * (1.0 + _erf(values / math.sqrt(2.0)))
    return gelu


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _unchanged(
    source: Path, output: Path, ratio: float, blocks: int, why: str, not_split: int = 0
) -> SpikeReport:
    shutil.copyfile(source, output)
    return SpikeReport(ratio, blocks, 0, 0, 0.0, 0.0, not_split, why)


__all__ = ["FLOOR", "SPIKE_RATIO", "TOLERANCE", "SpikeReport", "split_spikes"]
