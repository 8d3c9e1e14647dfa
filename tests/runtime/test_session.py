"""Session options: the fusions a CPU session leaves off are real ONNX Runtime fusions, and only
CPU-only sessions leave them off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from clfserve.runtime.session import CPU, CPU_FUSIONS_OFF, CUDA, create_session

HIDDEN = 16


def residual_layer_norm(path: Path) -> Path:
    """``LayerNorm(x @ W + bias + x)``: the pattern `SkipLayerNormFusion` rewrites."""
    rng = np.random.default_rng(0)
    weights = {
        "w": rng.standard_normal((HIDDEN, HIDDEN)).astype(np.float32),
        "bias": rng.standard_normal(HIDDEN).astype(np.float32),
        "gamma": np.ones(HIDDEN, np.float32),
        "beta": np.zeros(HIDDEN, np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["projected"]),
        helper.make_node("Add", ["projected", "bias"], ["biased"]),
        helper.make_node("Add", ["biased", "x"], ["summed"]),
        helper.make_node("LayerNormalization", ["summed", "gamma", "beta"], ["y"], axis=-1),
    ]
    shape = ["batch", "seq", HIDDEN]
    graph = helper.make_graph(
        nodes,
        "residual",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(array, name) for name, array in weights.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def optimized_ops(source: Path, fusions_off: list[str]) -> set[str]:
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(source.with_suffix(".optimized.onnx"))
    ort.InferenceSession(str(source), options, providers=[CPU], disabled_optimizers=fusions_off)
    return {node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node}


def test_the_fusions_left_off_are_real_onnx_runtime_fusions(tmp_path: Path) -> None:
    graph = residual_layer_norm(tmp_path / "residual.onnx")
    assert "SkipLayerNormalization" in optimized_ops(graph, [])
    left = optimized_ops(graph, list(CPU_FUSIONS_OFF))
    assert "SkipLayerNormalization" not in left
    assert "LayerNormalization" in left


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What each session was created with (the real session is still created)."""
    calls: list[dict[str, Any]] = []
    real = ort.InferenceSession

    def recording(*args: Any, **kwargs: Any) -> ort.InferenceSession:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", recording)
    return calls


def test_cpu_sessions_leave_the_slow_fusions_off(
    tmp_path: Path, asked: list[dict[str, Any]]
) -> None:
    graph = residual_layer_norm(tmp_path / "residual.onnx")
    session = create_session(graph, [CPU], threads=1)
    x = np.ones((2, 3, HIDDEN), np.float32)
    every = create_session(graph, [CPU], threads=1, fusions_off=())
    np.testing.assert_allclose(
        session.run(None, {"x": x})[0], every.run(None, {"x": x})[0], atol=1e-5
    )
    assert [call["disabled_optimizers"] for call in asked] == [list(CPU_FUSIONS_OFF), []]


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_sessions_that_may_run_on_cuda_keep_every_fusion(
    tmp_path: Path, asked: list[dict[str, Any]]
) -> None:
    create_session(residual_layer_norm(tmp_path / "residual.onnx"), [CUDA, CPU], threads=1)
    assert asked[0]["disabled_optimizers"] == []
