"""Exact rewrites of an fp32 classifier graph that leave out work its answer never reads.

- **First token only** (`first_token_only`). A BERT-style classifier reads one row of the last
  layer's output: the first token's (the pooler's ``Gather`` of position 0). Everything after the
  last attention works row by row (projections, residual ``Add``, LayerNorms, GELU), so only the
  query and the residual of that one row matter there: slicing both to the first token leaves the
  logits as they were while the last layer's output projection and feed-forward (10 of its 12
  multiply-accumulate units: Q/K/V are 1 each, the output projection 1, the feed-forward 8) run on
  one row instead of all. On the default model that is one layer in six. A fused ``Attention``
  node computes every row's context in one kernel, so there its output is sliced instead (the
  output projection and the feed-forward, 9 of the 12 units, run on one row).
- **Static reshapes** (`static_reshapes`). The exporter builds each attention ``Reshape``'s
  target from ``Shape`` -> ``Gather`` -> ``Unsqueeze`` -> ``Concat`` at run time; where a part
  only repeats a dimension of the reshaped tensor (batch, sequence) it becomes ``0`` ("keep this
  dimension") and the whole target a constant, and the shape arithmetic drops out of the graph:
  fewer kernels per call, which is what costs at batch 1.

`trim_model` applies both, drops what no output reads any more, runs the old and the new graph
on the calibration feeds and keeps the rewrite only where the logits agree (`TOLERANCE`).

Measured on the default model (dynamic int8, folded smoothing, one thread, every call run on each
graph back to back): trimmed, the graph ran 1.12x (1.11-1.12x) the untrimmed one's texts/s one
text per call and 1.17x (1.14-1.20x) in length-sorted chunks of 8 (5 rounds of 256 validation
texts); through the runtime, as export scores graphs, 1.07x and 1.13x (7 rounds of 512). One
validation text in 1,275 changed its int8 label (agreement with fp32 0.9898 instead of 0.9906):
dynamic int8 now sizes the last layer's activation scales on the one row that layer computes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from clfserve.export.feeds import Feed

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto

TOLERANCE = 1e-4
"""Largest change of any logit, relative to the largest logit (and at least 1.0), that still
counts as the same function: the rewrites only change how ONNX Runtime blocks its matmuls."""
ROW_WISE = frozenset({"Add", "Sub", "Mul", "Div", "MatMul"})
"""Ops through which a tensor keeps its leading (batch, sequence) dimensions, given one input
that is not a constant (a bias, a scale, a 2-D weight)."""
_CHECK_BATCHES = 2


@dataclass(frozen=True)
class TrimReport:
    """What `trim_model` changed."""

    first_token_only: bool
    """The last layer computes only the first token's row after its attention."""
    static_reshapes: int
    removed_nodes: int
    """Nodes before minus after; -2 where the rewrite only added its two slices (a fused graph
    has no shape arithmetic to drop)."""
    max_logit_change: float
    """Over the checked feeds, relative to the largest logit."""
    skipped: str = ""
    """Why the graph was left as it was, if it was."""


def trim_model(source: Path, output: Path, feeds: Iterable[Feed]) -> TrimReport:
    """Write ``source`` trimmed to ``output`` if the logits stay put on ``feeds``, else a copy
    (a trim that cannot be made or checked never fails the export: the graph stays whole)."""
    import onnx

    checks = _first(feeds, _CHECK_BATCHES)
    if not checks:
        return _unchanged(source, output, 0.0, "no texts to check the rewrite on")
    model = onnx.load(str(source))
    before = len(model.graph.node)
    try:
        reshapes = static_reshapes(model)
        prune(model)  # the shape arithmetic goes, and with it the hidden states' Shape readers
        first = first_token_only(model)
        prune(model)
    except Exception as exc:  # a graph shape these rewrites did not foresee
        return _unchanged(source, output, 0.0, f"the rewrite failed: {exc}")
    if not first and not reshapes:
        return _unchanged(source, output, 0.0, "no first-token read or dynamic reshape")
    onnx.save(model, str(output))
    try:
        change = largest_logit_change(source, output, checks)
    except Exception as exc:  # ONNX Runtime refused the rewritten graph
        return _unchanged(source, output, 0.0, f"the rewritten graph did not run: {exc}")
    if change > TOLERANCE:
        return _unchanged(source, output, change, f"logits moved by {change:.2g}")
    return TrimReport(first, reshapes, before - len(model.graph.node), change)


