"""``FixUpsampleRounding``: legacy ONNX ``Upsample`` (nearest) imported with the right rounding.

TVM 0.27's ONNX importer turns ``Upsample(mode="nearest")`` into ``image.resize2d`` with
``coordinate_transformation_mode="asymmetric"`` and the op's default ``rounding_method="round"``,
but ONNX defines Upsample's nearest as ``floor(o / scale)``: every other output row and column
comes from the wrong input pixel. ``Resize`` is imported with an explicit ONNX ``nearest_mode``,
which is never ``"round"``, so a nearest resize with ``"round"`` can only come from Upsample.

Rewrites
    ``image.resize2d(..., method="nearest_neighbor", rounding_method="round")`` to
    ``rounding_method="floor"``.
Leaves alone
    every other resize.
Run after
    ``from_onnx``, first.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax import Call, Expr, PyExprMutator, expr_functor

from ..relax_rewrite import rewrite_relax_functions


@tvm.transform.module_pass(opt_level=0, name="FixUpsampleRounding")
class FixUpsampleRounding:
    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        rewriter = _Rewriter(mod)
        return rewrite_relax_functions(mod, rewriter)


@expr_functor.mutator
class _Rewriter(PyExprMutator):
    def visit_call_(self, call: Call) -> Expr:
        call = super().visit_call_(call)
        if (
            isinstance(call.op, tvm.ir.Op)
            and call.op.name == "relax.image.resize2d"
            and str(call.attrs.method) == "nearest_neighbor"
            and str(call.attrs.rounding_method) == "round"
        ):
            attrs = call.attrs
            return relax.op.image.resize2d(
                call.args[0],
                call.args[1],
                roi=[float(v) for v in attrs.roi],
                layout=str(attrs.layout),
                method="nearest_neighbor",
                coordinate_transformation_mode=str(attrs.coordinate_transformation_mode),
                rounding_method="floor",
                cubic_alpha=float(attrs.cubic_alpha),
                cubic_exclude=int(attrs.cubic_exclude),
                extrapolation_value=float(attrs.extrapolation_value),
                out_dtype=_dtype_or_none(attrs.out_dtype),
            )
        return call


def _dtype_or_none(dtype) -> str | None:
    text = str(dtype) if dtype is not None else ""
    return None if text in ("", "void", "None") else text
