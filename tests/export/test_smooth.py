"""Activation smoothing before int8: the fp32 function is unchanged and activations get flatter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from export_helpers import logits, small_export

from clfserve.evaluation.datasets import load_split
from clfserve.export.artefact import export_artefact
from clfserve.export.errors import ExportError
from clfserve.export.feeds import text_feeds
from clfserve.export.smooth import SUFFIX, activation_peaks, calibrate, smooth_model
from clfserve.runtime.manifest import Manifest

TEXTS = list(load_split("rotten_tomatoes", "train").texts[:96])


@pytest.fixture(scope="module")
def smoothed(tiny_artefact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("smooth") / "smoothed.onnx"
    manifest = Manifest.read(tiny_artefact)
    feeds = text_feeds(tiny_artefact, manifest, TEXTS, batch_size=32)
    peaks = calibrate(tiny_artefact / "model.onnx", feeds)
    report = smooth_model(tiny_artefact / "model.onnx", output, peaks, alpha=0.8)
    assert report.placed == {"mul": report.inputs}
    assert report.inputs > 0
    assert report.matmuls >= report.inputs
    assert report.worst_channel_ratio > 1.0
    return output


def test_smoothing_keeps_the_fp32_function(tiny_artefact: Path, smoothed: Path) -> None:
    before = logits(tiny_artefact / "model.onnx", tiny_artefact, TEXTS)
    after = logits(smoothed, tiny_artefact, TEXTS)
    assert np.abs(before - after).max() < 1e-4


def test_smoothing_flattens_the_quantized_activations(tiny_artefact: Path, smoothed: Path) -> None:
    manifest = Manifest.read(tiny_artefact)
    model = onnx.load(str(smoothed))
    scaled = [
        n.output[0] for n in model.graph.node if n.op_type == "Mul" and n.name.endswith("_smooth")
    ]
    originals = [name.removesuffix(SUFFIX) for name in scaled]
    assert scaled
    assert all(name.endswith(SUFFIX) for name in scaled)
    feeds = list(text_feeds(tiny_artefact, manifest, TEXTS, batch_size=32))
    peaks = activation_peaks(model, [*originals, *scaled], feeds)

    def spread(name: str) -> float:
        return float(peaks[name].max() / np.median(peaks[name]))

    # Every MatMul input the quantizer will scale per tensor is no more skewed than before,
    # and overall much less.
    assert all(spread(s) <= spread(o) * 1.01 for o, s in zip(originals, scaled, strict=True))
    assert np.mean([spread(s) for s in scaled]) < np.mean([spread(o) for o in originals])


def test_smoothing_refuses_a_bad_alpha(tiny_artefact: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="alpha"):
        smooth_model(tiny_artefact / "model.onnx", tmp_path / "x.onnx", {}, alpha=1.5)
    with pytest.raises(ExportError, match="calibration"):
        calibrate(tiny_artefact / "model.onnx", [])
    with pytest.raises(ExportError, match="another graph"):
        smooth_model(tiny_artefact / "model.onnx", tmp_path / "x.onnx", {}, alpha=0.5)


def test_manifest_records_how_int8_was_made(
    tiny_artefact: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    manifest = Manifest.read(tiny_artefact)
    smoothing = manifest.source["quantization"]["smoothing"]
    if manifest.int8_graph["chosen"] != "plain":
        assert smoothing["alpha"] == 0.8
        assert smoothing["calibration_texts"] == 512
    assert [p.name for p in tiny_artefact.iterdir() if p.name.startswith(".")] == []

    config = small_export(
        tiny_checkpoint, tmp_path / "plain", smooth_alpha=0.0, int8_graph="folded"
    )
    plain = export_artefact(config).manifest
    made = dict(plain.source["quantization"])
    trim = made.pop("trim")
    assert made == {"method": "dynamic", "per_channel": True, "smoothing": None}
    assert trim["first_token_only"]
    assert trim["skipped"] == ""
    assert plain.int8_graph["chosen"] == "folded"
    # The int8 choice changes the int8 graph, not the fp32 one.
    assert plain.variants["fp32"].sha256 == manifest.variants["fp32"].sha256


def test_tied_weights_are_left_alone() -> None:
    from onnx import TensorProto, helper, numpy_helper

    from clfserve.export.smooth import _weight_matmuls

    tied = numpy_helper.from_array(np.ones((4, 4), dtype=np.float32), "tied")
    own = numpy_helper.from_array(np.ones((4, 4), dtype=np.float32), "own")
    nodes = [
        helper.make_node("MatMul", ["x", "tied"], ["a"], name="first"),
        helper.make_node("MatMul", ["y", "tied"], ["b"], name="second"),
        helper.make_node("MatMul", ["x", "own"], ["c"], name="third"),
    ]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in "xyabc"]
    graph = helper.make_graph(nodes, "g", io[:2], io[2:], initializer=[tied, own])
    groups = _weight_matmuls(helper.make_model(graph))
    assert {x: [n.name for n in ns] for x, ns in groups.items()} == {"x": ["third"]}


def test_a_graph_without_weight_matmuls_is_written_unchanged(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in "xy"]
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", io[:1], io[1:])
    source = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph), str(source))
    report = smooth_model(source, tmp_path / "out.onnx", calibrate(source, []), alpha=0.8)
    assert (report.inputs, report.matmuls) == (0, 0)
    assert [n.op_type for n in onnx.load(str(tmp_path / "out.onnx")).graph.node] == ["Relu"]