def _unchanged(source: Path, output: Path, change: float, why: str) -> TrimReport:
    import onnx

    onnx.save(onnx.load(str(source)), str(output))
    return TrimReport(False, 0, 0, change, skipped=why)


def first_token_only(model: ModelProto) -> bool:
    """Make the last attention layer compute only the first token's row; False (and nothing
    changed) if the graph is not a classifier reading only that row of its last layer, or that
    layer is not one this recognizes.

    In an unfused graph the query projection's input is sliced, so the scores, softmax and
    context are one row too. A fused ``Attention`` node (`clfserve.export.quantize.fuse_bert`)
    computes every row's context in one kernel; its output is sliced instead, which still
    leaves the output projection and the feed-forward one row."""
    graph = _Graph(model)
    if graph.first_token_read() is None:
        return False
    nodes = model.graph.node
    softmaxes = [n for n in nodes if n.op_type == "Softmax"]
    fused = [n for n in nodes if n.op_type == "Attention" and n.domain == "com.microsoft"]
    if fused and not softmaxes:
        return _first_token_after(graph, fused[-1])
    if not softmaxes:
        return False
    query = graph.query_projection(softmaxes[-1])
    residual = graph.residual_after(softmaxes[-1])
    if query is None or residual is None:
        return False
    add, position = residual
    rows = query.input[0]
    if add.input[position] not in graph.leading_ancestors(rows) | {rows}:
        return False
    query.input[0] = graph.first_row(rows)
    add.input[position] = graph.first_row(add.input[position])
    graph.finish()
    return True


def _first_token_after(graph: _Graph, attention: NodeProto) -> bool:
    """`first_token_only` for a fused ``Attention`` node: slice its context and the residual."""
    residual = graph.residual_after(attention)
    readers = graph.readers.get(attention.output[0], [])
    if residual is None or len(readers) != 1:
        return False
    add, position = residual
    rows = attention.input[0]
    if add.input[position] not in graph.leading_ancestors(rows) | {rows}:
        return False
    (reader,) = readers
    context = attention.output[0]
    reader.input[list(reader.input).index(context)] = graph.first_row(context)
    add.input[position] = graph.first_row(add.input[position])
    graph.finish()
    return True


def static_reshapes(model: ModelProto) -> int:
    """Turn each ``Reshape`` target made of constants and repeated leading dimensions of its
    own input into one constant (``0`` = keep the input's dimension); return how many."""
    import onnx

    graph = _Graph(model)
    done = 0
    for node in model.graph.node:
        if node.op_type != "Reshape":
            continue
        target = graph.constant_target(node)
        if target is None or target.count(-1) > 1:
            continue
        name = f"{node.name or node.output[0]}_target"
        array = np.array(target, dtype=np.int64)
        model.graph.initializer.append(onnx.numpy_helper.from_array(array, name))
        node.input[1] = name
        done += 1
    return done


def prune(model: ModelProto) -> None:
    """Drop nodes (and initializers) that no graph output depends on any more."""
    graph = model.graph
    wanted = {output.name for output in graph.output}
    kept: list[NodeProto] = []
    for node in reversed(graph.node):
        if any(out in wanted for out in node.output):
            kept.append(node)
            wanted.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    unused = [init for init in graph.initializer if init.name not in wanted]
    for init in unused:
        graph.initializer.remove(init)


