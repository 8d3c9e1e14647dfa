"""The int8 arithmetic a model run does, and how fast this machine can do int8 arithmetic at all.

`Int8Macs` counts multiply-accumulates of the graph's integer matrix products: every
``MatMulInteger``, ``DynamicQuantizeMatMul``, ``MatMulIntegerToFloat``, ``QLinearMatMul``,
``QGemm`` and ``QAttention`` node contributes rows(A) x K x N, where N comes from B (the
quantized weight) and A's shape is probed by running the graph once, with batch 1, at each padded
width asked about (so reshapes and poolers count exactly what they compute). Products the graph
leaves in float (the attention scores QK^T and softmax x V) are not int8 work and are not
counted. A chunk of ``rows`` texts padded to ``width`` costs ``rows x per_text(width)``.

`measure_peak` times one large ``MatMulInteger`` (uint8 activations with a zero point x int8
weights with per-column zero points, as a dynamically quantized MatMul runs) through ONNX
Runtime on the CPU with the given threads: the int8 rate ONNX Runtime reaches here, the
ceiling a model's int8 MAC rate is judged against. One op = one multiply or one add: a MAC is 2.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INT8_MATMULS: dict[tuple[str, str], tuple[int, int]] = {
    ("", "MatMulInteger"): (0, 1),
    ("", "QLinearMatMul"): (0, 3),
    ("com.microsoft", "DynamicQuantizeMatMul"): (0, 1),
    ("com.microsoft", "MatMulIntegerToFloat"): (0, 1),
    ("com.microsoft", "QGemm"): (0, 3),
    ("com.microsoft", "QAttention"): (0, 1),
}
"""(domain, op type) of an integer matrix product: positions of its A and B inputs."""

PEAK_SIZE = 2048
"""M = N = K of the peak measurement's MatMulInteger."""


def _domain(value: str) -> str:
    return "" if value == "ai.onnx" else value


@dataclass(frozen=True)
class _Product:
    a: str
    b: str
    transpose_b: bool


class Int8Macs:
    """Multiply-accumulates of the integer matrix products in one int8 ONNX graph."""

    def __init__(self, model_path: Path) -> None:
        import onnx
        import onnxruntime as ort

        model = onnx.load(str(model_path))
        self.products: list[_Product] = []
        for node in model.graph.node:
            where = INT8_MATMULS.get((_domain(node.domain), node.op_type))
            if where is None:
                continue
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            self.products.append(_Product(node.input[where[0]], node.input[where[1]], trans_b))
        self.op_types = sorted(
            {n.op_type for n in model.graph.node if (_domain(n.domain), n.op_type) in INT8_MATMULS}
        )
        probed = {p.a for p in self.products} | {p.b for p in self.products}
        outputs = {o.name for o in model.graph.output}
        for name in sorted(probed - outputs):
            model.graph.output.append(onnx.ValueInfoProto(name=name))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        # Unoptimized, so every probed value still exists under its graph name.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self._session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._names = sorted(probed)
        self._per_text: dict[int, int] = {}

    def per_text(self, width: int) -> int:
        """MACs of one text padded to ``width`` tokens (batch 1)."""
        if width not in self._per_text:
            feed = {name: np.ones((1, width), dtype=np.int64) for name in self._inputs}
            values = self._session.run(self._names, feed)
            shapes = {name: v.shape for name, v in zip(self._names, values, strict=True)}
            self._per_text[width] = sum(
                _macs(shapes[p.a], shapes[p.b], p.transpose_b) for p in self.products
            )
        return self._per_text[width]

    def for_shapes(self, shapes: Iterable[tuple[int, int]]) -> int:
        """MACs of model runs on (rows, width) inputs."""
        return sum(rows * self.per_text(width) for rows, width in shapes)


def _macs(a: Sequence[int], b: Sequence[int], transpose_b: bool) -> int:
    """rows x K x N of A @ B, with numpy broadcasting over leading dimensions."""
    k = a[-1]
    if len(b) == 2:
        n = b[0] if transpose_b else b[1]
        return math.prod(a[:-1]) * k * n
    batch = np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
    return math.prod(batch) * a[-2] * k * b[-1]


@dataclass(frozen=True)
class Peak:
    """Int8 GOP/s of one ``size``-cubed MatMulInteger, best and median of ``runs``."""

    size: int
    threads: int
    runs: int
    best_gops: float
    median_gops: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "op": f"MatMulInteger {self.size}x{self.size}x{self.size}, uint8 x int8",
            "size": self.size,
            "threads": self.threads,
            "runs": self.runs,
            "best_gops": self.best_gops,
            "median_gops": self.median_gops,
        }


def peak_session(threads: int, size: int = PEAK_SIZE) -> tuple[Any, dict[str, np.ndarray]]:
    """An ORT session computing one ``size``-cubed MatMulInteger, and its input."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.integers(-127, 128, (size, size), dtype=np.int8), "B"),
        numpy_helper.from_array(np.array(128, dtype=np.uint8), "a_zero"),
        numpy_helper.from_array(np.zeros(size, dtype=np.int8), "b_zero"),
    ]
    node = helper.make_node("MatMulInteger", ["A", "B", "a_zero", "b_zero"], ["Y"])
    graph = helper.make_graph(
        [node], "int8-peak",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [size, size])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [size, size])],
        initializer=weights,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    feed = {"A": rng.integers(0, 256, (size, size), dtype=np.uint8)}
    session.run(None, feed)
    return session, feed


def gops(macs: float, seconds: float) -> float:
    return 2 * macs / seconds / 1e9


def measure_peak(threads: int, runs: int = 10, size: int = PEAK_SIZE) -> Peak:
    session, feed = peak_session(threads, size)
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, feed)
        seconds.append(time.perf_counter() - started)
    macs = size**3
    return Peak(
        size=size, threads=threads, runs=runs,
        best_gops=round(gops(macs, min(seconds)), 1),
        median_gops=round(gops(macs, statistics.median(seconds)), 1),
    )  # fmt: skip


if __name__ == "__main__":  # python -m benchmarks.int8
    from benchmarks.workload import bench_threads

    print(measure_peak(bench_threads()).as_dict())
