"""int8 candidate graphs: folded smoothing keeps the fp32 function and adds no node where a
fold exists, export records which graph it kept and why, and a pinned graph is honoured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from export_helpers import logits, small_export
from onnx import TensorProto, helper, numpy_helper

from clfserve.evaluation.datasets import load_split
from clfserve.export.artefact import export_artefact
from clfserve.export.choice import GraphScore, Requirement, Speed, choose
from clfserve.export.feeds import text_feeds
from clfserve.export.graphs import AUTO_CANDIDATES
from clfserve.export.smooth import SUFFIX, calibrate, smooth_model
from clfserve.runtime.classifier import Classifier
from clfserve.runtime.manifest import Manifest

TEXTS = list(load_split("rotten_tomatoes", "train").texts[:96])


@pytest.fixture(scope="module")
def folded(tiny_artefact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("fold") / "folded.onnx"
    feeds = text_feeds(tiny_artefact, Manifest.read(tiny_artefact), TEXTS, batch_size=32)
    peaks = calibrate(tiny_artefact / "model.onnx", feeds)
    report = smooth_model(tiny_artefact / "model.onnx", output, peaks, 0.8, placement="fold")
    # 2 layers: the attention context of each folds into V; the LayerNorm outputs also feed
    # residual Adds and the GELU outputs have no linear producer, so they keep a Mul.
    assert report.placed == {"mul": 6, "value": 2}
    assert report.inputs == 8
    return output


def test_folding_keeps_the_fp32_function(tiny_artefact: Path, folded: Path) -> None:
    before = logits(tiny_artefact / "model.onnx", tiny_artefact, TEXTS)
    after = logits(folded, tiny_artefact, TEXTS)
    assert np.abs(before - after).max() < 1e-4
    assert np.abs(before).max() > 0.1  # the comparison is not between two zeros


def test_no_mul_where_the_value_projection_can_carry_it(folded: Path) -> None:
    model = onnx.load(str(folded))
    producer = {out: node for node in model.graph.node for out in node.output}
    dense = [n for n in model.graph.node if "attention/output/dense/MatMul" in n.name]
    assert len(dense) == 2
    for node in dense:  # reads the context straight from the attention, not through a Mul
        assert producer[node.input[0]].op_type == "Reshape"
    muls = [n for n in model.graph.node if n.op_type == "Mul" and n.output[0].endswith(SUFFIX)]
    assert len(muls) == 6


def _pre_ln_graph(tmp_path: Path) -> Path:
    """x -> LayerNorm -> MatMul(W) -> y: the LayerNorm output feeds only the MatMul."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(1, 0.2, 8).astype(np.float32), "gamma"),
        numpy_helper.from_array(rng.normal(0, 0.2, 8).astype(np.float32), "beta"),
        numpy_helper.from_array(rng.normal(0, 1, (8, 4)).astype(np.float32), "w"),
    ]
    nodes = [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["h"], axis=-1),
        helper.make_node("MatMul", ["h", "w"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])
    graph = helper.make_graph(nodes, "pre_ln", [x], [y], initializer=inits)
    path = tmp_path / "pre_ln.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_layernorm_only_the_matmul_reads_carries_the_scales(tmp_path: Path) -> None:
    source = _pre_ln_graph(tmp_path)
    x = np.random.default_rng(1).normal(0, 3, (16, 8)).astype(np.float32)
    x[:, 3] *= 20  # an outlier channel
    peaks = calibrate(source, [{"x": x}])
    report = smooth_model(source, tmp_path / "out.onnx", peaks, 0.8, placement="fold")
    assert report.placed == {"layernorm": 1}
    out = onnx.load(str(tmp_path / "out.onnx"))
    assert [n.op_type for n in out.graph.node] == ["LayerNormalization", "MatMul"]

    def run(path: Path) -> np.ndarray:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.asarray(session.run(None, {"x": x})[0])

    assert np.allclose(run(source), run(tmp_path / "out.onnx"), atol=1e-4)


