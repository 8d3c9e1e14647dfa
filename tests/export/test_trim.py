"""Trimming: the last layer computes only the row the classifier reads, the attention reshapes
lose their shape arithmetic, the logits stay put, and a rewrite that moves them is undone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from export_helpers import logits
from onnx import numpy_helper

from clfserve.evaluation.datasets import load_split
from clfserve.export import trim
from clfserve.export.feeds import text_feeds
from clfserve.export.quantize import fuse_bert
from clfserve.export.trim import TrimReport, trim_model
from clfserve.runtime.manifest import Manifest

TEXTS = list(load_split("rotten_tomatoes", "train").texts[:64])


def _feeds(folder: Path) -> list[dict[str, np.ndarray]]:
    return [dict(f) for f in text_feeds(folder, Manifest.read(folder), TEXTS, batch_size=16)]


def _rows_into_feed_forward(path: Path, feed: dict[str, np.ndarray]) -> list[int]:
    """How many token rows each layer's first feed-forward MatMul gets, in layer order."""
    model = onnx.load(str(path))
    ffn = {n.name: n.output[0] for n in model.graph.node if "intermediate/dense/MatMul" in n.name}
    assert sorted(ffn) == [
        "/bert/encoder/layer.0/intermediate/dense/MatMul",
        "/bert/encoder/layer.1/intermediate/dense/MatMul",
    ]
    for tensor in ffn.values():
        model.graph.output.append(onnx.helper.make_tensor_value_info(tensor, 1, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [ffn[name] for name in sorted(ffn)]
    return [out.shape[1] for out in session.run(names, feed)]


@pytest.fixture(scope="module")
def trimmed(
    tiny_artefact: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, TrimReport]:
    output = tmp_path_factory.mktemp("trim") / "trimmed.onnx"
    report = trim_model(tiny_artefact / "model.onnx", output, _feeds(tiny_artefact))
    return output, report


def test_trimming_keeps_the_fp32_function(
    tiny_artefact: Path, trimmed: tuple[Path, TrimReport]
) -> None:
    path, report = trimmed
    assert report.first_token_only
    assert report.static_reshapes == 8  # 2 layers: Q, K, V and the merged heads each
    assert report.skipped == ""
    before = logits(tiny_artefact / "model.onnx", tiny_artefact, TEXTS)
    after = logits(path, tiny_artefact, TEXTS)
    assert np.abs(before - after).max() < 1e-5
    assert np.abs(before).max() > 0.1  # the comparison is not between two zeros


def test_the_last_layer_runs_one_row_after_its_attention(
    tiny_artefact: Path, trimmed: tuple[Path, TrimReport]
) -> None:
    feed = _feeds(tiny_artefact)[0]
    length = feed["input_ids"].shape[1]
    assert length > 1
    assert _rows_into_feed_forward(tiny_artefact / "model.onnx", feed) == [length, length]
    assert _rows_into_feed_forward(trimmed[0], feed) == [length, 1]


def test_a_fused_graph_runs_its_last_feed_forward_on_one_row(
    tiny_artefact: Path, tmp_path: Path
) -> None:
    fused = tmp_path / "fused.onnx"
    assert fuse_bert(tiny_artefact / "model.onnx", fused, 2, 32)["Attention"] == 2

    report = trim_model(fused, tmp_path / "trimmed.onnx", _feeds(tiny_artefact))

    assert report.first_token_only
    assert report.skipped == ""
    before = logits(fused, tiny_artefact, TEXTS)
    after = logits(tmp_path / "trimmed.onnx", tiny_artefact, TEXTS)
    assert np.abs(before - after).max() < 1e-5
    assert np.abs(before).max() > 0.1
    feed = _feeds(tiny_artefact)[0]
    length = feed["input_ids"].shape[1]
    assert _rows_into_feed_forward(fused, feed) == [length, length]
    assert _rows_into_feed_forward(tmp_path / "trimmed.onnx", feed) == [length, 1]
    ops = {n.op_type for n in onnx.load(str(tmp_path / "trimmed.onnx")).graph.node}
    assert {"Attention", "EmbedLayerNormalization"} <= ops  # still fused
    assert not {"SkipLayerNormalization", "BiasGelu"} & ops  # slower on CPU: left out


def test_no_shape_arithmetic_is_left(trimmed: tuple[Path, TrimReport]) -> None:
    model = onnx.load(str(trimmed[0]))
    targets = {n.input[1] for n in model.graph.node if n.op_type == "Reshape"}
    assert targets <= {i.name for i in model.graph.initializer}
    assert "Concat" not in {n.op_type for n in model.graph.node}


def test_a_classifier_reading_another_token_keeps_every_row(
    tiny_artefact: Path, tmp_path: Path
) -> None:
    model = onnx.load(str(tiny_artefact / "model.onnx"))
    pooler = next(n for n in model.graph.node if n.name == "/bert/pooler/Gather")
    second = numpy_helper.from_array(np.array(1, np.int64), "second_token")
    model.graph.initializer.append(second)
    pooler.input[1] = second.name
    source = tmp_path / "second.onnx"
    onnx.save(model, str(source))

    report = trim_model(source, tmp_path / "out.onnx", _feeds(tiny_artefact))

    assert not report.first_token_only
    assert report.static_reshapes == 8
    before = logits(source, tiny_artefact, TEXTS)
    assert np.abs(before - logits(tmp_path / "out.onnx", tiny_artefact, TEXTS)).max() < 1e-5


def test_a_rewrite_that_moves_the_logits_is_undone(
    tiny_artefact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def wrong(model: onnx.ModelProto) -> bool:  # stands in for a rewrite with a bug
        bias = next(i for i in model.graph.initializer if i.name == "classifier.bias")
        bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + 1.0, bias.name))
        return True

    monkeypatch.setattr(trim, "first_token_only", wrong)
    source = tiny_artefact / "model.onnx"

    report = trim_model(source, tmp_path / "out.onnx", _feeds(tiny_artefact))

    assert not report.first_token_only
    assert report.static_reshapes == 0
    assert report.skipped.startswith("logits moved by")
    assert report.max_logit_change > 0.1
    assert (tmp_path / "out.onnx").read_bytes() == onnx.load(str(source)).SerializeToString()


def test_a_rewrite_that_fails_leaves_the_graph_whole(
    tiny_artefact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(model: onnx.ModelProto) -> bool:  # stands in for a graph nobody foresaw
        raise ValueError("an input nothing produces")

    monkeypatch.setattr(trim, "first_token_only", broken)
    source = tiny_artefact / "model.onnx"

    report = trim_model(source, tmp_path / "out.onnx", _feeds(tiny_artefact))

    assert not report.first_token_only
    assert report.skipped == "the rewrite failed: an input nothing produces"
    assert (tmp_path / "out.onnx").read_bytes() == onnx.load(str(source)).SerializeToString()


def test_without_texts_to_check_on_nothing_is_rewritten(
    tiny_artefact: Path, tmp_path: Path
) -> None:
    report = trim_model(tiny_artefact / "model.onnx", tmp_path / "out.onnx", [])
    assert report == TrimReport(False, 0, 0, 0.0, skipped="no texts to check the rewrite on")
    assert (
        onnx.load(str(tmp_path / "out.onnx")).graph.node
        == onnx.load(str(tiny_artefact / "model.onnx")).graph.node
    )
