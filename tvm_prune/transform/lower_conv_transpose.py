"""``LowerConvTransposeToConv``: non-overlapping transposed convs become a 1x1 conv + pixel shuffle.

Rewrites
    ``R.nn.conv2d_transpose(x, W)`` with ``W: [C_in, C_out, k_h, k_w]`` and strides equal to the
    kernel (each input pixel writes its own ``k_h x k_w`` output block, e.g. the learned 2x2
    stride-2 upsamplers of segmentation and text-detection heads) into
    ``reshape(permute(reshape(conv2d(x, W'), [N, C_out, k_h, k_w, H, W]), [0, 1, 4, 2, 5, 3]),
    [N, C_out, k_h*H, k_w*W])`` where ``W'[(o, r_h, r_w), i, 0, 0] = W[i, o, r_h, r_w]``:
    one GEMM per output phase, computed by the 1x1 conv the conv2d schedule rule already makes
    fast, instead of a transposed conv that multiplies zero-stuffed input.
Only when
    groups is 1, the kernel is a constant (weights bound), NCHW / IOHW layouts, strides equal
    the kernel size, no padding, no output padding, dilation 1, and shapes are static.
Leaves alone
    everything else, with the reason in ``report`` (overlapping kernels, grouped or depthwise
    ones, which ``EmitUpsampleKernels`` takes when they are fixed upsampling stencils).
Run after
    ``EmitUpsampleKernels`` and ``BindParams``, before ``LegalizeOps``.

The result equals the transposed conv up to float rounding: each output is the same sum over
``C_in`` products, so only the summation order can differ.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tvm
from tvm import relax
from tvm.relax import Call, Expr, PyExprMutator

from ..relax_rewrite import RewriteRefused, pixel_shuffle, rewrite_calls, static_shape

CONV_TRANSPOSE_OP = "relax.nn.conv2d_transpose"


@tvm.transform.module_pass(opt_level=0, name="LowerConvTransposeToConv")
class LowerConvTransposeToConv:
    """See the module docstring. After a run, ``report`` lists every transposed conv seen: its
    shapes and either the conv it became or why it was left alone."""

    def __init__(self) -> None:
        self.report: list[dict[str, Any]] = []

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        self.report = []
        return rewrite_calls(mod, CONV_TRANSPOSE_OP, _lower, self.report)


def _lower(mutator: PyExprMutator, call: Call, entry: dict[str, Any]) -> Expr:
    data, kernel = call.args
    attrs = call.attrs
    in_shape, out_shape = static_shape(data), static_shape(call)
    entry["shape"] = [in_shape, out_shape]
    if in_shape is None or out_shape is None:
        raise RewriteRefused("dynamic shape")
    if (str(attrs.data_layout), str(attrs.kernel_layout)) != ("NCHW", "IOHW"):
        raise RewriteRefused(f"layouts {attrs.data_layout}/{attrs.kernel_layout} (only NCHW/IOHW)")
    if int(attrs.groups) != 1:
        raise RewriteRefused(f"groups {int(attrs.groups)} (only 1)")
    if not isinstance(kernel, tvm.ir.GenericConst):
        raise RewriteRefused("kernel is not a constant (bind the weights first)")
    weights = kernel.value.numpy()
    c_in, c_out, k_h, k_w = weights.shape
    strides = [int(s) for s in attrs.strides]
    entry["kernel"], entry["strides"] = [k_h, k_w], strides
    if strides != [k_h, k_w]:
        raise RewriteRefused(f"strides {strides} differ from kernel {[k_h, k_w]} (overlapping)")
    if any(int(p) for p in attrs.padding) or any(int(p) for p in attrs.output_padding):
        raise RewriteRefused("padding or output padding")
    if any(int(d) != 1 for d in attrs.dilation):
        raise RewriteRefused(f"dilation {[int(d) for d in attrs.dilation]}")
    batch, _, height, width = in_shape
    if out_shape != [batch, c_out, k_h * height, k_w * width]:
        raise RewriteRefused(f"output shape {out_shape} is not the stride multiple of the input")
    phase_kernel = np.ascontiguousarray(
        weights.transpose(1, 2, 3, 0).reshape(c_out * k_h * k_w, c_in, 1, 1)
    )
    phases = mutator.builder_.emit(
        relax.op.nn.conv2d(data, relax.const(phase_kernel), out_dtype=attrs.out_dtype)
    )
    blocks = relax.op.reshape(phases, [batch, c_out, k_h, k_w, height, width])
    entry.update(rewritten=True, gemm=[c_in, c_out * k_h * k_w])
    return pixel_shuffle(mutator, mutator.builder_.emit(blocks), out_shape)