def test_free_placement_leaves_unfoldable_inputs_alone(tiny_artefact: Path, tmp_path: Path) -> None:
    feeds = text_feeds(tiny_artefact, Manifest.read(tiny_artefact), TEXTS[:32], batch_size=32)
    peaks = calibrate(tiny_artefact / "model.onnx", feeds)
    report = smooth_model(tiny_artefact / "model.onnx", tmp_path / "f.onnx", peaks, 0.8, "free")
    assert report.placed == {"skipped": 6, "value": 2}
    assert report.inputs == 2
    model = onnx.load(str(tmp_path / "f.onnx"))
    assert not [n for n in model.graph.node if n.output[0].endswith(SUFFIX)]
    assert (
        np.abs(
            logits(tiny_artefact / "model.onnx", tiny_artefact, TEXTS)
            - logits(tmp_path / "f.onnx", tiny_artefact, TEXTS)
        ).max()
        < 1e-4
    )


def test_manifest_records_the_measured_choice(tiny_artefact: Path) -> None:
    graph = Manifest.read(tiny_artefact).int8_graph
    assert set(graph["candidates"]) == set(AUTO_CANDIDATES)
    assert graph["chosen"] in AUTO_CANDIDATES
    assert graph["rounds"] == 5
    for score in graph["candidates"].values():
        assert score["serving"]["min"] <= score["serving"]["median"] <= score["serving"]["max"]
        assert score["batch1"]["median"] > 0
        assert 0.0 <= score["agreement"] <= 1.0
    # The recorded numbers lead to the recorded choice.
    scores = {
        name: GraphScore(
            Speed(**s["batch1"]),
            Speed(**s["serving"]),
            s["agreement"],
            s["accuracy"],
            s["macro_f1"],
        )
        for name, s in graph["candidates"].items()
    }
    fp32 = GraphScore(Speed(0, 0, 0), Speed(0, 0, 0), 1.0, **graph["fp32"])
    assert choose(scores, fp32, Requirement(0.99, 0.01)) == (graph["chosen"], graph["reason"])


def test_a_pinned_graph_is_built_without_measuring(tiny_checkpoint: Path, tmp_path: Path) -> None:
    config = small_export(tiny_checkpoint, tmp_path / "fused", int8_graph="fused", fp16=False)
    manifest = export_artefact(config).manifest
    assert set(manifest.variants) == {"fp32", "int8"}  # fp16=False (--no-fp16) leaves it out
    assert "fp16" not in manifest.source
    assert manifest.int8_graph == {
        "chosen": "fused",
        "reason": "pinned (int8_graph), not measured",
        "candidates": {},
    }
    assert manifest.source["quantization"]["fused"]["Attention"] == 2
    assert manifest.source["quantization"]["trim"]["first_token_only"]  # trimmed after fusing
    assert manifest.source["quantization"]["pass_through"]["feed_forwards"] == 2
    assert manifest.source["quantization"]["spikes"]["feed_forwards"] == 2
    ops = {n.op_type for n in onnx.load(str(tmp_path / "fused" / "model.int8.onnx")).graph.node}
    assert "QAttention" in ops
    assert Classifier.load(tmp_path / "fused", device="cpu").predict(["fine"])[0].label


def _score(serving: float, agreement: float, accuracy: float = 0.85) -> GraphScore:
    speed = Speed(serving, serving, serving)
    return GraphScore(speed, speed, agreement, accuracy, accuracy)


FP32 = _score(0.0, 1.0)
NEED = Requirement(min_agreement=0.99, tolerance=0.01)


def test_choice_is_the_fastest_that_keeps_the_answers() -> None:
    scores = {
        "fast_wrong": _score(900, 0.95),
        "slow": _score(400, 0.999),
        "fast": _score(600, 0.992),
    }
    name, reason = choose(scores, FP32, NEED)
    assert name == "fast"
    assert "of fast, slow, which kept agreement >= 0.99" in reason
    assert reason.endswith("others: fast_wrong 0.9500/0.8500/0.8500)")


def test_choice_ignores_a_candidate_that_loses_accuracy() -> None:
    scores = {"lossy": _score(900, 0.995, accuracy=0.80), "ok": _score(500, 0.991)}
    name, reason = choose(scores, FP32, NEED)
    assert name == "ok"
    assert reason.startswith("the only candidate that kept")


def test_a_near_tie_goes_to_the_one_closer_to_fp32() -> None:
    scores = {"a": _score(500, 0.991), "b": _score(490, 0.996)}
    assert choose(scores, FP32, NEED)[0] == "b"


