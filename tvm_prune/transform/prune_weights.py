"""``PruneWeights``: apply keep-masks to weight parameters of ``main``."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import tvm
from tvm import relax

logger = logging.getLogger(__name__)


@tvm.transform.module_pass(opt_level=0, name="PruneWeights")
class PruneWeights:
    """Zero the pruned elements of weight parameters through constant keep-masks.

    **Rewrites** every use of a ``main`` parameter ``w`` named in ``masks`` into
    ``w * mask`` (``mask`` a constant of ``w``'s dtype, 1 = kept). Once the weights are bound
    (``Model.bound_module``), TVM's ``FoldConstant`` folds the product, so the compiled library
    holds the masked weights and no multiply.

    **Only when** the name is a parameter of ``main`` whose static shape equals the mask's, the
    mask prunes something, and the parameter is not already masked (its only use a multiply by
    a constant): applying the pass twice changes nothing.

    **Leaves alone** other functions, parameters not named in ``masks``, and all-ones masks.
    A mask whose shape does not match its parameter's is skipped with a debug log line.

    **Run after** ``load_onnx`` (weights are parameters); before binding the weights and the
    build. :func:`tvm_prune.prune.api.prune_model` runs it and masks ``Model.params`` too.

    Parameters
    ----------
    masks : Mapping[str, np.ndarray]
        Boolean keep-masks keyed by parameter name.
    """

    def __init__(self, masks: Mapping[str, np.ndarray]):
        self.masks = {name: np.asarray(mask, dtype=bool) for name, mask in masks.items()}

    def transform_module(self, mod: tvm.IRModule, ctx) -> tvm.IRModule:
        main = mod["main"]
        already = _masked_params(main)
        first = main.body.blocks[0] if main.body.blocks else None
        in_dataflow = isinstance(first, relax.DataflowBlock)
        binds, new_params, masking = {}, [], []
        for param in main.params:
            mask = self.masks.get(param.name)
            if mask is None or mask.all() or param.name in already:
                new_params.append(param)
                continue
            shape = [int(d) for d in param.ty.shape] if param.ty.shape is not None else None
            if shape != list(mask.shape):
                logger.debug(
                    "PruneWeights: %s has shape %s, mask %s", param.name, shape, mask.shape
                )
                new_params.append(param)
                continue
            fresh = relax.Var(param.name, param.ty)
            masked = (relax.DataflowVar if in_dataflow else relax.Var)(
                f"{param.name}_masked", param.ty
            )
            constant = relax.const(mask.astype(str(param.ty.dtype)))
            value = relax.BlockBuilder().normalize(relax.op.multiply(fresh, constant))
            masking.append(relax.VarBinding(masked, value))
            binds[param] = masked
            new_params.append(fresh)
        if not binds:
            return mod
        body = main.bind_params(binds).body
        block_type = relax.DataflowBlock if in_dataflow else relax.BindingBlock
        rest = list(body.blocks)
        head = block_type([*masking, *(rest.pop(0).bindings if in_dataflow else [])])
        seq = relax.SeqExpr([head, *rest], body.body)
        func = relax.Function(new_params, seq, main.ret_ty, main.is_pure, main.attrs)
        result = tvm.IRModule(dict(mod.functions_items()), attrs=mod.attrs)
        result[mod.get_global_var("main")] = func
        return relax.transform.Normalize()(result)


def _masked_params(main) -> set[str]:
    """Parameters whose every use is ``multiply(param, constant)`` (masked by this pass)."""
    names = {param.name for param in main.params}
    masked, other = set(), set()
    for block in main.body.blocks:
        for binding in block.bindings:
            value = binding.value
            if not isinstance(value, relax.Call):
                continue
            for i, arg in enumerate(value.args):
                if not isinstance(arg, relax.Var) or arg.name not in names:
                    continue
                is_mask = (
                    isinstance(value.op, tvm.ir.Op)
                    and value.op.name == "relax.multiply"
                    and i == 0
                    and isinstance(value.args[1], tvm.ir.Constant)
                )
                (masked if is_mask else other).add(arg.name)
    return masked - other
