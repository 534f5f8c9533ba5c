"""The loops every Python-written Relax pass of tvm-prune shares.

:func:`rewrite_relax_functions` visits every Relax function with a mutator. :func:`rewrite_calls`
is the one mechanism of the passes that rewrite one operator: every call of it that is seen
gets a report entry, and a rewrite that cannot be exact raises :class:`RewriteRefused`, which
leaves the call as it is and records why. :func:`conv2d_like` rebuilds a conv with new operands,
:func:`pixel_shuffle` interleaves per-phase outputs, :func:`use_counts` counts variable reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tvm
from tvm import relax
from tvm.relax import Call, Expr, PyExprMutator, PyExprVisitor, expr_functor


class RewriteRefused(Exception):
    """Raised by a call rewrite: the call stays as it is; the message is the report's reason."""


CallRewrite = Callable[[PyExprMutator, Call, dict[str, Any]], Expr]


# FuseOps' pattern (``kOpaque``) for a PrimFunc that nothing may be fused into.
OPAQUE_PATTERN = 8


def rewrite_relax_functions(mod: tvm.IRModule, rewriter: relax.PyExprMutator) -> tvm.IRModule:
    """``mod`` with every Relax function visited by ``rewriter`` (PrimFuncs untouched)."""
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gvar, rewriter.visit_expr(func))
    return rewriter.builder_.get()


def rewrite_calls(
    mod: tvm.IRModule,
    op_name: str,
    rewrite: CallRewrite,
    report: list[dict[str, Any]],
    describe: Callable[[Call], dict[str, Any]] | None = None,
) -> tvm.IRModule:
    """``mod`` with every call of the operator ``op_name`` replaced by ``rewrite(mutator, call,
    entry)`` (the mutator gives the rewrite its ``builder_`` and ``lookup_binding``).

    Every call seen appends ``entry`` to ``report``: the operator's short name as ``op``, then
    ``describe(call)``, then what the rewrite adds. A rewrite raising :class:`RewriteRefused`
    leaves the call and sets ``rewritten: False`` and ``reason``.
    """
    return rewrite_relax_functions(mod, _CallRewriter(mod, op_name, rewrite, report, describe))


@expr_functor.mutator
class _CallRewriter(PyExprMutator):
    def __init__(self, mod, op_name, rewrite, report, describe) -> None:
        super().__init__(mod)
        self.op_name, self.rewrite, self.report, self.describe = op_name, rewrite, report, describe

    def visit_call_(self, call: Call) -> Expr:
        call = super().visit_call_(call)
        if not isinstance(call.op, tvm.ir.Op) or call.op.name != self.op_name:
            return call
        entry: dict[str, Any] = {"op": self.op_name.rsplit(".", 1)[-1]}
        if self.describe is not None:
            entry.update(self.describe(call))
        self.report.append(entry)
        try:
            return self.rewrite(self, call, entry)
        except RewriteRefused as reason:
            entry.update(rewritten=False, reason=str(reason))
            return call


def static_shape(expr: Expr) -> list[int] | None:
    """The shape of ``expr``'s tensor type as integers, or None if it is not static."""
    shape = getattr(expr.ty, "shape", None)
    if shape is None:
        return None
    try:
        return [int(d) for d in shape]
    except TypeError:
        return None


def conv2d_like(
    call: Call,
    data: Expr,
    weight: Expr | np.ndarray,
    groups: int,
    *,
    padding: list[int] | None = None,
) -> Expr:
    """``call`` (a ``relax.nn.conv2d``) on ``data`` and ``weight`` (an expression, or an array
    that becomes a constant) with ``groups`` (and ``padding``, if given): every other attribute
    kept."""
    attrs = call.attrs
    if isinstance(weight, np.ndarray):
        weight = relax.const(np.ascontiguousarray(weight))
    return relax.op.nn.conv2d(
        data,
        weight,
        strides=[int(s) for s in attrs.strides],
        padding=[int(p) for p in attrs.padding] if padding is None else padding,
        dilation=[int(d) for d in attrs.dilation],
        groups=groups,
        data_layout=str(attrs.data_layout),
        kernel_layout=str(attrs.kernel_layout),
        out_layout=str(attrs.out_layout),
        out_dtype=attrs.out_dtype,
    )


def pixel_shuffle(mutator: PyExprMutator, blocks: Expr, out_shape: list[int]) -> Expr:
    """``blocks[n, c, r_h, r_w, h, w]`` (one ``[h, w]`` map per output phase) interleaved into
    ``out[n, c, s_h * h + r_h, s_w * w + r_w]`` of ``out_shape``."""
    interleaved = mutator.builder_.emit(relax.op.permute_dims(blocks, [0, 1, 4, 2, 5, 3]))
    return relax.op.reshape(interleaved, out_shape)


def use_counts(mod: tvm.IRModule) -> dict[relax.Var, int]:
    """How often each Relax variable is read, over all Relax functions of ``mod``."""
    counts: dict[relax.Var, int] = {}

    @expr_functor.visitor
    class _Counter(PyExprVisitor):
        def visit_var_(self, var: relax.Var) -> None:
            counts[var] = counts.get(var, 0) + 1

        def visit_dataflow_var_(self, var: relax.DataflowVar) -> None:
            counts[var] = counts.get(var, 0) + 1

    for _, func in mod.functions_items():
        if isinstance(func, relax.Function):
            _Counter().visit_expr(func)
    return counts
