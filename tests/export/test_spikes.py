"""Spiking hidden units split: a unit that reads ~20 on one row of each text (``[CLS]`` in the
default model) and far below 0 elsewhere no longer sets its layer's int8 range, no node is added,
the fp32 logits stay close, and the int8 error shrinks; graphs with nothing to split are copied
as they were."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from clfserve.evaluation.datasets import load_split
from clfserve.export.feeds import text_feeds
from clfserve.export.passthrough import activations
from clfserve.export.quantize import fuse_bert, quantize_fused
from clfserve.export.spikes import FLOOR, SPIKE_RATIO, TOLERANCE, split_spikes
from clfserve.runtime.manifest import Manifest

TEXTS = list(load_split("rotten_tomatoes", "train").texts[:64])
HIDDEN, INNER, ROWS = 16, 64, 12
SPIKE_UNIT = 7
SPIKE = 20.0


def _feeds(folder: Path) -> list[dict[str, np.ndarray]]:
    return [dict(f) for f in text_feeds(folder, Manifest.read(folder), TEXTS, batch_size=16)]


def _block_feeds() -> list[dict[str, np.ndarray]]:
    """Batches of rows whose first row stands out in channel 0, as ``[CLS]`` does in the
    default model's residual stream."""
    rng = np.random.default_rng(0)
    feeds = []
    for _ in range(4):
        x = rng.standard_normal((8, ROWS, HIDDEN)).astype(np.float32)
        x[:, 0, :] = 0.1 * x[:, 0, :]
        x[:, 0, 0] = 100.0
        feeds.append({"x": x})
    return feeds


def _normalized(x: np.ndarray) -> np.ndarray:
    mean, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
    normalized: np.ndarray = (x - mean) / np.sqrt(var + 1e-5)
    return normalized


