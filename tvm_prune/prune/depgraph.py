"""Which output channels of which layers must be removed together: the channel dependency graph.

The shape follows Torch-Pruning's DepGraph: pruning one channel of a layer forces the same
channel out of everything that reads or mixes it. Here the graph is read from the Relax dataflow
of ``main``. Every output channel of a *producer* (a ``conv2d``/``conv2d_transpose`` with
``groups=1`` or a ``matmul`` whose weight is a parameter of ``main``) is a node. Walking the
bindings in order, each value with a channel axis gets a :class:`ChannelMap` (which node each of
its channels carries). Ops couple nodes:

- per-channel ops (activations, pooling, resize, batch norm, bias adds, no-op ``broadcast_to``,
  depthwise ``conv2d``, reductions over other axes) pass the map on;
- elementwise ops on two mapped values (residual ``add``, ``stack`` + ``sum``, squeeze-excite
  ``multiply``) unite channel ``i`` of every operand;
- ``concat`` on the channel axis concatenates maps; ``permute_dims`` moves the axis;
- ``reshape`` ``(N, C, H, W) -> (N, C*H*W)`` maps each channel to a block of ``H*W`` features;
- a producer consumes its input map (its input-channel slice follows the plan).

Anything else that reads a mapped value *pins* its nodes, with the reason: the op (``split``,
``strided_slice``, other reshapes such as ShuffleNet's channel shuffle, grouped convs, opaque
``call_tir`` kernels, cross-channel ops such as softmax or LRN), a function output, or a mix with
channels that come from no producer (the model input). A group with pinned channels keeps them.
The module only reads ``mod``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from ..errors import TvmPruneError
from ..relax_rewrite import static_shape

# Ops that act on each channel alone; output channel axis = input channel axis.
PER_CHANNEL_UNARY = frozenset(
    {
        "relax.nn.relu",
        "relax.nn.silu",
        "relax.nn.gelu",
        "relax.sigmoid",
        "relax.tanh",
        "relax.exp",
        "relax.clip",
        "relax.nn.max_pool2d",
        "relax.nn.avg_pool2d",
        "relax.nn.adaptive_avg_pool2d",
        "relax.image.resize2d",
        "relax.nn.dropout",
    }
)
# Spatial ops that need the channel axis at 1 (NCHW).
NCHW_ONLY = frozenset(
    {
        "relax.nn.max_pool2d",
        "relax.nn.avg_pool2d",
        "relax.nn.adaptive_avg_pool2d",
        "relax.image.resize2d",
    }
)
ELEMENTWISE_BINARY = frozenset(
    {
        "relax.add",
        "relax.subtract",
        "relax.multiply",
        "relax.divide",
        "relax.maximum",
        "relax.minimum",
        "relax.power",
    }
)
REDUCTIONS = frozenset({"relax.sum", "relax.mean", "relax.max"})
# (input-channel axis, output-channel axis) of a producer's weight as the op reads it.
WEIGHT_AXES = {
    "relax.nn.conv2d": (1, 0),
    "relax.nn.conv2d_transpose": (0, 1),
    "relax.matmul": (0, 1),
}


class ChannelPlanError(TvmPruneError):
    """A channel plan that names unknown layers or splits coupled channels."""


@dataclass(frozen=True)
class ChannelMap:
    """Which node each channel of a value carries.

    ``nodes[i]`` is the node id of channel ``i`` along ``axis`` (None: a channel no producer
    owns, such as the model input's). After a flatten, each channel spans ``block``
    consecutive elements of ``axis``.
    """

    axis: int
    nodes: tuple[int | None, ...]
    block: int = 1

    def indices(self, channels: Sequence[int]) -> np.ndarray:
        """Element indices along ``axis`` of ``channels`` (expanded by ``block``)."""
        channels = np.asarray(channels, dtype=np.int64)
        return (channels[:, None] * self.block + np.arange(self.block)[None, :]).reshape(-1)


@dataclass(frozen=True)
class Producer:
    """A layer whose output channels are nodes.

    ``weight`` is the parameter name; ``out_axis`` its output-channel axis as stored (OIHW: 0,
    IOHW: 1, matmul ``[in, out]``: 1, Gemm's ``[out, in]`` read through ``permute_dims``: 0).
    ``first_node`` is the node id of channel 0; channel ``c`` is ``first_node + c``.
    """

    weight: str
    out_axis: int
    channels: int
    first_node: int


@dataclass(frozen=True)
class ChannelGroup:
    """Producers whose output channels are coupled, and how.

    ``components`` lists, per coupled set of channels, the ``(weight, channel)`` pairs that go
    together. ``pinned`` maps a component's index to why it cannot be removed.
    """

    producers: tuple[str, ...]
    components: tuple[tuple[tuple[str, int], ...], ...]
    pinned: Mapping[int, str]

    @property
    def removable(self) -> list[int]:
        """Indices of the components that may be removed."""
        return [i for i in range(len(self.components)) if i not in self.pinned]


@dataclass
class DepGraph:
    """The channel dependency graph of ``mod["main"]``; see the module docstring."""

    producers: dict[str, Producer] = field(default_factory=dict)
    maps: dict[relax.Var, ChannelMap] = field(default_factory=dict)
    static: set[relax.Var] = field(default_factory=set)
    _value_of: dict[relax.Var, relax.Expr] = field(default_factory=dict)
    _parent: list[int] = field(default_factory=list)
    _reasons: dict[int, str] = field(default_factory=dict)

    # -- union-find over nodes -------------------------------------------------------------
    def find(self, node: int) -> int:
        while self._parent[node] != node:
            self._parent[node] = self._parent[self._parent[node]]
            node = self._parent[node]
        return node

    def _union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[rb] = ra
            if rb in self._reasons:
                self._reasons.setdefault(ra, self._reasons.pop(rb))

    def _pin(self, nodes, reason: str) -> None:
        for node in nodes:
            if node is not None:
                self._reasons.setdefault(self.find(node), reason)

    def is_static(self, expr) -> bool:
        """Whether ``expr`` is computed from weights and constants only (not from inputs)."""
        return not isinstance(expr, relax.Var) or expr in self.static

    # -- results ----------------------------------------------------------------------------
    def node_of(self, weight: str, channel: int) -> int:
        return self.producers[weight].first_node + channel

    def groups(self) -> list[ChannelGroup]:
        """Coupled producers, each with its components, in program order."""
        owner = {}
        for producer in self.producers.values():
            for c in range(producer.channels):
                owner[producer.first_node + c] = (producer.weight, c)
        components: dict[int, list[tuple[str, int]]] = {}
        for node in range(len(self._parent)):
            components.setdefault(self.find(node), []).append(owner[node])
        # Producers sharing a component form one group.
        parent = {name: name for name in self.producers}

        def root(name):
            while parent[name] != name:
                name = parent[name]
            return name

        for members in components.values():
            for weight, _ in members[1:]:
                a, b = root(members[0][0]), root(weight)
                if a != b:
                    parent[b] = a
        by_group: dict[str, list[int]] = {}
        for comp_root, members in components.items():
            by_group.setdefault(root(members[0][0]), []).append(comp_root)
        order = {name: i for i, name in enumerate(self.producers)}
        groups = []
        for roots in by_group.values():
            roots.sort(key=lambda r: min(self.node_of(w, c) for w, c in components[r]))
            comps = tuple(tuple(components[r]) for r in roots)
            names = sorted({w for comp in comps for w, _ in comp}, key=order.__getitem__)
            pinned = {i: self._reasons[r] for i, r in enumerate(roots) if r in self._reasons}
            groups.append(ChannelGroup(tuple(names), comps, pinned))
        groups.sort(key=lambda g: order[g.producers[0]])
        return groups

    def removed_roots(self, plan: Mapping[str, Sequence[int]]) -> set[int]:
        """The components ``plan`` removes; :class:`ChannelPlanError` unless it is consistent.

        ``plan`` maps a producer's weight name to the output channels it removes. Coupled
        channels must be listed together, pinned ones not at all, and every producer keeps one
        channel at least.
        """
        listed = set()
        for weight, channels in plan.items():
            producer = self.producers.get(weight)
            if producer is None:
                raise ChannelPlanError(f"channel plan: {weight} is not a prunable layer")
            channels = {int(c) for c in channels}
            if channels and (min(channels) < 0 or max(channels) >= producer.channels):
                raise ChannelPlanError(
                    f"channel plan: {weight} has {producer.channels} output channels, "
                    f"plan removes {sorted(channels)[-1]}"
                )
            if len(channels) >= producer.channels:
                raise ChannelPlanError(f"channel plan: removes every channel of {weight}")
            listed.update(self.node_of(weight, c) for c in channels)
        roots = {self.find(node) for node in listed}
        for root in roots:
            reason = self._reasons.get(root)
            if reason is not None:
                raise ChannelPlanError(f"channel plan: a removed channel is pinned ({reason})")
        for node in range(len(self._parent)):
            if self.find(node) in roots and node not in listed:
                weight, channel = self._owner(node)
                raise ChannelPlanError(
                    f"channel plan: channel {channel} of {weight} is coupled to removed "
                    "channels but not removed"
                )
        return roots

    def removed_channels(self, cmap: ChannelMap, roots: set[int]) -> list[int]:
        return [
            i for i, node in enumerate(cmap.nodes) if node is not None and self.find(node) in roots
        ]

    def _owner(self, node: int) -> tuple[str, int]:
        for producer in self.producers.values():
            if producer.first_node <= node < producer.first_node + producer.channels:
                return producer.weight, node - producer.first_node
        raise KeyError(node)

    def _new_nodes(self, count: int) -> int:
        first = len(self._parent)
        self._parent.extend(range(first, first + count))
        return first


def mask_params(
    graph: DepGraph, params: Mapping[str, np.ndarray], plan: Mapping[str, Sequence[int]]
) -> dict[str, np.ndarray]:
    """``params`` with the removed output channels of each producer's weight set to zero.

    With these weights the dense model computes exactly what the channel-pruned one must: the
    removed channels' producer outputs are zero, everything after them (bias, batch-norm
    shift, activation) still runs.
    """
    result = dict(params)
    for weight, channels in plan.items():
        producer = graph.producers[weight]
        value = np.array(params[weight], copy=True)
        index = [slice(None)] * value.ndim
        index[producer.out_axis] = np.asarray(list(channels), dtype=np.int64)
        value[tuple(index)] = 0
        result[weight] = value
    return result


def random_plan(graph: DepGraph, fraction: float, *, seed: int = 0) -> dict[str, list[int]]:
    """Remove ``fraction`` of the removable components of every group, chosen at random.

    No producer loses all its channels (such a component is skipped).
    """
    rng = np.random.default_rng(seed)
    chosen = [
        group.components[int(index)]
        for group in graph.groups()
        for index in rng.permutation(group.removable)[: int(len(group.removable) * fraction)]
    ]
    return plan_from_ranked(graph, chosen)


def plan_from_ranked(graph: DepGraph, components) -> dict[str, list[int]]:
    """The plan removing ``components`` in order, skipping one that would empty a producer."""
    plan: dict[str, list[int]] = {}
    for members in components:
        if any(len(plan.get(w, ())) + 1 >= graph.producers[w].channels for w, _ in members):
            continue
        for weight, channel in members:
            plan.setdefault(weight, []).append(channel)
    return {weight: sorted(channels) for weight, channels in plan.items()}


def build_depgraph(mod: tvm.IRModule, params: Mapping[str, np.ndarray]) -> DepGraph:
    """The channel dependency graph of ``mod["main"]`` (weights: the parameters in ``params``)."""
    main = mod["main"]
    graph = DepGraph()
    param_vars = {var: var.name for var in main.params if var.name in params}
    graph.static.update(param_vars)
    for block in main.body.blocks:
        for binding in block.bindings:
            _visit(graph, binding, param_vars)
    body = main.body.body
    outputs = body.fields if isinstance(body, relax.Tuple) else [body]
    for out in outputs:
        if out in graph.maps:
            graph._pin(graph.maps[out].nodes, "model output")
    return graph


def op_name(expr) -> str | None:
    if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
        return expr.op.name
    return None


def producer_weight(call, value_of, param_vars, *, grouped: bool = False) -> tuple[str, int] | None:
    """The parameter name and its stored output axis of a conv, transposed conv or matmul whose
    weight is a parameter (a matmul's possibly through the transpose ONNX ``Gemm`` imports as),
    else None. Grouped convs only if ``grouped`` (weight pruning takes them; channel removal
    couples their channels through the depthwise rule instead)."""
    op = op_name(call)
    if op not in WEIGHT_AXES:
        return None
    if op != "relax.matmul":
        attrs = call.attrs
        layout = "OIHW" if op == "relax.nn.conv2d" else "IOHW"
        if (int(attrs.groups) != 1 and not grouped) or str(attrs.kernel_layout) != layout:
            return None
        if str(attrs.data_layout) != "NCHW":
            return None
    weight = call.args[1]
    out_axis = WEIGHT_AXES[op][1]
    inner = value_of.get(weight)
    if op == "relax.matmul" and op_name(inner) == "relax.permute_dims":
        if list(inner.attrs.axes) == [1, 0]:
            weight, out_axis = inner.args[0], 0
    name = param_vars.get(weight)
    if name is None:
        return None
    return name, out_axis


def is_depthwise(call) -> bool:
    if op_name(call) != "relax.nn.conv2d":
        return False
    attrs = call.attrs
    data, out = static_shape(call.args[0]), static_shape(call)
    return (
        data is not None
        and out is not None
        and str(attrs.data_layout) == "NCHW"
        and str(attrs.kernel_layout) == "OIHW"
        and int(attrs.groups) == data[1] == out[1] > 1
    )


def per_channel_axis(arg, out_rank: int, cmap: ChannelMap) -> int | None:
    """Axis of a non-mapped operand that indexes the mapped channels (None: broadcast)."""
    shape = static_shape(arg)
    axis = cmap.axis - (out_rank - len(shape))
    if axis < 0 or shape[axis] == 1:
        return None
    return axis


def _visit(graph: DepGraph, binding, param_vars) -> None:
    var, value = binding.var, binding.value
    maps, static = graph.maps, graph.static
    graph._value_of[var] = value
    args = flat_args(value)
    mapped = [a for a in args if a in maps]
    if all(a in static for a in args):
        static.add(var)
        return
    op = op_name(value)
    if op in WEIGHT_AXES:
        _visit_layer(graph, var, value, param_vars)
        return
    if not mapped:
        return
    result = _propagate(graph, var, value, op, mapped)
    if isinstance(result, str):
        for arg in mapped:
            graph._pin(maps[arg].nodes, result)
    elif result is not None:
        maps[var] = result


def flat_args(value) -> list[relax.Var]:
    """The variables ``value`` reads (tuple arguments flattened)."""
    if isinstance(value, relax.TupleGetItem):
        items = [value.tuple_value]
    elif isinstance(value, relax.Call):
        items = list(value.args)
    elif isinstance(value, relax.Tuple):
        items = list(value.fields)
    else:
        items = []
    result = []
    for item in items:
        if isinstance(item, relax.Tuple):
            result.extend(flat_args(item))
        elif isinstance(item, relax.Var):
            result.append(item)
    return result


def _visit_layer(graph: DepGraph, var, call, param_vars) -> None:
    maps = graph.maps
    data = call.args[0]
    value_of = graph._value_of
    found = producer_weight(call, value_of, param_vars)
    if is_depthwise(call) and data in maps and call.args[1] in graph.static:
        if maps[data].axis == 1 and maps[data].block == 1:
            maps[var] = maps[data]
            return
    if data in maps:
        cmap = maps[data]
        in_axis = 1 if op_name(call) != "relax.matmul" else len(static_shape(data)) - 1
        ok = call.args[1] in graph.static and (found is not None or op_name(call) == "relax.matmul")
        if not ok or cmap.axis != in_axis or (cmap.block != 1 and op_name(call) != "relax.matmul"):
            graph._pin(cmap.nodes, f"read by {op_name(call)} that cannot be sliced")
    if found is not None:
        weight, out_axis = found
        out_shape = static_shape(var)
        axis = 1 if op_name(call) != "relax.matmul" else len(out_shape) - 1
        channels = out_shape[axis]
        first = graph._new_nodes(channels)
        graph.producers[weight] = Producer(weight, out_axis, channels, first)
        maps[var] = ChannelMap(axis, tuple(range(first, first + channels)))


def _propagate(graph: DepGraph, var, value, op, mapped):
    """The output map of ``value``, a string saying why its inputs are pinned, or None."""
    maps = graph.maps
    if isinstance(value, relax.TupleGetItem):
        source = graph._value_of.get(value.tuple_value)
        name = op_name(source)
        if name == "relax.nn.batch_norm":
            cmap = maps[value.tuple_value]
            return cmap if value.index == 0 else ChannelMap(0, cmap.nodes)
        if name == "relax.nn.dropout":
            return maps[value.tuple_value]
        return "tuple item"
    if not isinstance(value, relax.Call) or op is None:
        return f"read by {type(value).__name__}"
    first = maps[mapped[0]]
    out_shape = static_shape(var) if isinstance(var.ty, relax.TensorType) else None
    if op in PER_CHANNEL_UNARY:
        if op in NCHW_ONLY and (first.axis != 1 or str(value.attrs.layout) != "NCHW"):
            return f"{op} not on NCHW channels"
        if first.block != 1 and op not in ("relax.nn.relu", "relax.nn.dropout"):
            return f"{op} on flattened features"
        return first
    if op == "relax.nn.batch_norm":
        if not value.args[0].same_as(mapped[0]) or len(mapped) != 1 or first.block != 1:
            return "batch_norm with mapped statistics"
        if int(value.attrs.axis) != first.axis:
            return "batch_norm over another axis"
        if not all(a in graph.static for a in value.args[1:]):
            return "batch_norm with computed statistics"
        return first
    if op in ELEMENTWISE_BINARY:
        rank = len(out_shape)
        result = None
        for arg in value.args:
            if arg in maps:
                cmap = maps[arg]
                aligned = ChannelMap(
                    cmap.axis + rank - len(static_shape(arg)), cmap.nodes, cmap.block
                )
                if result is None:
                    result = aligned
                elif (result.axis, len(result.nodes), result.block) != (
                    aligned.axis,
                    len(aligned.nodes),
                    aligned.block,
                ):
                    return f"{op} of differently shaped channel maps"
                else:
                    result = _couple(graph, result, aligned, op)
                    if isinstance(result, str):
                        return result
        for arg in value.args:
            if arg not in maps:
                if per_channel_axis(arg, rank, result) is not None and not graph.is_static(arg):
                    return f"{op} with a per-channel operand computed from the input"
        return result
    if op == "relax.concat":
        axis = int(value.attrs.axis) % len(out_shape)
        nodes: list[int | None] = []
        for arg in value.args[0].fields:
            cmap = maps.get(arg)
            if cmap is None:
                nodes.extend([None] * static_shape(arg)[axis])
            elif cmap.axis != axis or cmap.block != 1:
                return "concat along another axis"
            else:
                nodes.extend(cmap.nodes)
        return ChannelMap(axis, tuple(nodes))
    if op == "relax.stack":
        axis = int(value.attrs.axis)
        fields = value.args[0].fields
        if not all(f in maps for f in fields):
            return "stack with unmapped operands"
        result = maps[fields[0]]
        for field_ in fields[1:]:
            result = _couple(graph, result, maps[field_], op)
            if isinstance(result, str):
                return result
        if axis > result.axis:
            return "stack after the channel axis"
        return ChannelMap(result.axis + 1, result.nodes, result.block)
    if op in REDUCTIONS:
        rank = len(static_shape(mapped[0]))
        axes = [int(a) % rank for a in value.attrs.axis] if value.attrs.axis is not None else []
        if not axes or first.axis in axes or first.block != 1:
            return f"{op} over the channel axis"
        shift = 0 if value.attrs.keepdims else sum(a < first.axis for a in axes)
        return ChannelMap(first.axis - shift, first.nodes)
    if op == "relax.broadcast_to" and static_shape(mapped[0]) == out_shape:
        return first
    if op == "relax.permute_dims" and first.block == 1:
        axes = (
            list(range(len(out_shape)))[::-1]
            if value.attrs.axes is None
            else [int(a) for a in value.attrs.axes]
        )
        return ChannelMap(axes.index(first.axis), first.nodes)
    if op == "relax.reshape":
        shape = static_shape(mapped[0])
        if (
            len(shape) == 4
            and first.axis == 1
            and first.block == 1
            and out_shape == [shape[0], int(np.prod(shape[1:]))]
        ):
            return ChannelMap(1, first.nodes, shape[2] * shape[3])
        return "reshape that mixes channels (e.g. a channel shuffle)"
    return f"read by {op}"


def _couple(graph: DepGraph, a: ChannelMap, b: ChannelMap, op: str):
    for x, y in zip(a.nodes, b.nodes, strict=True):
        if (x is None) != (y is None):
            graph._pin([x, y], f"{op} mixes with channels no layer produces")
        elif x is not None:
            graph._union(x, y)
    nodes = tuple(x if x is not None else y for x, y in zip(a.nodes, b.nodes, strict=True))
    return ChannelMap(a.axis, nodes, a.block)
