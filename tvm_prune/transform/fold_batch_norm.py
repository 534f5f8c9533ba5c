"""``FoldBatchNormIntoConv``: an inference batch norm after a conv goes into the conv's weights.

Rewrites
    ``batch_norm(conv2d(x, W) [+ b], gamma, beta, mean, var)`` into
    ``conv2d(x, W * s) + ((b - mean) * s + beta)`` with ``s = gamma / sqrt(var + eps)`` per
    output channel. The batch norm's tuple keeps its running statistics as the other fields.
    Without it, the batch norm stays four per-element operations (a division among them) in
    the conv's epilogue, run on every output: 44% of a 3x3 96->24 conv at 160x160 here.
    ONNX Runtime folds the same pattern when it loads a model.
Only when
    the batch norm is in inference mode on axis 1, its parameters, the conv's kernel and the
    bias (one value per output channel) are constants, the conv is NCHW/OIHW, and the conv and
    the bias add have no other reader.
Leaves alone
    every other batch norm, with the reason in ``report`` (CPU builds decompose those into
    multiply-adds later).
Run after
    the weights are bound.

Exact up to rounding: ``s`` is computed in float64 and multiplied into the weights once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tvm
from tvm import relax
from tvm.relax import Call, Expr, PyExprMutator

from ..relax_rewrite import RewriteRefused, conv2d_like, rewrite_calls, use_counts

BATCH_NORM_OP = "relax.nn.batch_norm"
CONV_OP = "relax.nn.conv2d"
ADD_OP = "relax.add"


@tvm.transform.module_pass(opt_level=0, name="FoldBatchNormIntoConv")
class FoldBatchNormIntoConv:
    """See the module docstring. After a run, ``report`` lists every batch norm: folded into
    its conv, or why not."""

    def __init__(self) -> None:
        self.report: list[dict[str, Any]] = []

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        self.report = []
        uses = use_counts(mod)

        def fold(mutator: PyExprMutator, call: Call, entry: dict[str, Any]) -> Expr:
            return _fold(mutator, call, entry, uses)

        rewritten = rewrite_calls(mod, BATCH_NORM_OP, fold, self.report)
        # Readers of the tuple's first field read the shifted conv directly (later passes and
        # fusion see a conv + add, not a tuple); the replaced conv and bias add are dropped.
        rewritten = relax.transform.CanonicalizeBindings()(rewritten)
        return relax.transform.DeadCodeElimination()(rewritten)


def _fold(mutator: PyExprMutator, call: Call, entry: dict[str, Any], uses) -> Expr:
    data, gamma, beta, mean, var = call.args
    attrs = call.attrs
    if bool(attrs.training):
        raise RewriteRefused("training mode")
    if int(attrs.axis) != 1:
        raise RewriteRefused(f"axis {attrs.axis} (only 1, the channels of NCHW)")
    params = [_constant(p) for p in (gamma, beta, mean, var)]
    if any(p is None for p in params):
        raise RewriteRefused("parameters are not constants (bind the weights first)")
    gamma_v, beta_v, mean_v, var_v = params
    bias, conv_var = _bias_and_conv(mutator, data, uses)
    conv = mutator.lookup_binding(conv_var)
    if not (isinstance(conv, Call) and getattr(conv.op, "name", None) == CONV_OP):
        raise RewriteRefused("input is not a conv2d (or a conv2d plus a bias)")
    if uses.get(conv_var, 0) != 1:
        raise RewriteRefused("the conv's output has other readers")
    conv_attrs = conv.attrs
    if (str(conv_attrs.data_layout), str(conv_attrs.kernel_layout)) != ("NCHW", "OIHW"):
        raise RewriteRefused(
            f"layouts {conv_attrs.data_layout}/{conv_attrs.kernel_layout} (only NCHW/OIHW)"
        )
    weights = _constant(conv.args[1])
    if weights is None:
        raise RewriteRefused("kernel is not a constant (bind the weights first)")
    channels = weights.shape[0]
    if bias is not None and bias.size != channels:
        raise RewriteRefused(f"bias of {bias.size} values for {channels} channels")
    gamma_v = gamma_v if bool(attrs.scale) else np.ones(channels)
    beta_v = beta_v if bool(attrs.center) else np.zeros(channels)
    scale = gamma_v.astype(np.float64) / np.sqrt(var_v.astype(np.float64) + float(attrs.epsilon))
    bias_v = np.zeros(channels) if bias is None else bias.reshape(channels).astype(np.float64)
    shift = (bias_v - mean_v) * scale + beta_v
    folded = weights.astype(np.float64) * scale.reshape(-1, 1, 1, 1)
    dtype = weights.dtype
    new_conv = mutator.builder_.emit(
        conv2d_like(conv, conv.args[0], folded.astype(dtype), int(conv_attrs.groups))
    )
    shifted = mutator.builder_.emit(
        relax.op.add(new_conv, relax.const(shift.astype(dtype).reshape(1, channels, 1, 1)))
    )
    entry.update(rewritten=True, channels=channels, bias=bias is not None)
    return relax.Tuple([shifted, mean, var])


def _bias_and_conv(mutator: PyExprMutator, data: Expr, uses) -> tuple[np.ndarray | None, Expr]:
    """``(bias, conv output)`` when ``data`` is a conv's output plus a constant, else
    ``(None, data)``."""
    if not isinstance(data, relax.Var):
        raise RewriteRefused("input is not a variable")
    bound = mutator.lookup_binding(data)
    if not (isinstance(bound, Call) and getattr(bound.op, "name", None) == ADD_OP):
        return None, data
    if uses.get(data, 0) != 1:
        raise RewriteRefused("the bias add has other readers")
    for operand, other in (bound.args, bound.args[::-1]):
        value = _constant(other)
        if isinstance(operand, relax.Var) and value is not None:
            return value, operand
    raise RewriteRefused("the add before it is not a constant bias")


def _constant(expr: Expr) -> np.ndarray | None:
    return expr.value.numpy() if isinstance(expr, tvm.ir.GenericConst) else None
