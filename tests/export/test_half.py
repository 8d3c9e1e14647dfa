"""The fp16 variant: fused for GPUs, float16 inside, the same inputs and logits dtype outside,
the fp32 function kept within half precision, and recorded in the manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from export_helpers import logits

import clfserve.export.half as half
from clfserve.evaluation.datasets import load_split
from clfserve.runtime.classifier import Classifier
from clfserve.runtime.manifest import Manifest

TEXTS = list(load_split("rotten_tomatoes", "validation").texts[:64])


def _float_types(path: Path) -> set[int]:
    model = onnx.load(str(path))
    return {t.data_type for t in model.graph.initializer if t.data_type in (1, 10)}


def test_export_adds_a_fused_fp16_variant(tiny_artefact: Path) -> None:
    manifest = Manifest.read(tiny_artefact)
    assert manifest.variants["fp16"].file == "model.fp16.onnx"
    assert manifest.variants["fp16"].bytes < 0.6 * manifest.variants["fp32"].bytes
    made = manifest.source["fp16"]
    assert made["method"] == "float16"
    assert made["fused"]["Attention"] == 2  # one per layer of the tiny BERT
    assert made["fused"]["SkipLayerNormalization"] >= 2
    assert manifest.validation["agreement_fp16_fp32"] >= 0.95
    assert set(manifest.validation["variants"]) == {"fp32", "int8", "fp16"}


def test_fp16_keeps_the_interface_and_the_function(tiny_artefact: Path) -> None:
    fp16 = tiny_artefact / "model.fp16.onnx"
    assert _float_types(fp16) == {onnx.TensorProto.FLOAT16}
    graph = onnx.load(str(fp16)).graph
    assert [o.type.tensor_type.elem_type for o in graph.output] == [onnx.TensorProto.FLOAT]
    before = logits(tiny_artefact / "model.onnx", tiny_artefact, TEXTS)
    after = logits(fp16, tiny_artefact, TEXTS)
    assert np.abs(before).max() > 0.1  # the comparison is not between two zeros
    assert np.abs(before - after).max() < 0.02
    assert (before.argmax(1) == after.argmax(1)).mean() >= 0.95


def test_the_runtime_serves_fp16_and_its_references(tiny_artefact: Path) -> None:
    classifier = Classifier.load(tiny_artefact, device="cpu", variant="fp16")
    assert classifier.info.variant == "fp16"
    assert classifier.check_references() == []
    fp32 = Classifier.load(tiny_artefact, device="cpu", variant="fp32")
    pairs = zip(classifier.predict(TEXTS), fp32.predict(TEXTS), strict=True)
    same = [a.label == b.label for a, b in pairs]
    assert sum(same) >= 0.95 * len(TEXTS)


def test_a_graph_the_fusions_reject_is_converted_unfused(
    tiny_artefact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def reject(*args: object) -> None:
        raise RuntimeError("not a BERT graph")

    monkeypatch.setattr(half, "_fuse", reject)
    output = tmp_path / "model.fp16.onnx"
    made = half.convert_fp16(tiny_artefact / "model.onnx", output)
    assert made["fused"] == {}
    assert made["fusion_error"] == "not a BERT graph"
    assert _float_types(output) == {onnx.TensorProto.FLOAT16}
    node_types = {node.op_type for node in onnx.load(str(output)).graph.node}
    assert "Attention" not in node_types
    before = logits(tiny_artefact / "model.onnx", tiny_artefact, TEXTS)
    assert np.abs(before - logits(output, tiny_artefact, TEXTS)).max() < 0.02
