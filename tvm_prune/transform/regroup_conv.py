"""``RegroupConv``: grouped convs a target cannot run become a form it can, chosen by cost.

Rewrites
    ``R.nn.conv2d(x, W, groups=g)`` that the preset's ``conv_groups``
    (:class:`tvm_prune.target.presets.ConvGroupSupport`) does not allow into the cheapest
    allowed form:

    - ``regroup g'``: a coarser grouping, ``g'`` dividing ``g`` (``g' = 1``: dense). Each output
      channel's ``I/g`` kernel columns are placed at its group's offset inside the coarser
      group's ``I/g'`` columns, zeros elsewhere;
    - ``split``: ``split(x, g, axis=1)``, ``g`` dense convs on the slices, ``concat``.

    When ``x`` is a channel shuffle of ``z`` (``reshape`` to ``(N, s, C/s, H, W)``, swap of
    axes 1 and 2, ``reshape`` back, as ShuffleNet writes it), the input's channel grouping is
    not the kernel's: ``x[:, j] = z[:, P[j]]``. The dense form then reads ``z`` with the
    kernel columns scattered by ``P`` and the split form gathers each group's channels from
    ``z`` (``take``), so the shuffle's copy is not made (reported ``input: shuffle folded``).

    Cost (in MAC units) = MACs + 4 x elements moved (input, output, weights; ``split`` also
    copies its input and output once more). The factor 4 assumes a vector unit does ~4 MACs in
    the time it moves one float to or from memory; it is an assumption until measured latency
    replaces it.
Only when
    the target declares ``conv_groups``, NCHW / OIHW layouts, static shapes and a constant
    kernel (weights bound).
Leaves alone
    convs the target runs as they are (dense always; depthwise and grouped as declared).
Run after
    ``DenseToGroupedConv`` (so grouped convs it creates are checked too), before ``LegalizeOps``.

Exact: every form sums the same nonzero products per output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tvm
from tvm import relax
from tvm.relax import Call, Expr, PyExprMutator

from ..prune.depgraph import op_name
from ..relax_rewrite import RewriteRefused, conv2d_like, rewrite_calls, static_shape
from ..target.presets import ConvGroupSupport

CONV_OP = "relax.nn.conv2d"
TRAFFIC_COST = 4


@tvm.transform.module_pass(opt_level=0, name="RegroupConv")
class RegroupConv:
    """See the module docstring. ``report`` lists every conv seen, with each candidate form's
    cost and the chosen one."""

    def __init__(self, support: ConvGroupSupport):
        self.support = support
        self.report: list[dict[str, Any]] = []

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        self.report = []

        def regroup(mutator: PyExprMutator, call: Call, entry: dict[str, Any]) -> Expr:
            return _regroup(self.support, mutator, call, entry)

        mod = rewrite_calls(mod, CONV_OP, regroup, self.report)
        if any(entry.get("input") == "shuffle folded" for entry in self.report):
            mod = relax.transform.DeadCodeElimination()(mod)  # the bypassed shuffles
        return mod


def _regroup(support, mutator: PyExprMutator, call: Call, entry: dict[str, Any]) -> Expr:
    data, kernel = call.args
    attrs = call.attrs
    in_shape, out_shape = static_shape(data), static_shape(call)
    if in_shape is None or out_shape is None:
        raise RewriteRefused("dynamic shape")
    groups = int(attrs.groups)
    entry.update(groups=groups, in_channels=in_shape[1], out_channels=out_shape[1])
    if support.runs(groups, in_shape[1]):
        raise RewriteRefused("the target runs it")
    if (str(attrs.data_layout), str(attrs.kernel_layout)) != ("NCHW", "OIHW"):
        raise RewriteRefused(f"layouts {attrs.data_layout}/{attrs.kernel_layout}")
    if not isinstance(kernel, tvm.ir.GenericConst):
        raise RewriteRefused("kernel is not a constant (bind the weights first)")
    weights = kernel.value.numpy()
    costs = form_costs(support, in_shape, out_shape, weights.shape, groups)
    entry["costs"] = costs
    if not costs:
        raise RewriteRefused("no allowed form")
    form = min(costs, key=costs.get)
    entry.update(rewritten=True, form=form)
    shuffled = _shuffle_source(mutator, data)
    coarser = None if form == "split" else int(form.removeprefix("regroup "))
    if shuffled is not None and coarser in (None, 1):
        entry["input"] = "shuffle folded"
    else:
        shuffled = None
    if coarser is None:
        return _split(mutator, call, weights, groups, shuffled)
    kernel = regroup_kernel(weights, groups, coarser)
    if shuffled is None:
        return conv2d_like(call, data, kernel, coarser)
    source, order = shuffled
    scattered = np.zeros_like(kernel)
    scattered[:, order] = kernel
    return conv2d_like(call, source, scattered, 1)


def form_costs(support, in_shape, out_shape, kernel_shape, groups: int) -> dict[str, float]:
    """Cost of each form the target allows (see the module docstring)."""
    in_elements, out_elements = int(np.prod(in_shape)), int(np.prod(out_shape))
    taps = int(np.prod(kernel_shape[2:]))
    in_channels, out_channels = in_shape[1], out_shape[1]

    def cost(per_group_in: int, extra: int = 0) -> float:
        macs = out_elements * per_group_in * taps
        moved = in_elements + out_elements + out_channels * per_group_in * taps + extra
        return float(macs + TRAFFIC_COST * moved)

    costs = {
        f"regroup {g}": cost(in_channels // g)
        for g in range(1, groups)
        if groups % g == 0 and support.runs(g, in_channels)
    }
    costs["split"] = cost(in_channels // groups, 2 * (in_elements + out_elements))
    return costs


def regroup_kernel(weights: np.ndarray, groups: int, coarser: int) -> np.ndarray:
    """A ``groups``-group kernel ``(O, I/groups, kh, kw)`` as a ``coarser``-group one."""
    out_channels, per_in = weights.shape[:2]
    ratio = groups // coarser
    per_out = out_channels // groups
    result = np.zeros((out_channels, per_in * ratio, *weights.shape[2:]), weights.dtype)
    for o in range(out_channels):
        offset = (o // per_out) % ratio * per_in
        result[o, offset : offset + per_in] = weights[o]
    return result


def _shuffle_source(mutator, data) -> tuple[Expr, np.ndarray] | None:
    """``(z, P)`` if ``data`` is a channel shuffle of ``z``: ``data[:, j] = z[:, P[j]]``."""
    back = mutator.lookup_binding(data) if isinstance(data, relax.Var) else None
    if op_name(back) != "relax.reshape" or not isinstance(back.args[0], relax.Var):
        return None
    swap = mutator.lookup_binding(back.args[0])
    if op_name(swap) != "relax.permute_dims" or swap.attrs.axes is None:
        return None
    if [int(a) for a in swap.attrs.axes] != [0, 2, 1, 3, 4]:
        return None
    split = mutator.lookup_binding(swap.args[0]) if isinstance(swap.args[0], relax.Var) else None
    if op_name(split) != "relax.reshape":
        return None
    source = split.args[0]
    source_shape, split_shape = static_shape(source), static_shape(swap.args[0])
    if source_shape is None or split_shape is None or len(source_shape) != 4:
        return None
    if source_shape != static_shape(data) or len(split_shape) != 5:
        return None
    batch, shuffle_groups, per_group, height, width = split_shape
    if [batch, shuffle_groups * per_group, height, width] != source_shape:
        return None
    channel = np.arange(source_shape[1])
    return source, (channel % shuffle_groups) * per_group + channel // shuffle_groups


def _split(mutator, call: Call, weights: np.ndarray, groups: int, shuffled) -> Expr:
    per_in = weights.shape[1]
    if shuffled is None:
        parts = mutator.builder_.emit(relax.op.split(call.args[0], groups, axis=1))
        slices = [mutator.builder_.emit(relax.TupleGetItem(parts, b)) for b in range(groups)]
    else:  # gather each group's channels from before the shuffle
        source, order = shuffled
        slices = [
            mutator.builder_.emit(
                relax.op.take(
                    source,
                    relax.const(order[b * per_in : (b + 1) * per_in].astype("int64")),
                    axis=1,
                    mode="clip",
                )
            )
            for b in range(groups)
        ]
    per_out = weights.shape[0] // groups
    outputs = [
        mutator.builder_.emit(conv2d_like(call, part, weights[b * per_out : (b + 1) * per_out], 1))
        for b, part in enumerate(slices)
    ]
    return relax.op.concat(outputs, axis=1)
