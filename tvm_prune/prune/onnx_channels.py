"""Structural channel removal on an ONNX graph: what ``RemoveChannels`` does, written as ONNX.

The nodes are walked in order. A ``Conv``, ``Gemm`` or ``MatMul`` whose weight the plan names
loses those output channels; the tensors after it carry the removal through per-channel ops
(batch norm, activations, pooling, elementwise ops with per-channel constants, residual adds of
two tensors with the same removal, depthwise convs), ``Concat`` and ``Flatten`` (a channel
becomes a block of features) to the layers that read them, which keep only the remaining input
channels.
Initializers are sliced to match. Any other op that reads a tensor with removed channels is
refused with :class:`~tvm_prune.errors.TvmPruneError`: the planner's dependency graph proved the
plan in Relax, and the export does not guess about ONNX ops it does not know.

A removed channel is zero at its producer but not after it (bias, batch-norm shift ...), so the
layers reading it get a constant contribution. Those values do not depend on the input: they
are read from the masked dense graph (one run of onnx's ``ReferenceEvaluator`` on zero
inputs), pushed through each reading layer's weights, and added to its bias when they are the
same at every pixel, otherwise by an ``Add`` of the per-pixel map after the layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from ..errors import TvmPruneError

PER_CHANNEL = frozenset(
    {
        "Relu",
        "Sigmoid",
        "HardSigmoid",
        "HardSwish",
        "Clip",
        "LeakyRelu",
        "Tanh",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "Identity",
        "Dropout",
    }
)
ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div"})


class OnnxChannelError(TvmPruneError):
    """A channel plan the structural ONNX export cannot write."""


@dataclass(frozen=True)
class _Removal:
    """Which elements along ``axis`` of a tensor are removed (of ``total``)."""

    axis: int
    total: int
    removed: tuple[int, ...]

    @property
    def kept(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.total), self.removed)


def remove_onnx_channels(
    proto: onnx.ModelProto, plan: Mapping[str, Sequence[int]], inputs: Mapping[str, tuple]
) -> onnx.ModelProto:
    """A copy of ``proto`` with ``plan``'s channels removed (``inputs``: input name -> shape).

    ``plan`` maps a layer's weight name (as in ``Model.params``: the initializer name without
    an ``onnx::`` prefix) to its removed output channels.
    """
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    graph = proto.graph
    names = {init.name.removeprefix("onnx::"): init.name for init in graph.initializer}
    unknown = sorted(set(plan) - set(names))
    if unknown:
        raise OnnxChannelError(f"structural ONNX export: no initializer {', '.join(unknown)}")
    plan = {names[w]: tuple(sorted(int(c) for c in chs)) for w, chs in plan.items() if len(chs)}
    walk = _Walk(proto, plan)
    for node in graph.node:
        walk.visit(node)
    for output in graph.output:
        if output.name in walk.removals:
            raise OnnxChannelError(f"structural ONNX export: output {output.name} loses channels")
    removed_values = _removed_values(proto, walk, inputs)
    added = {}  # node output -> Add node after it
    for node, tensor, removal in walk.readers:
        add = _add_contribution(walk, node, removed_values[tensor], removal)
        if add is not None:
            added[node.output[0]] = add
    # Slices last: the contributions above are computed with the dense weights.
    for (name, axis), kept in walk.slices.items():
        walk.set(name, np.take(walk.values[name], kept, axis=axis))
    nodes = []
    for node in graph.node:
        if node.op_type == "Conv" and node.output[0] in walk.groups:
            for attr in node.attribute:
                if attr.name == "group":
                    attr.i = walk.groups[node.output[0]]
        nodes.append(node)
        if node.output[0] in added:
            nodes.append(added[node.output[0]])
    del graph.node[:]
    graph.node.extend(nodes)
    # Shapes recorded for intermediate tensors are now wrong; runtimes infer them again.
    del graph.value_info[:]
    onnx.checker.check_model(proto)
    return proto


class _Walk:
    """One pass over the nodes: where channels are removed, what to slice, who reads them."""

    def __init__(self, proto: onnx.ModelProto, plan: Mapping[str, tuple[int, ...]]):
        self.proto, self.plan = proto, plan
        self.inits = {init.name: init for init in proto.graph.initializer}
        self.values = {name: numpy_helper.to_array(init) for name, init in self.inits.items()}
        inferred = onnx.shape_inference.infer_shapes(proto).graph
        self.shapes = {
            info.name: [d.dim_value for d in info.type.tensor_type.shape.dim]
            for info in [*inferred.value_info, *inferred.input, *inferred.output]
        }
        self.out_axes: dict[str, int] = {}
        self.removals: dict[str, _Removal] = {}
        self.slices: dict[tuple[str, int], np.ndarray] = {}
        self.readers: list[tuple[onnx.NodeProto, str, _Removal]] = []
        self.groups: dict[str, int] = {}

    def set(self, name: str, value: np.ndarray) -> None:
        """Give initializer ``name`` a new value (a new initializer if it is new)."""
        if name not in self.inits:
            self.inits[name] = self.proto.graph.initializer.add()
            self.values[name] = value
        new = numpy_helper.from_array(value.astype(self.values[name].dtype), name)
        self.inits[name].CopyFrom(new)
        self.values[name] = value

    def slice(self, name: str, axis: int, kept: np.ndarray) -> None:
        if name not in self.inits:
            raise OnnxChannelError(f"structural ONNX export: {name} is not an initializer")
        axis %= self.values[name].ndim
        previous = self.slices.get((name, axis))
        if previous is not None and not np.array_equal(previous, kept):
            raise OnnxChannelError(f"structural ONNX export: {name} is shared by two layers")
        self.slices[name, axis] = kept

    def visit(self, node: onnx.NodeProto) -> None:
        removed = {i: self.removals[t] for i, t in enumerate(node.input) if t in self.removals}
        op = node.op_type
        if op in ("Conv", "Gemm", "MatMul"):
            self._layer(node, removed.get(0))
            rest = set(removed) - {0}
        elif op == "BatchNormalization" and set(removed) == {0}:
            for name in node.input[1:5]:
                self.slice(name, 0, removed[0].kept)
            self.removals[node.output[0]] = removed[0]
            rest = set()
        elif op in PER_CHANNEL and set(removed) <= {0}:
            if removed:
                self.removals[node.output[0]] = removed[0]
            rest = set()
        elif op in ELEMENTWISE and removed:
            self._elementwise(node, removed)
            rest = set()
        elif op == "Concat" and removed:
            self._concat(node, removed)
            rest = set()
        elif op == "Flatten" and set(removed) == {0}:
            self._flatten(node, removed[0])
            rest = set()
        else:
            rest = set(removed)
        if rest:
            tensor = node.input[min(rest)]
            raise OnnxChannelError(
                f"structural ONNX export: {op} node {node.name or node.output[0]} reads pruned "
                f"channels of {tensor}; not supported"
            )

    def _layer(self, node, data: _Removal | None) -> None:
        op, weight = node.op_type, node.input[1]
        if weight not in self.inits:
            if data or weight in self.plan:
                raise OnnxChannelError(f"structural ONNX export: {op} weight {weight} is computed")
            return
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        out_axis, in_axis = {
            "Conv": (0, 1),
            "Gemm": (0, 1) if attrs.get("transB", 0) else (1, 0),
            "MatMul": (1, 0),
        }[op]
        shape = self.values[weight].shape
        if op == "Conv" and attrs.get("group", 1) != 1:
            if not (attrs["group"] == shape[0] and shape[1] == 1):
                if data:
                    raise OnnxChannelError(f"structural ONNX export: grouped Conv {node.name}")
                return
            if data:  # depthwise: channel c in, channel c out
                self.slice(weight, 0, data.kept)
                if bias:
                    self.slice(bias, 0, data.kept)
                self.groups[node.output[0]] = len(data.kept)
                self.removals[node.output[0]] = data
            return
        if data:
            self.slice(weight, in_axis, data.kept)
            self.readers.append((node, node.input[0], data))
        self.out_axes[weight] = out_axis
        if weight in self.plan:
            removal = _Removal(1, shape[out_axis], self.plan[weight])
            self.slice(weight, out_axis, removal.kept)
            if bias:
                self.slice(bias, 0 if op == "Conv" else -1, removal.kept)
            self.removals[node.output[0]] = removal

    def _elementwise(self, node, removed: dict[int, _Removal]) -> None:
        first = next(iter(removed.values()))
        if any(r != first for r in removed.values()):
            raise OnnxChannelError(
                f"structural ONNX export: {node.op_type} {node.name} mixes different removals"
            )
        out_rank = len(self.shapes.get(node.output[0], ())) or None
        for i, name in enumerate(node.input):
            if i in removed:
                continue
            shape = self.values[name].shape if name in self.inits else self.shapes.get(name)
            if shape is None or out_rank is None:
                raise OnnxChannelError(f"structural ONNX export: unknown shape of {name}")
            axis = first.axis - (out_rank - len(shape))
            if 0 <= axis < len(shape) and shape[axis] == first.total:
                self.slice(name, axis, first.kept)  # refuses non-initializers
        self.removals[node.output[0]] = first

    def _concat(self, node, removed: dict[int, _Removal]) -> None:
        rank = len(self.shapes.get(node.output[0], ()))
        axis = next(helper.get_attribute_value(a) for a in node.attribute if a.name == "axis")
        axis %= max(rank, 1)
        offset, indices = 0, []
        for i, name in enumerate(node.input):
            removal = removed.get(i)
            if removal is not None and removal.axis != axis:
                raise OnnxChannelError(f"structural ONNX export: Concat {node.name} axis {axis}")
            size = removal.total if removal else (self.shapes.get(name) or [0] * rank)[axis]
            if not size:
                raise OnnxChannelError(f"structural ONNX export: unknown shape of {name}")
            indices += [offset + c for c in (removal.removed if removal else ())]
            offset += size
        self.removals[node.output[0]] = _Removal(axis, offset, tuple(indices))

    def _flatten(self, node, removal: _Removal) -> None:
        shape = self.shapes.get(node.input[0])
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1)
        if axis != 1 or removal.axis != 1 or not shape or 0 in shape:
            raise OnnxChannelError(f"structural ONNX export: Flatten {node.name} is not NCHW->NC")
        block = int(np.prod(shape[2:]))
        removed = [c * block + k for c in removal.removed for k in range(block)]
        self.removals[node.output[0]] = _Removal(1, removal.total * block, tuple(removed))


def _removed_values(proto, walk: _Walk, inputs) -> dict[str, np.ndarray]:
    """Each read tensor with removed channels, from the masked graph on zero inputs (the
    removed channels' values do not depend on the input)."""
    tensors = sorted({tensor for _, tensor, _ in walk.readers})
    if not tensors:
        return {}
    masked = onnx.ModelProto.FromString(proto.SerializeToString())
    for init in masked.graph.initializer:
        if init.name in walk.plan:
            value = numpy_helper.to_array(init).copy()
            index = [slice(None)] * value.ndim
            index[walk.out_axes[init.name]] = list(walk.plan[init.name])
            value[tuple(index)] = 0
            init.CopyFrom(numpy_helper.from_array(value, init.name))
    feeds = {name: np.zeros(shape, np.float32) for name, shape in inputs.items()}
    values = ReferenceEvaluator(masked).run(tensors, feeds)
    return dict(zip(tensors, values, strict=True))


def _add_contribution(walk: _Walk, node, value: np.ndarray, removal: _Removal):
    """Add what ``node`` computes from the removed channels of its input (``value``, whose
    kept channels are set to zero): into its bias, or as an ``Add`` node (returned)."""
    index = [slice(None)] * value.ndim
    index[removal.axis] = removal.kept
    value = value.copy()
    value[tuple(index)] = 0
    if not np.any(value):
        return None
    weight = walk.values[node.input[1]]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Conv":
        conv = helper.make_node("Conv", ["x", "w"], ["y"], **attrs)
        tensor = helper.make_tensor_value_info
        graph = helper.make_graph(
            [conv],
            "contribution",
            [tensor("x", onnx.TensorProto.FLOAT, value.shape)],
            [tensor("y", onnx.TensorProto.FLOAT, None)],
            [numpy_helper.from_array(weight, "w")],
        )
        model = helper.make_model(graph, opset_imports=walk.proto.opset_import)
        (contribution,) = ReferenceEvaluator(model).run(None, {"x": value})
        pixels = contribution.reshape(contribution.shape[1], -1)
        uniform = np.allclose(pixels, pixels[:, :1], rtol=1e-6, atol=1e-7 * np.abs(pixels).max())
        per_channel, scale = pixels[:, 0], 1.0
    elif node.op_type == "Gemm":
        if attrs.get("transA", 0):
            raise OnnxChannelError(f"structural ONNX export: Gemm {node.name} with transA")
        matrix = weight.T if attrs.get("transB", 0) else weight
        contribution = attrs.get("alpha", 1.0) * (value @ matrix)
        uniform, per_channel = True, contribution.reshape(-1)
        scale = attrs.get("beta", 1.0)
    else:  # MatMul
        contribution, uniform = value @ weight, False
    out = node.output[0]
    removal = walk.removals.get(out)
    if uniform:
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if bias is None:
            bias = f"{out}/bias"
            node.input.append(bias)
            walk.set(bias, np.zeros_like(per_channel))
            if removal is not None:
                walk.slice(bias, 0, removal.kept)
        walk.set(bias, walk.values[bias] + (per_channel / scale).reshape(walk.values[bias].shape))
        return None
    if removal is not None:
        contribution = np.take(contribution, removal.kept, axis=removal.axis)
    name = f"{out}/removed_channels"
    walk.set(name, contribution.astype(np.float32))
    node.output[0] = f"{out}/kept_channels"
    return helper.make_node("Add", [node.output[0], name], [out], name=name)