class _Graph:
    """Look-ups over one ModelProto and the nodes `first_token_only` adds."""

    def __init__(self, model: ModelProto) -> None:
        self.model = model
        self.inits = {init.name: init for init in model.graph.initializer}
        self.producer: dict[str, NodeProto] = {
            out: node for node in model.graph.node for out in node.output
        }
        self.readers: dict[str, list[NodeProto]] = {}
        for node in model.graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self._sliced: dict[str, str] = {}

    def constant(self, name: str) -> npt.NDArray[np.int64] | None:
        from onnx import numpy_helper

        if name in self.inits:
            return np.asarray(numpy_helper.to_array(self.inits[name]))
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant" and node.attribute:
            return np.asarray(numpy_helper.to_array(node.attribute[0].t))
        return None

    def variable_inputs(self, node: NodeProto) -> list[str]:
        return [name for name in node.input if name and self.constant(name) is None]

    def leading_ancestors(self, tensor: str) -> set[str]:
        """Tensors ``tensor`` is computed from through `ROW_WISE` ops alone (same leading dims)."""
        found: set[str] = set()
        node = self.producer.get(tensor)
        while node is not None and node.op_type in ROW_WISE:
            inputs = self.variable_inputs(node)
            if len(inputs) != 1:
                break
            found.add(inputs[0])
            node = self.producer.get(inputs[0])
        return found

    def first_token_read(self) -> str | None:
        """The hidden state whose position 0 is the only part of it the graph reads."""
        for node in self.model.graph.node:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            index = self.constant(node.input[1]) if len(node.input) > 1 else None
            if node.op_type == "Gather" and axis == 1 and index is not None and index.ndim == 0:
                hidden = str(node.input[0])
                if int(index) == 0 and len(self.readers[hidden]) == 1:
                    return hidden
        return None

    def query_projection(self, softmax: NodeProto) -> NodeProto | None:
        """The ``x @ Wq`` MatMul whose rows become the queries of ``softmax``'s attention."""
        scores = self._scores(softmax.input[0])  # Q @ K^T, then scaled and masked
        node = self.producer.get(scores.input[0]) if scores is not None else None
        while node is not None and node.op_type in ("Transpose", "Reshape", "Add", "Mul", "Div"):
            data = self._data_input(node)
            node = self.producer.get(data) if data is not None else None
        if node is None or node.op_type != "MatMul" or node.input[1] not in self.inits:
            return None
        return node

    def residual_after(self, attention: NodeProto) -> tuple[NodeProto, int] | None:
        """The residual ``Add`` after the output projection of ``attention`` (its Softmax, or a
        fused Attention node), and which of its inputs is the skip connection."""
        chain = [attention.output[0]]
        for _ in range(12):  # softmax @ V, head merge, projection, bias: a handful of nodes
            readers = [n for n in self.readers.get(chain[-1], []) if n.op_type != "Shape"]
            if len(readers) != 1:
                return None
            node = readers[0]
            others = [i for i, name in enumerate(node.input) if name and name not in chain]
            variable = [i for i in others if self.constant(node.input[i]) is None]
            if node.op_type == "Add" and len(variable) == 1:
                return node, variable[0]
            chain.append(node.output[0])
        return None

    def constant_target(self, reshape: NodeProto) -> list[int] | None:
        concat = self.producer.get(reshape.input[1])
        if concat is None or concat.op_type != "Concat":
            return None
        leading = self.leading_ancestors(reshape.input[0]) | {reshape.input[0]}
        target: list[int] = []
        for position, part in enumerate(concat.input):
            value = self.constant(part)
            if value is not None and value.size == 1:
                target.append(int(value.reshape(-1)[0]))
            elif self._dimension_of(part) in {(t, position) for t in leading}:
                target.append(0)
            else:
                return None
        return target

    def first_row(self, tensor: str) -> str:
        """``tensor[:, 0:1]``, made once per tensor."""
        import onnx

        if tensor not in self._sliced:
            bounds = {"starts": 0, "ends": 1, "axes": 1}
            names = [tensor]
            for key, value in bounds.items():
                name = f"first_token_{key}"
                if name not in self.inits:
                    init = onnx.numpy_helper.from_array(np.array([value], np.int64), name)
                    self.model.graph.initializer.append(init)
                    self.inits[name] = init
                names.append(name)
            out = f"{tensor}_first_token"
            self._sliced[tensor] = out
            self.model.graph.node.append(onnx.helper.make_node("Slice", names, [out], name=out))
        return self._sliced[tensor]

    def finish(self) -> None:
        """Put the added nodes back in topological order."""
        order = list(_topological(self.model))
        del self.model.graph.node[:]
        self.model.graph.node.extend(order)

    def _scores(self, tensor: str, depth: int = 6) -> NodeProto | None:
        """The nearest MatMul of two computed tensors above ``tensor`` (the attention mask's
        branch has none)."""
        node = self.producer.get(tensor)
        if node is None or depth == 0:
            return None
        if node.op_type == "MatMul" and len(self.variable_inputs(node)) == 2:
            return node
        for name in self.variable_inputs(node):
            found = self._scores(name, depth - 1)
            if found is not None:
                return found
        return None

    def _data_input(self, node: NodeProto) -> str | None:
        if node.op_type in ("Transpose", "Reshape"):
            return str(node.input[0])
        inputs = self.variable_inputs(node)
        return inputs[0] if len(inputs) == 1 else None

    def _dimension_of(self, tensor: str) -> tuple[str, int] | None:
        """(x, i) where ``tensor`` is ``Unsqueeze(Gather(Shape(x), i))``."""
        unsqueeze = self.producer.get(tensor)
        gather = self.producer.get(unsqueeze.input[0]) if unsqueeze is not None else None
        if unsqueeze is None or unsqueeze.op_type != "Unsqueeze" or gather is None:
            return None
        shape = self.producer.get(gather.input[0])
        index = self.constant(gather.input[1]) if gather.op_type == "Gather" else None
        if shape is None or shape.op_type != "Shape" or index is None or index.ndim != 0:
            return None
        if any(a.name in ("start", "end") for a in shape.attribute):
            return None
        return shape.input[0], int(index)