@pytest.fixture(scope="module")
def spike_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One post-LN feed-forward block (LayerNorm -> MatMul -> Add -> Gelu -> MatMul -> Add ->
    residual Add) whose hidden unit `SPIKE_UNIT` reads ~`SPIKE` on each batch's first row and
    far below 0 elsewhere, as one unit does in each of the default model's first four layers;
    the other units read at most ~2."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(1)
    up = (0.3 * rng.standard_normal((HIDDEN, INNER))).astype(np.float32)
    up_bias = np.zeros(INNER, np.float32)
    down = (0.1 * rng.standard_normal((INNER, HIDDEN))).astype(np.float32)
    rows = np.concatenate([_normalized(f["x"]).reshape(-1, HIDDEN) for f in _block_feeds()])
    first = np.arange(len(rows)) % ROWS == 0
    marked, rest = rows[first, 0], rows[~first, 0]
    assert marked.min() - rest.max() > 0.5  # the first rows stand apart in channel 0
    scale = (SPIKE + 12.0) / float(marked.min() - rest.max())
    up[:, SPIKE_UNIT] = 0.0
    up[0, SPIKE_UNIT] = scale
    up_bias[SPIKE_UNIT] = SPIKE - scale * float(marked.mean())
    weights = {
        "gamma": np.ones(HIDDEN, np.float32),
        "beta": np.zeros(HIDDEN, np.float32),
        "up": up,
        "up_bias": up_bias,
        "down": down,
        "down_bias": (0.1 * rng.standard_normal(HIDDEN)).astype(np.float32),
    }
    nodes = [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["norm"], axis=-1),
        helper.make_node("MatMul", ["norm", "up"], ["up_out"]),
        helper.make_node("Add", ["up_out", "up_bias"], ["inner"]),
        helper.make_node("Gelu", ["inner"], ["gelu"], domain="com.microsoft"),
        helper.make_node("MatMul", ["gelu", "down"], ["down_out"]),
        helper.make_node("Add", ["down_out", "down_bias"], ["ffn"]),
        helper.make_node("Add", ["ffn", "norm"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "block",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None, HIDDEN])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, None, HIDDEN])],
        [numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    path = tmp_path_factory.mktemp("spikes") / "block.onnx"
    onnx.save(model, str(path))
    return path


def _run(path: Path, tensor: str = "logits") -> np.ndarray:
    model = onnx.load(str(path))
    return np.concatenate([v[0] for _, v in activations(model, [tensor], _block_feeds())])


def test_a_spiking_unit_is_split_with_no_node_added(spike_graph: Path, tmp_path: Path) -> None:
    output = tmp_path / "split.onnx"

    report = split_spikes(spike_graph, output, _block_feeds)

    assert report.skipped == ""
    assert report.feed_forwards == 1
    assert (report.units, report.not_split) == (1, 0)
    assert report.copies >= 1
    assert report.largest_spike > SPIKE * 0.9
    assert report.max_logit_change <= TOLERANCE
    before, after = onnx.load(str(spike_graph)), onnx.load(str(output))
    assert [n.op_type for n in after.graph.node] == [n.op_type for n in before.graph.node]
    inner = {i.name: list(i.dims) for i in after.graph.initializer}
    assert inner["up"] == [HIDDEN, INNER + report.copies - 1]
    old, new = _run(spike_graph), _run(output)
    assert np.abs(old).max() > 0.1  # the comparison is not between two zeros
    assert np.abs(old - new).max() <= TOLERANCE * max(1.0, float(np.abs(old).max()))


def test_the_split_narrows_the_int8_range_and_the_int8_error(
    spike_graph: Path, tmp_path: Path
) -> None:
    output = tmp_path / "split.onnx"
    split_spikes(spike_graph, output, _block_feeds)

    assert _run(spike_graph, "inner").max() > SPIKE * 0.9  # GELU(u) ~ u up there
    assert _run(output, "inner").max() < FLOOR + 1.0
    reference = _run(spike_graph)
    errors = {}
    for name, graph in (("before", spike_graph), ("after", output)):
        quantize_fused(graph, tmp_path / f"{name}.int8.onnx")
        errors[name] = float(np.abs(_run(tmp_path / f"{name}.int8.onnx") - reference).mean())
    assert errors["after"] < 0.7 * errors["before"]  # measured: 0.51x


def test_a_graph_with_nothing_over_the_ratio_is_copied(spike_graph: Path, tmp_path: Path) -> None:
    output = tmp_path / "copy.onnx"

    report = split_spikes(spike_graph, output, _block_feeds, ratio=1000.0)

    assert (report.units, report.copies) == (0, 0)
    assert report.skipped == "no unit over 1000x"
    assert output.read_bytes() == spike_graph.read_bytes()


def test_units_without_two_clusters_are_left_alone(tiny_artefact: Path, tmp_path: Path) -> None:
    fuse_bert(tiny_artefact / "model.onnx", tmp_path / "fused.onnx", 2, 32)
    output = tmp_path / "copy.onnx"

    report = split_spikes(tmp_path / "fused.onnx", output, lambda: _feeds(tiny_artefact), 1.5)

    assert report.units == 0
    assert report.not_split > 0  # units over 1.5x the median, none in two separate clusters
    assert report.skipped == "no candidate with two clusters"
    assert output.read_bytes() == (tmp_path / "fused.onnx").read_bytes()


def test_an_unfused_graph_has_no_block_to_rewrite(tiny_artefact: Path, tmp_path: Path) -> None:
    output = tmp_path / "copy.onnx"

    report = split_spikes(tiny_artefact / "model.onnx", output, lambda: _feeds(tiny_artefact))

    assert report.feed_forwards == 0
    assert report.skipped.startswith("no LayerNorm -> feed-forward")
    assert report.ratio == SPIKE_RATIO


def test_only_a_narrow_spike_far_from_the_rest_is_split() -> None:
    from clfserve.export.spikes import _clusters

    rng = np.random.default_rng(2)
    rest = rng.uniform(-14.0, -1.0, 2000)
    real = np.ones(2040, bool)

    def spike(low: float, high: float) -> np.ndarray:
        return np.concatenate([rest, rng.uniform(low, high, 40)])

    found = _clusters(0, spike(20.0, 20.5), real)
    assert found is not None
    assert found.spike_low >= 20.0
    assert found.low_top <= -1.0
    assert found.rest_mean_gelu == pytest.approx(float(np.mean(_gelu_of(rest))), abs=1e-9)
    assert _clusters(0, spike(8.0, 8.5), real) is None  # 9 from the rest: too close
    assert _clusters(0, spike(20.0, 35.0), real) is None  # copies would read ~11-15 on it


def _gelu_of(x: np.ndarray) -> np.ndarray:
    from math import erf, sqrt

    values: np.ndarray = np.array([0.5 * v * (1.0 + erf(v / sqrt(2.0))) for v in x])
    return values
