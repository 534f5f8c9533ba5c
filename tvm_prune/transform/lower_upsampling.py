"""``LowerUpsampling``: integer-scale resizes become one deterministic-kernel transposed conv.

Rewrites
    ``R.image.resize2d(x, (s_h*H, s_w*W), method, coordinate_transformation_mode, rounding)``
    into ``R.nn.conv2d_transpose(pad(x, edge), K, strides=(s_h, s_w), groups=C, padding=crop)``
    where ``K[c, 0] = outer(k_h, k_w)`` is fixed by the scales and the mode (nearest: a box;
    linear: a tent), the edge padding reproduces the resize's index clamping, and the
    transposed conv's padding crops to the exact output (see :mod:`.upsample_kernel`).
Only when
    the layout is NCHW, shapes are static, the dtype is float, both scales are integers in 1..8
    (not both 1), the method is nearest or linear, and the coordinate transform is
    ``half_pixel``, ``pytorch_half_pixel``, ``asymmetric`` or ``tf_half_pixel_for_nn``.
Leaves alone
    everything else, with the reason in ``report`` (``align_corners``: the offset varies with
    the output position; cubic; fractional scales; dynamic shapes).
Run after
    import (it matches the Relax op, before ``LegalizeOps``).

The result equals the resize up to float32 rounding of the summation order (nearest: exactly).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tvm
from tvm import relax
from tvm.relax import Call, Expr, PyExprMutator

from ..relax_rewrite import rewrite_calls, static_shape
from .upsample_kernel import NotAStencil, resize_stencil

RESIZE_OP = "relax.image.resize2d"


@tvm.transform.module_pass(opt_level=0, name="LowerUpsampling")
class LowerUpsampling:
    """See the module docstring. After a run, ``report`` lists every resize seen: what it was,
    and either the kernel it became or why it was left alone."""

    def __init__(self) -> None:
        self.report: list[dict[str, Any]] = []

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        self.report = []
        return rewrite_calls(mod, RESIZE_OP, _lower, self.report, describe=_describe)


def _describe(call: Call) -> dict[str, Any]:
    return {
        "method": str(call.attrs.method),
        "coordinate_mode": str(call.attrs.coordinate_transformation_mode),
        "rounding": str(call.attrs.rounding_method),
    }


def _lower(mutator: PyExprMutator, call: Call, entry: dict[str, Any]) -> Expr:
    data = call.args[0]
    in_shape, out_shape = static_shape(data), static_shape(call)
    entry["shape"] = [in_shape, out_shape]
    if str(call.attrs.layout) != "NCHW":
        raise NotAStencil(f"layout {call.attrs.layout} (only NCHW)")
    if in_shape is None or out_shape is None:
        raise NotAStencil("dynamic shape")
    dtype = str(data.ty.dtype)
    if not dtype.startswith("float"):
        raise NotAStencil(f"dtype {dtype}")
    stencils = [
        resize_stencil(
            in_shape[axis],
            out_shape[axis],
            method=entry["method"],
            coordinate_mode=entry["coordinate_mode"],
            rounding=entry["rounding"],
        )
        for axis in (2, 3)
    ]
    scales = [s.scale for s in stencils]
    entry["scale"] = scales
    if scales == [1, 1]:
        raise NotAStencil("scale 1 (nothing to upsample)")
    (k_h, crop_top, crop_bottom), (k_w, crop_left, crop_right) = (
        s.transposed_conv() for s in stencils
    )
    channels = in_shape[1]
    kernel = np.broadcast_to(np.outer(k_h, k_w), (channels, 1, len(k_h), len(k_w)))
    (pad_top, pad_bottom), (pad_left, pad_right) = (s.pad for s in stencils)
    if pad_top or pad_bottom or pad_left or pad_right:
        data = mutator.builder_.emit(
            relax.op.nn.pad(
                data,
                [0, 0, 0, 0, pad_top, pad_bottom, pad_left, pad_right],
                pad_mode="replicate",
            )
        )
    lowered = relax.op.nn.conv2d_transpose(
        data,
        relax.const(np.ascontiguousarray(kernel, dtype=dtype)),
        strides=scales,
        padding=[crop_top, crop_left, crop_bottom, crop_right],
        groups=channels,
        data_layout="NCHW",
        kernel_layout="IOHW",
    )
    entry.update(
        rewritten=True,
        kernel=[len(k_h), len(k_w)],
        edge_pad=[pad_top, pad_bottom, pad_left, pad_right],
    )
    return lowered