def _topological(model: ModelProto) -> Iterator[NodeProto]:
    ready = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer}
    ready.add("")
    pending = list(model.graph.node)
    while pending:
        waiting = []
        for node in pending:
            if all(name in ready for name in node.input):
                ready.update(node.output)
                yield node
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise ValueError("the graph has a cycle or an input nothing produces")
        pending = waiting


def _first(feeds: Iterable[Feed], count: int) -> list[Feed]:
    taken: list[Feed] = []
    for feed in feeds:
        taken.append(feed)
        if len(taken) == count:
            break
    return taken


def largest_logit_change(before: Path, after: Path, feeds: list[Feed]) -> float:
    """Largest change of any logit from ``before`` to ``after`` over ``feeds``, relative to the
    largest logit of ``before`` (and at least 1.0)."""
    import onnxruntime as ort

    def logits(path: Path) -> list[npt.NDArray[np.float32]]:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        wanted = {i.name for i in session.get_inputs()}
        return [
            np.asarray(session.run(None, {k: v for k, v in feed.items() if k in wanted})[0])
            for feed in feeds
        ]

    old, new = logits(before), logits(after)
    if not old:
        return 0.0
    scale = max(1.0, max(float(np.abs(o).max()) for o in old))
    return max(float(np.abs(o - n).max()) for o, n in zip(old, new, strict=True)) / scale


__all__ = [
    "TOLERANCE",
    "TrimReport",
    "first_token_only",
    "largest_logit_change",
    "prune",
    "static_reshapes",
    "trim_model",
]
