"""``RemoveChannels``: take whole output channels out of layers, and everything coupled to them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tvm
from tvm import relax

from ..prune.depgraph import (
    ELEMENTWISE_BINARY,
    WEIGHT_AXES,
    ChannelMap,
    DepGraph,
    build_depgraph,
    flat_args,
    is_depthwise,
    op_name,
    per_channel_axis,
)
from ..relax_rewrite import conv2d_like, static_shape

# Ops that turn an all-zero input into an all-zero output (the removed channels' values are
# then not worth carrying). Multiply is zero if any mapped factor is.
_ZERO_KEEPING = frozenset(
    {
        "relax.nn.relu",
        "relax.nn.silu",
        "relax.nn.gelu",
        "relax.tanh",
        "relax.nn.max_pool2d",
        "relax.nn.avg_pool2d",
        "relax.nn.adaptive_avg_pool2d",
        "relax.image.resize2d",
        "relax.sum",
        "relax.mean",
        "relax.max",
        "relax.permute_dims",
        "relax.nn.conv2d",
    }
)
_ZERO = "zero"  # marks a removed-channel value known to be all zeros


@tvm.transform.module_pass(opt_level=0, name="RemoveChannels")
class RemoveChannels:
    """Remove the output channels a plan names, and every channel coupled to them.

    **Rewrites** ``main``: each producer (see :mod:`tvm_prune.prune.depgraph`) loses the
    removed output channels; per-channel ops, batch norms, bias adds, residual adds, concats
    and flattens after it shrink with it; each consumer layer reads only the kept input
    channels. Weights and per-channel constants are sliced with ``take`` on the dense
    parameters, which ``FoldConstant`` folds into smaller constants once the weights are bound
    (``Model.bound_module``, as the build does).

    **Exactness**: the result equals the dense model with the removed channels' producer
    outputs forced to zero (:func:`tvm_prune.prune.depgraph.mask_params`). A removed channel
    is zero at the producer but not after it (bias, batch-norm shift, ``sigmoid`` ...), so
    its value still reaches the consumer layers. That value does not depend on the input: it
    is computed here from the weights alone (the same ops on the removed channels, starting
    from zeros) and its contribution through each consumer's weights is added to the
    consumer's output - a bias per output pixel, since padding makes borders differ. After
    binding, ``FoldConstant`` turns it into one constant per consumer; when it is provably zero
    (no bias or shift on the way) nothing is added.

    **Refuses** (:class:`tvm_prune.prune.depgraph.ChannelPlanError`) a plan that names
    non-producers, removes only part of a coupled set, removes pinned channels or all of a
    layer's channels. **Leaves alone** other functions and every value without removed
    channels.

    Parameters
    ----------
    plan : Mapping[str, Sequence[int]]
        Output channels to remove, keyed by the producer's weight parameter name.
    params : Mapping[str, np.ndarray]
        The model's weights (``Model.params``): tells which parameters of ``main`` are weights.
    """

    def __init__(self, plan: Mapping[str, Sequence[int]], params: Mapping[str, np.ndarray]):
        self.plan = {name: sorted(int(c) for c in chs) for name, chs in plan.items() if len(chs)}
        self.params = params

    def transform_module(self, mod: tvm.IRModule, ctx) -> tvm.IRModule:
        if not self.plan:
            return mod
        graph = build_depgraph(mod, self.params)
        roots = graph.removed_roots(self.plan)
        main = mod["main"]
        rewriter = _Rewriter(graph, roots)
        blocks = []
        for block in main.body.blocks:
            rewriter.bindings = []
            for binding in block.bindings:
                rewriter.visit(binding, isinstance(block, relax.DataflowBlock))
            block_type = relax.DataflowBlock if isinstance(block, relax.DataflowBlock) else None
            blocks.append((block_type or relax.BindingBlock)(rewriter.bindings))
        body = relax.SeqExpr(blocks, rewriter.substitute(main.body.body))
        func = relax.Function(main.params, body, main.ret_ty, main.is_pure, main.attrs)
        result = tvm.IRModule(dict(mod.functions_items()), attrs=mod.attrs)
        result[mod.get_global_var("main")] = func
        return relax.transform.Normalize()(result)


class _Rewriter:
    """Re-emits the bindings of ``main`` with removed channels taken out.

    ``new[var]`` is the rewritten value (kept channels), ``ghost[var]`` the removed channels'
    value in the masked dense model (an expression, ``_ZERO``, or absent when none removed).
    """

    def __init__(self, graph: DepGraph, roots: set[int]):
        self.graph, self.roots = graph, roots
        self.new: dict[relax.Var, relax.Expr] = {}
        self.ghost: dict[relax.Var, object] = {}
        # The first item of a tuple-valued ghost, spelled without the tuple (see below).
        self.ghost_first_item: dict[relax.Var, relax.Var] = {}
        self.bindings: list[relax.Binding] = []
        self._dataflow = True
        self._block = relax.BlockBuilder()

    # -- helpers --------------------------------------------------------------------------
    def emit(self, expr, name: str) -> relax.Var:
        expr = self._block.normalize(expr)
        var = (relax.DataflowVar if self._dataflow else relax.Var)(name, expr.ty)
        self.bindings.append(relax.VarBinding(var, expr))
        return var

    def substitute(self, expr):
        if isinstance(expr, relax.Var):
            return self.new.get(expr, expr)
        if isinstance(expr, relax.Tuple):
            return relax.Tuple([self.substitute(f) for f in expr.fields])
        if isinstance(expr, relax.TupleGetItem):
            return relax.TupleGetItem(self.substitute(expr.tuple_value), expr.index)
        if isinstance(expr, relax.Call):
            args = [self.substitute(a) for a in expr.args]
            return relax.Call(expr.op, args, expr.attrs, expr.ty_args)
        return expr

    def split(self, var) -> tuple[list[int], list[int]]:
        """Kept and removed channel indices of a mapped ``var``."""
        cmap = self.graph.maps[var]
        removed = self.graph.removed_channels(cmap, self.roots)
        removed_set = set(removed)
        return [i for i in range(len(cmap.nodes)) if i not in removed_set], removed

    def take(self, expr, cmap: ChannelMap, channels, axis: int):
        indices = relax.const(cmap.indices(channels).astype("int64"))
        name = expr.name if isinstance(expr, relax.Var) else "value"
        return self.emit(relax.op.take(expr, indices, axis=axis, mode="clip"), f"{name}_channels")

    def ghost_value(self, var):
        """The removed channels of ``var`` as an expression (zeros materialised)."""
        value = self.ghost[var]
        if value is not _ZERO:
            return value
        cmap = self.graph.maps[var]
        shape = static_shape(var)
        shape[cmap.axis] = len(self.split(var)[1]) * cmap.block
        zeros = relax.op.zeros(relax.ShapeExpr(shape), str(var.ty.dtype))
        return self.emit(zeros, f"{var.name}_removed")

    # -- bindings -------------------------------------------------------------------------
    def visit(self, binding, dataflow: bool) -> None:
        self._dataflow = dataflow and isinstance(binding.var, relax.DataflowVar)
        var, value = binding.var, binding.value
        op = op_name(value)
        reads_removed = any(a in self.ghost for a in flat_args(value))
        if not reads_removed and not (var in self.graph.maps and self.split(var)[1]):
            self.new[var] = self.emit(self.substitute(value), var.name)
        elif op in WEIGHT_AXES and not is_depthwise(value):
            self.visit_layer(var, value)
        elif isinstance(value, relax.TupleGetItem):
            source = value.tuple_value
            self.new[var] = self.emit(relax.TupleGetItem(self.new[source], value.index), var.name)
            first = self.ghost_first_item.get(source)
            if value.index == 0 and first is not None:
                self.ghost[var] = first
            else:
                self.set_ghost(var, relax.TupleGetItem(self.ghost[source], value.index))
        elif op == "relax.broadcast_to":  # same shape: nothing to do
            self.new[var] = self.new[value.args[0]]
            self.ghost[var] = self.ghost[value.args[0]]
        elif op == "relax.reshape":  # a flatten
            self.visit_flatten(var, value)
        elif op in ("relax.concat", "relax.stack"):
            self.visit_tuple_op(var, value)
        else:
            self.visit_per_channel(var, value, op)

    def set_ghost(self, var, expr) -> None:
        self.ghost[var] = expr if expr is _ZERO else self.emit(expr, f"{var.name}_removed")

    def visit_layer(self, var, call) -> None:
        graph = self.graph
        in_axis, out_axis = WEIGHT_AXES[op_name(call)]
        data, weight = call.args
        weight = self.new.get(weight, weight)
        if var in graph.maps:
            kept_out, removed_out = self.split(var)
            if removed_out:
                weight = self.take(weight, graph.maps[var], kept_out, out_axis)
                self.ghost[var] = _ZERO  # the producer's output is what masking zeroes
        kept_weight, from_removed = weight, None
        if data in self.ghost:
            cmap = graph.maps[data]
            kept_in, removed_in = self.split(data)
            kept_weight = self.take(weight, cmap, kept_in, in_axis)
            if self.ghost[data] is not _ZERO:
                removed_weight = self.take(weight, cmap, removed_in, in_axis)
                from_removed = self.emit(
                    _relink(call, [self.ghost[data], removed_weight]), f"{var.name}_from_removed"
                )
        out = _relink(call, [self.new.get(data, data), kept_weight])
        if from_removed is not None:
            out = relax.op.add(self.emit(out, f"{var.name}_from_kept"), from_removed)
        self.new[var] = self.emit(out, var.name)

    def visit_flatten(self, var, value) -> None:
        data = value.args[0]
        cmap = self.graph.maps[var]
        kept, removed = self.split(var)
        batch = static_shape(var)[0]
        self.new[var] = self.emit(
            relax.op.reshape(self.new[data], (batch, len(kept) * cmap.block)), var.name
        )
        ghost = self.ghost[data]
        self.set_ghost(
            var,
            _ZERO
            if ghost is _ZERO
            else relax.op.reshape(ghost, (batch, len(removed) * cmap.block)),
        )

    def visit_tuple_op(self, var, value) -> None:
        """``concat`` on the channel axis or ``stack`` of coupled values."""
        fields = value.args[0].fields
        kept = [self.new.get(f, f) for f in fields]
        self.new[var] = self.emit(_relink(value, [relax.Tuple(kept)]), var.name)
        with_removed = [f for f in fields if f in self.ghost]
        if all(self.ghost[f] is _ZERO for f in with_removed):
            self.ghost[var] = _ZERO
            return
        ghosts = [self.ghost_value(f) for f in with_removed]
        self.set_ghost(var, _relink(value, [relax.Tuple(ghosts)]))

    def visit_per_channel(self, var, value, op) -> None:
        graph = self.graph
        cmap = graph.maps[var]
        kept, removed = self.split(var)
        rank = len(static_shape(var)) if isinstance(var.ty, relax.TensorType) else None
        kept_args, ghost_args, mapped_ghosts = [], [], []
        for i, arg in enumerate(value.args):
            if arg in graph.maps:
                kept_args.append(self.new[arg])
                ghost_args.append(arg)  # materialised below only if needed
                mapped_ghosts.append(self.ghost[arg])
                continue
            base = self.new.get(arg, arg)
            axis = self.static_axis(op, i, arg, rank, cmap)
            kept_args.append(base if axis is None else self.take(base, cmap, kept, axis))
            ghost_args.append(base if axis is None else self.take(base, cmap, removed, axis))
        self.new[var] = self.emit(_relink(value, kept_args, groups=len(kept)), var.name)
        if op == "relax.multiply":
            zero = any(g is _ZERO for g in mapped_ghosts)
        elif op == "relax.divide":
            zero = self.ghost.get(value.args[0]) is _ZERO
        elif op in ("relax.add", "relax.subtract", "relax.maximum", "relax.minimum"):
            zero = len(mapped_ghosts) == len(value.args) and all(g is _ZERO for g in mapped_ghosts)
        else:
            zero = op in _ZERO_KEEPING and all(g is _ZERO for g in mapped_ghosts)
        if zero:
            self.ghost[var] = _ZERO
            return
        args = [
            self.ghost_value(arg) if arg in graph.maps else ghost
            for arg, ghost in zip(value.args, ghost_args, strict=True)
        ]
        self.set_ghost(var, _relink(value, args, groups=len(removed)))
        if op == "relax.nn.batch_norm":
            self.ghost_first_item[var] = self.batch_norm_output(value.attrs, args, len(removed))
        elif op == "relax.nn.dropout":  # inference: the identity
            self.ghost_first_item[var] = args[0]

    def batch_norm_output(self, attrs, args, channels: int):
        """The normalised output of an inference batch norm, written without a tuple.

        ``FoldConstant`` does not fold an item of a constant tuple, so the removed channels'
        batch norm is spelled out for their constant to fold.
        """
        data, gamma, beta, mean, var = args
        shape = [1] * len(static_shape(data))
        shape[int(attrs.axis)] = channels

        def per_channel(expr):
            return self.emit(relax.op.reshape(expr, shape), "batch_norm_removed_param")

        name = "batch_norm_removed"
        eps = relax.const(float(attrs.epsilon), str(data.ty.dtype))
        scale = self.emit(
            relax.op.rsqrt(self.emit(relax.op.add(per_channel(var), eps), name)), name
        )
        if attrs.scale:
            scale = self.emit(relax.op.multiply(scale, per_channel(gamma)), name)
        centered = self.emit(relax.op.subtract(data, per_channel(mean)), name)
        out = relax.op.multiply(centered, scale)
        if attrs.center:
            out = relax.op.add(self.emit(out, name), per_channel(beta))
        return self.emit(out, "batch_norm_removed_output")

    def static_axis(self, op, index, arg, rank, cmap) -> int | None:
        """Axis of a non-mapped argument that holds one value per channel, else None."""
        if op == "relax.nn.batch_norm":
            return 0 if index > 0 else None
        if op == "relax.nn.conv2d":  # depthwise: the weight, one filter per channel
            return 0 if index == 1 else None
        if op in ELEMENTWISE_BINARY and isinstance(arg.ty, relax.TensorType):
            return per_channel_axis(arg, rank, cmap)
        return None


def _relink(call, args, *, groups: int | None = None):
    """``call`` with new arguments (and, for a depthwise conv, ``groups``)."""
    op = op_name(call)
    if op == "relax.nn.conv2d" and is_depthwise(call) and groups is not None:
        return conv2d_like(call, args[0], args[1], groups)
    return relax.Call(call.op, args, call.attrs, call.ty_args)