def test_when_none_qualifies_the_closest_to_fp32_is_kept() -> None:
    scores = {"a": _score(900, 0.90), "b": _score(100, 0.95)}
    name, reason = choose(scores, FP32, NEED)
    assert name == "b"
    assert reason.startswith("no candidate kept")


def test_the_runtime_feeds_int32_inputs_to_a_graph_that_declares_them(
    tiny_artefact: Path, tmp_path: Path
) -> None:
    from clfserve.export.choice import _classifier
    from clfserve.export.graphs import int32_inputs
    from clfserve.runtime.inputs import TextEncoder

    manifest = Manifest.read(tiny_artefact)
    narrow = tmp_path / "int32.onnx"
    int32_inputs(tiny_artefact / "model.onnx", narrow)
    encoder = TextEncoder(tiny_artefact / "tokenizer.json", manifest.max_length)
    wide = _classifier(manifest, encoder, tiny_artefact / "model.onnx")
    thin = _classifier(manifest, encoder, narrow)
    assert {i.type for i in thin.session.get_inputs()} == {"tensor(int32)"}
    chunk = wide.chunks(wide.encode(TEXTS[:16]))[0]
    assert np.array_equal(wide.run(chunk), thin.run(chunk))


@pytest.mark.parametrize("command", ["export", "release"])
def test_the_cli_pins_the_int8_graph(command: str) -> None:
    import argparse

    from clfserve.cli import release

    parser = argparse.ArgumentParser()
    release.add_commands(parser.add_subparsers())
    extra = ["--model", "ckpt"] if command == "export" else []
    args = parser.parse_args([command, *extra, "--int8-graph", "fused"])
    assert release._export_config(args, Path("c"), Path("o"), None, None).int8_graph == "fused"
    default = parser.parse_args([command, *extra])
    assert release._export_config(default, Path("c"), Path("o"), None, None).int8_graph == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args([command, *extra, "--int8-graph", "fastest"])


def test_auto_leaves_out_a_graph_that_cannot_be_built(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clfserve.export import artefact
    from clfserve.export.errors import ExportError

    real = artefact.build_graph

    def build(kind: str, calibration: Any, output: Path) -> dict[str, Any]:
        if kind == "fused":
            raise ExportError("no BERT attention to fuse")
        return real(kind, calibration, output)

    monkeypatch.setattr(artefact, "build_graph", build)
    config = small_export(tiny_checkpoint, tmp_path / "a", int8_rounds=1)
    chosen = export_artefact(config).manifest.int8_graph
    assert chosen["failed"] == {"fused": "no BERT attention to fuse"}
    assert set(chosen["candidates"]) == set(AUTO_CANDIDATES) - {"fused"}
    assert chosen["rounds"] == 1
    assert [p.name for p in (tmp_path / "a").iterdir() if p.name.startswith(".")] == []


class _Recorder:
    """Stands in for a `Classifier`: records who predicted which batch, in order."""

    def __init__(self, name: str, calls: list[tuple[str, tuple[str, ...]]]) -> None:
        self.name, self.calls = name, calls

    def predict(self, texts: Any) -> list[Any]:
        self.calls.append((self.name, tuple(texts)))
        return []


def test_every_call_is_timed_on_every_graph_back_to_back() -> None:
    from clfserve.export.choice import interleaved

    calls: list[tuple[str, tuple[str, ...]]] = []
    graphs: Any = {name: _Recorder(name, calls) for name in ("a", "b", "c")}
    spent = interleaved(graphs, ["t1", "t2", "t3", "t4", "t5"], per_call=2, first=1)
    # Each batch goes to all three before the next batch; the leader rotates call by call.
    assert calls == [
        ("b", ("t1", "t2")), ("c", ("t1", "t2")), ("a", ("t1", "t2")),
        ("c", ("t3", "t4")), ("a", ("t3", "t4")), ("b", ("t3", "t4")),
        ("a", ("t5",)), ("b", ("t5",)), ("c", ("t5",)),
    ]  # fmt: skip
    assert set(spent) == {"a", "b", "c"}
    assert all(s > 0 for s in spent.values())
