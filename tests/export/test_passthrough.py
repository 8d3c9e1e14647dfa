"""Pass-through units: a feed-forward input's outlier channels smoothed with no node added, the
fp32 logits kept, and a graph with nothing to smooth (or no such block) copied as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from export_helpers import logits
from onnx import numpy_helper

from clfserve.evaluation.datasets import load_split
from clfserve.export.feeds import text_feeds
from clfserve.export.passthrough import DEFAULT_RATIO, feed_forwards, pass_through
from clfserve.export.quantize import fuse_bert
from clfserve.runtime.manifest import Manifest

TEXTS = list(load_split("rotten_tomatoes", "train").texts[:64])
OUTLIER_CHANNEL = 5


def _feeds(folder: Path) -> list[dict[str, np.ndarray]]:
    return [dict(f) for f in text_feeds(folder, Manifest.read(folder), TEXTS, batch_size=16)]


@pytest.fixture(scope="module")
def outlier_graph(tiny_artefact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT fused, one channel of layer 0's feed-forward input made 12x larger than
    the rest (its LayerNorm's gamma and beta), as one channel is in the default model."""
    folder = tmp_path_factory.mktemp("passthrough")
    fuse_bert(tiny_artefact / "model.onnx", folder / "fused.onnx", 2, 32)
    model = onnx.load(str(folder / "fused.onnx"))
    inits = {init.name: init for init in model.graph.initializer}
    for name in feed_forwards(model)[0].norm.input[1:3]:
        array = numpy_helper.to_array(inits[name]).copy()
        array[OUTLIER_CHANNEL] *= 12.0
        inits[name].CopyFrom(numpy_helper.from_array(array, name))
    onnx.save(model, str(folder / "outlier.onnx"))
    return folder / "outlier.onnx"


def _first_input_peaks(path: Path, folder: Path) -> np.ndarray:
    """Per-channel max |value| of layer 0's feed-forward input over the texts."""
    model = onnx.load(str(path))
    tensor = feed_forwards(model)[0].norm.output[0]
    model.graph.output.append(onnx.helper.make_tensor_value_info(tensor, 1, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    peaks = [
        np.abs(session.run([tensor], {k: v for k, v in f.items() if k in wanted})[0])
        .reshape(-1, 32)
        .max(axis=0)
        for f in _feeds(folder)
    ]
    return np.max(peaks, axis=0)


def test_outliers_are_smoothed_with_no_node_added(
    outlier_graph: Path, tiny_artefact: Path, tmp_path: Path
) -> None:
    output = tmp_path / "passed.onnx"

    report = pass_through(outlier_graph, output, _feeds(tiny_artefact))

    assert report.skipped == ""
    assert report.feed_forwards == 2
    assert report.channels >= 1
    assert report.units >= report.channels
    assert report.worst_channel_ratio > 6
    before, after = onnx.load(str(outlier_graph)), onnx.load(str(output))
    assert [n.op_type for n in after.graph.node] == [n.op_type for n in before.graph.node]
    inner = {i.name: list(i.dims) for i in after.graph.initializer}
    assert sum(inner[b.up][1] - 64 for b in feed_forwards(after)) == report.units
    old = logits(outlier_graph, tiny_artefact, TEXTS)
    new = logits(output, tiny_artefact, TEXTS)
    assert np.abs(old - new).max() < 1e-4 * max(1.0, float(np.abs(old).max()))
    assert np.abs(old).max() > 0.1  # the comparison is not between two zeros
    peaks = _first_input_peaks(outlier_graph, tiny_artefact)
    assert peaks.max() / np.median(peaks) > 6  # the outlier is there to begin with
    peaks = _first_input_peaks(output, tiny_artefact)
    assert peaks.max() / np.median(peaks) <= DEFAULT_RATIO * 1.05


def test_a_graph_with_nothing_over_the_ratio_is_copied(
    outlier_graph: Path, tiny_artefact: Path, tmp_path: Path
) -> None:
    output = tmp_path / "copy.onnx"

    report = pass_through(outlier_graph, output, _feeds(tiny_artefact), ratio=1000.0)

    assert (report.channels, report.units) == (0, 0)
    assert report.skipped == "no channel over 1000x"
    assert output.read_bytes() == outlier_graph.read_bytes()


def test_an_unfused_graph_has_no_block_to_rewrite(tiny_artefact: Path, tmp_path: Path) -> None:
    output = tmp_path / "copy.onnx"

    report = pass_through(tiny_artefact / "model.onnx", output, _feeds(tiny_artefact))

    assert report.feed_forwards == 0  # its GELU is spelled out in Erf, Mul and Add
    assert report.skipped.startswith("no LayerNorm -> feed-forward")
    assert output.read_bytes() == (tiny_artefact / "model.onnx").read_bytes()
