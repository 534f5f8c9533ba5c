"""``DenseToGroupedConv``: dense convs whose kernel is block-diagonal become grouped convs.

Rewrites
    ``R.nn.conv2d(x, W)`` (``groups=1``) whose constant kernel ``W: (O, I, kh, kw)`` is zero
    outside ``g`` equal diagonal blocks once its output and input channels are reordered
    (:func:`tvm_prune.transform.block_diagonal.find_blocks`, the largest such ``g``) into
    ``take(conv2d(take(x, in_order), W_g, groups=g), argsort(out_order))``: ``g`` times fewer
    MACs and weights. The two channel permutations are folded away where the dataflow allows:

    - the input order into the producer: when ``x`` is a dense conv with a constant kernel
      followed only by per-channel ops (bias, batch norm, activations, pooling), each used once,
      the producer's output channels and the per-channel constants are reordered instead;
    - the output order into the consumer: a later conv whose input is such a reordered value
      followed only by per-channel ops, each used once, reads its input channels reordered
      (a dense consumer's kernel columns are permuted; a grouped one merges both orders into
      one ``take``).

    A permutation that cannot be folded stays as an explicit ``take`` on axis 1, the cheapest
    channel permutation (one gather), and is reported as ``explicit``.
Only when
    NCHW / OIHW layouts, static shapes, ``groups=1``, a constant kernel (weights bound) with
    ``g >= 2`` blocks. A kernel that is not block-diagonal is never rewritten (its input
    permutation may still be folded into it, which changes no value).
Leaves alone
    grouped and depthwise convs, dynamic shapes, kernels computed at run time: every conv seen
    is in ``report`` with the reason.
Run after
    ``BindParams`` + ``FoldConstant`` (the kernels must be constants), before ``LegalizeOps``.

Report entry per conv: ``layer`` (``conv2d_<k>``, program order), ``shape`` (kernel),
``groups``, ``macs_before`` / ``macs_after``, ``input_permutation`` and
``output_permutation`` (``none``, ``folded``, ``merged`` into the next layer's, ``explicit``).
The result equals the dense conv up to float rounding: each output sums the same nonzero
products, only the zero ones are skipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tvm
from tvm import relax
from tvm.relax import Call, Expr, PyExprMutator

from ..prune.depgraph import ELEMENTWISE_BINARY, NCHW_ONLY, PER_CHANNEL_UNARY, flat_args, op_name
from ..relax_rewrite import RewriteRefused, conv2d_like, rewrite_calls, static_shape, use_counts
from .block_diagonal import find_blocks

CONV_OP = "relax.nn.conv2d"
# Per-channel ops a permutation moves through: one input channel -> the same output channel.
_UNARY = PER_CHANNEL_UNARY - {"relax.nn.dropout"}


@tvm.transform.module_pass(opt_level=0, name="DenseToGroupedConv")
class DenseToGroupedConv:
    """See the module docstring. After a run, ``report`` lists every conv seen."""

    def __init__(self) -> None:
        self.report: list[dict[str, Any]] = []

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        self.report = []
        rewrite = _DenseToGrouped(use_counts(mod))
        mod = rewrite_calls(mod, CONV_OP, rewrite, self.report, rewrite.describe)
        if rewrite.changed:
            # The folded producers' old chains are left unused.
            mod = relax.transform.DeadCodeElimination()(mod)
        return mod


class _DenseToGrouped:
    """The call rewrite; remembers which reordered outputs came from which report entry."""

    def __init__(self, uses: dict[relax.Var, int]):
        self.uses = uses
        self.layers = 0
        self.changed = False
        # Grouped conv output var -> its report entry (to mark the output order folded).
        self.owner: dict[relax.Var, dict[str, Any]] = {}

    def describe(self, call: Call) -> dict[str, Any]:
        self.layers += 1
        return {"layer": f"conv2d_{self.layers - 1}"}

    def __call__(self, mutator: PyExprMutator, call: Call, entry: dict[str, Any]) -> Expr:
        data, kernel = call.args
        attrs = call.attrs
        in_shape, out_shape = static_shape(data), static_shape(call)
        if in_shape is None or out_shape is None:
            raise RewriteRefused("dynamic shape")
        if (str(attrs.data_layout), str(attrs.kernel_layout)) != ("NCHW", "OIHW"):
            raise RewriteRefused(f"layouts {attrs.data_layout}/{attrs.kernel_layout}")
        if int(attrs.groups) != 1:
            raise RewriteRefused(f"already grouped (groups {int(attrs.groups)})")
        if not isinstance(kernel, tvm.ir.GenericConst):
            raise RewriteRefused("kernel is not a constant (bind the weights first)")
        weights = kernel.value.numpy()
        entry["shape"] = list(weights.shape)
        macs = int(np.prod(out_shape)) * int(np.prod(weights.shape[1:]))
        structure = find_blocks(weights)
        source = self._reordered_source(mutator, data)
        if structure is None:
            if source is None:
                raise RewriteRefused("not block-diagonal")
            # The conv stays dense; it reads the unreordered value with permuted columns.
            new_data, order = source
            self._mark_folded(new_data, "folded")
            weights = weights[:, np.argsort(order)]
            entry.update(rewritten=False, reason="not block-diagonal", input_permutation="folded")
            self.changed = True
            return conv2d_like(call, self._chain_source(mutator, data, new_data, order), weights, 1)
        groups = structure.groups
        new_data, input_permutation = self._permuted_input(mutator, data, structure.in_order)
        grouped = conv2d_like(call, new_data, structure.grouped_kernel(weights), groups)
        self.changed = True
        entry.update(
            rewritten=True,
            groups=groups,
            macs_before=macs,
            macs_after=macs // groups,
            input_permutation=input_permutation,
            output_permutation="none",
        )
        if not structure.permutes_outputs:
            return grouped
        entry["output_permutation"] = "explicit"
        grouped = mutator.builder_.emit(grouped, "grouped_conv")
        self.owner[grouped] = entry
        restore = relax.const(np.argsort(structure.out_order).astype("int64"))
        return relax.op.take(grouped, restore, axis=1, mode="clip")

    # -- input permutations -----------------------------------------------------------------
    def _permuted_input(self, mutator, data, order: np.ndarray) -> tuple[Expr, str]:
        """``take(data, order, axis=1)`` spelled with the fewest gathers, and how."""
        if np.array_equal(order, np.arange(len(order))):
            return data, "none"
        source = self._reordered_source(mutator, data)
        if source is not None:
            # data = take(value, index) after per-channel ops: one merged gather, or none.
            value, index = source
            merged = index[order]
            new_data = self._chain_source(mutator, data, value, index)
            if np.array_equal(merged, np.arange(len(merged))):
                self._mark_folded(value, "folded")
                return new_data, "folded"
            self._mark_folded(value, "merged")
            return self._take(mutator, new_data, merged), "explicit"
        producer = self._producer_chain(mutator, data)
        if producer is None:
            return self._take(mutator, data, order), "explicit"
        conv, chain = producer
        root = mutator.builder_.emit(
            conv2d_like(
                conv, conv.args[0], conv.args[1].value.numpy()[order], int(conv.attrs.groups)
            )
        )
        return self._emit_chain(mutator, chain, root, order), "folded"

    def _reordered_source(self, mutator, data) -> tuple[relax.Var, np.ndarray] | None:
        """``(value, index)`` if ``data`` is ``take(value, index, axis=1)`` (a permutation)
        followed only by per-channel ops, each used once."""
        found = self._chain(mutator, data)
        if found is None:
            return None
        root, _ = found
        if op_name(root) != "relax.take" or root.attrs.axis is None or int(root.attrs.axis) != 1:
            return None
        value, index = root.args
        if not isinstance(index, tvm.ir.GenericConst) or not isinstance(value, relax.Var):
            return None
        index = index.value.numpy()
        channels = static_shape(value)
        if channels is None or len(channels) != 4 or index.ndim != 1:
            return None
        if not np.array_equal(np.sort(index), np.arange(channels[1])):
            return None
        return value, index.astype(np.int64)

    def _chain_source(self, mutator, data, value, index: np.ndarray) -> Expr:
        """The per-channel ops between ``take(value, index)`` and ``data`` re-emitted on
        ``value``: equals ``take(data, argsort(index))``."""
        _, chain = self._chain(mutator, data)
        return self._emit_chain(mutator, chain, value, np.argsort(index))

    def _producer_chain(self, mutator, data):
        """``(conv, chain)`` if ``data`` is a dense constant-kernel NCHW conv followed only by
        per-channel ops, each used once."""
        found = self._chain(mutator, data)
        if found is None:
            return None
        root, chain = found
        if op_name(root) != CONV_OP or not isinstance(root.args[1], tvm.ir.GenericConst):
            return None
        attrs = root.attrs
        if (str(attrs.data_layout), str(attrs.kernel_layout), str(attrs.out_layout)) != (
            "NCHW",
            "OIHW",
            "NCHW",
        ):
            return None
        if int(attrs.groups) != 1:
            return None
        return root, chain

    def _chain(self, mutator, data):
        """``(root value, chain)``: ``chain`` lists the per-channel bindings from the root's
        output to ``data`` as ``(var, value)``; every var on the way (the root's too) is used
        once. None if ``data`` is not such a chain."""
        chain = []
        var = data
        while True:
            if not isinstance(var, relax.Var) or self.uses.get(var) != 1:
                return None
            value = mutator.lookup_binding(var)
            if value is None:
                return None
            previous = _per_channel_input(mutator, value)
            if previous is None:
                chain.reverse()
                return value, chain
            chain.append((var, value))
            var = previous

    def _emit_chain(self, mutator, chain, start: Expr, order: np.ndarray) -> Expr:
        """``chain`` re-emitted from ``start``, per-channel constants reordered by ``order``."""
        current = start
        for _, value in chain:
            current = mutator.builder_.emit(_reorder_op(value, current, order))
        return current

    def _take(self, mutator, data, order: np.ndarray) -> Expr:
        index = relax.const(np.asarray(order, dtype="int64"))
        return mutator.builder_.emit(
            relax.op.take(data, index, axis=1, mode="clip"), "channel_permutation"
        )

    def _mark_folded(self, grouped_output, how: str) -> None:
        entry = self.owner.get(grouped_output)
        if entry is not None:
            entry["output_permutation"] = how


def _per_channel_input(mutator, value) -> relax.Var | None:
    """The one NCHW channel-carrying input of a per-channel op ``value``, else None."""
    if isinstance(value, relax.TupleGetItem):
        source = mutator.lookup_binding(value.tuple_value)
        if value.index != 0 or op_name(source) != "relax.nn.batch_norm":
            return None
        return value.tuple_value if _is_inference_batch_norm(source) else None
    op = op_name(value)
    if op == "relax.nn.batch_norm":
        return value.args[0] if _is_inference_batch_norm(value) else None
    if op in _UNARY:
        if op in NCHW_ONLY and str(value.attrs.layout) != "NCHW":
            return None
        return value.args[0] if isinstance(value.args[0], relax.Var) else None
    if op in ELEMENTWISE_BINARY:
        variables = [a for a in value.args if isinstance(a, relax.Var)]
        if len(variables) != 1 or len(flat_args(value)) != 1:
            return None
        (data,) = variables
        shape = static_shape(data)
        if shape is None or len(shape) != 4 or shape != static_shape(value):
            return None
        others = [a for a in value.args if not a.same_as(data)]
        if all(isinstance(a, tvm.ir.GenericConst) and a.value.numpy().ndim <= 4 for a in others):
            return data
    return None


def _is_inference_batch_norm(call) -> bool:
    return (
        int(call.attrs.axis) == 1
        and not bool(call.attrs.training)
        and all(isinstance(a, tvm.ir.GenericConst) for a in call.args[1:])
    )


def _reorder_op(value, data: Expr, order: np.ndarray) -> Expr:
    """``value`` applied to ``data`` whose channels are ``value``'s input's reordered by
    ``order``; its per-channel constants reordered the same way."""
    if isinstance(value, relax.TupleGetItem):
        return relax.TupleGetItem(data, value.index)
    op = op_name(value)
    if op == "relax.nn.batch_norm":
        stats = [relax.const(a.value.numpy()[order]) for a in value.args[1:]]
        return relax.Call(value.op, [data, *stats], value.attrs, value.ty_args)
    args = []
    for arg in value.args:
        if isinstance(arg, relax.Var):
            args.append(data)
        elif isinstance(arg, tvm.ir.GenericConst):
            args.append(_reorder_constant(arg.value.numpy(), order))
        else:
            args.append(arg)
    return relax.Call(value.op, args, value.attrs, value.ty_args)


def _reorder_constant(array: np.ndarray, order: np.ndarray) -> tvm.ir.GenericConst:
    """A constant broadcast against NCHW with its channel axis (if it has one) reordered."""
    axis = array.ndim - 3  # NCHW's axis 1, counted from the right
    if axis < 0 or array.shape[axis] == 1:
        return relax.const(array)
    return relax.const(np.ascontiguousarray(np.take(array, order, axis=axis)))
