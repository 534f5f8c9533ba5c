"""``EmitUpsampleKernels``: deterministic transposed convs become weight-free polyphase kernels.

Rewrites
    ``R.nn.conv2d_transpose(x, K, strides=(s_h, s_w), padding=crop)`` whose constant kernel is
    the same separable ``outer(k_h, k_w)`` for every channel (depthwise, or a diagonal dense
    kernel as FCN-style bilinear initialisation makes), optionally fed by an edge
    (``replicate``) ``R.nn.pad``, into ``call_tir(upsample, x)``. The PrimFunc loops over input
    pixels ``(q, p)`` and output phases ``(r_h, r_w)`` and writes output
    ``(s_h*q + r_h, s_w*p + r_w)``; each phase is a fixed stencil of a few input pixels with
    the weights as immediates: no kernel tensor, no multiply by zero or by one, no pad copy.
    For CPU targets it is scheduled here (rows in parallel, phases unrolled) and marked opaque
    to FuseOps, whose re-fusion would drop that schedule; for GPU targets (``gpu`` in the
    current target's keys) it stays unscheduled, still opaque, for the GPU schedule rules.
    Being opaque, it would not fuse with what follows, so the pass fuses the one epilogue that
    follows upsampling in FPN-style decoders itself: an ``R.add`` of the upsampled map and a
    tensor of the same shape, when the add is the upsampled map's only use, becomes one kernel
    that adds while it writes (one pass over the output instead of three).
Only when
    the kernel is a constant (weights bound), NCHW / IOHW layouts, dilation 1, no output
    padding, and the output is exactly ``(s_h*H, s_w*W)``.
Leaves alone
    learned (non-separable or per-channel different) kernels, other layouts and sizes; each
    conv2d_transpose seen is listed in ``report`` with the reason (``epilogue: "add"`` when an
    add was fused). Adds that broadcast, or whose upsampled operand has other uses, stay.
Run after
    ``LowerUpsampling`` and ``BindParams`` (kernels must be constants), before ``LegalizeOps``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import tvm
from tvm import relax, te, tirx
from tvm.relax import Call, Expr, PyExprMutator

from ..relax_rewrite import (
    OPAQUE_PATTERN,
    RewriteRefused,
    rewrite_calls,
    static_shape,
    use_counts,
)
from ..schedule.apply_schedule_rules import SCHEDULED_ATTR
from .upsample_kernel import NotAStencil, Stencil1D, stencil_from_transposed_conv

CONV_TRANSPOSE_OP = "relax.nn.conv2d_transpose"
PAD_OP = "relax.nn.pad"
ADD_OP = "relax.add"


@tvm.transform.module_pass(opt_level=0, name="EmitUpsampleKernels")
class EmitUpsampleKernels:
    """See the module docstring; ``report`` lists every conv2d_transpose seen after a run."""

    def __init__(self) -> None:
        self.report: list[dict[str, Any]] = []

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        self.report = []
        kernels: dict[str, _Kernel] = {}

        def emit(mutator: PyExprMutator, call: Call, entry: dict[str, Any]) -> Expr:
            kernel = _kernel_of(mutator, call, entry)
            gvar = mutator.builder_.add_func(kernel.func(), "upsample")
            kernels[gvar.name_hint] = kernel
            return relax.call_tir(gvar, [kernel.data], kernel.out_ty)

        mod = rewrite_calls(mod, CONV_TRANSPOSE_OP, emit, self.report)
        if kernels:
            uses = use_counts(mod)

            def fuse_add(mutator: PyExprMutator, call: Call, _entry: dict[str, Any]) -> Expr:
                for upsampled, other in (call.args, reversed(call.args)):
                    kernel = _emitted(mutator, upsampled, kernels)
                    if (
                        kernel is not None
                        and uses.get(upsampled, 0) == 1
                        and static_shape(other) == static_shape(upsampled)
                        and str(other.ty.dtype) == kernel.dtype
                    ):
                        gvar = mutator.builder_.add_func(kernel.func(residual=True), "upsample_add")
                        kernel.entry["epilogue"] = "add"
                        return relax.call_tir(gvar, [kernel.data, other], kernel.out_ty)
                raise RewriteRefused("no upsampled operand to fuse")

            # Every add gets a report entry; only the fused ones matter, recorded above.
            mod = rewrite_calls(mod, ADD_OP, fuse_add, [])
        return relax.transform.DeadCodeElimination()(mod)


@dataclass
class _Kernel:
    """What an emitted upsampling kernel is made of (enough to emit it again with an epilogue)."""

    data: Expr
    shape: tuple[int, int, int, int]
    dtype: str
    rows: Stencil1D
    cols: Stencil1D
    border: str
    on_gpu: bool
    out_ty: relax.TensorType
    entry: dict[str, Any]

    def func(self, residual: bool = False) -> tirx.PrimFunc:
        return _upsample_func(
            self.shape, self.dtype, self.rows, self.cols, self.border, self.on_gpu, residual
        )


def _emitted(mutator: PyExprMutator, expr: Expr, kernels: dict[str, _Kernel]) -> _Kernel | None:
    """The kernel ``expr`` is the output of, if it is a var bound to one of ours."""
    bound = mutator.lookup_binding(expr) if isinstance(expr, relax.Var) else None
    if not isinstance(bound, Call) or bound.op != tvm.ir.Op.get("relax.call_tir"):
        return None
    callee = bound.args[0]
    return kernels.get(callee.name_hint) if isinstance(callee, tvm.ir.GlobalVar) else None


def _kernel_of(mutator: PyExprMutator, call: Call, entry: dict[str, Any]) -> _Kernel:
    attrs = call.attrs
    if str(attrs.data_layout) != "NCHW" or str(attrs.kernel_layout) != "IOHW":
        raise NotAStencil(f"layouts {attrs.data_layout}/{attrs.kernel_layout}")
    if [int(d) for d in attrs.dilation] != [1, 1] or any(int(p) for p in attrs.output_padding):
        raise NotAStencil("dilation or output padding")
    weight = call.args[1]
    if not isinstance(weight, tvm.ir.GenericConst):
        raise NotAStencil("kernel is not a constant (bind the weights first)")
    kernel_h, kernel_w = _shared_separable_kernel(weight.value.numpy(), int(attrs.groups))
    data, border, pad = _unpad(mutator, call.args[0])
    strides = [int(s) for s in attrs.strides]
    top, left, _, _ = (int(p) for p in attrs.padding)
    stencils = (
        stencil_from_transposed_conv(kernel_h, strides[0], top, pad[0]),
        stencil_from_transposed_conv(kernel_w, strides[1], left, pad[1]),
    )
    n, c, h, w = (int(d) for d in data.ty.shape)
    out_shape = [int(d) for d in call.ty.shape]
    if out_shape != [n, c, h * strides[0], w * strides[1]]:
        raise NotAStencil(f"output {out_shape} is not the input {[n, c, h, w]} times the stride")
    dtype = str(call.ty.dtype)
    target = tvm.target.Target.current(allow_none=True)
    entry.update(
        rewritten=True,
        stride=strides,
        border=border,
        taps=[sum(len(p) for p in s.taps) for s in stencils],
        dtype=dtype,
    )
    return _Kernel(
        data=data,
        shape=(n, c, h, w),
        dtype=dtype,
        rows=stencils[0],
        cols=stencils[1],
        border=border,
        on_gpu=target is not None and "gpu" in target.keys,
        out_ty=relax.TensorType(out_shape, dtype),
        entry=entry,
    )


def _unpad(mutator: PyExprMutator, data: Expr) -> tuple[Expr, str, tuple[int, int]]:
    """The input before an edge pad of H and W only (border "edge"), or as is ("zero")."""
    producer = mutator.lookup_binding(data) if isinstance(data, relax.Var) else None
    if (
        isinstance(producer, Call)
        and isinstance(producer.op, tvm.ir.Op)
        and producer.op.name == PAD_OP
        and str(producer.attrs.pad_mode) == "replicate"
    ):
        widths = [int(v) for v in producer.attrs.pad_width]
        if widths[:4] == [0, 0, 0, 0]:
            return producer.args[0], "edge", (widths[4], widths[6])
    return data, "zero", (0, 0)


def _shared_separable_kernel(weight: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """``(k_h, k_w)`` if every channel's kernel is the same ``outer(k_h, k_w)``."""
    channels_in, channels_out_per_group = weight.shape[:2]
    if groups == channels_in and channels_out_per_group == 1:
        per_channel = weight[:, 0]
    elif groups == 1 and channels_in == channels_out_per_group:
        eye = np.eye(channels_in, dtype=bool)
        if np.any(weight[~eye]):
            raise NotAStencil("dense kernel mixes channels")
        per_channel = weight[eye]
    else:
        raise NotAStencil(f"groups={groups} with kernel {list(weight.shape)}")
    first = per_channel[0]
    if not np.array_equal(per_channel, np.broadcast_to(first, per_channel.shape)):
        raise NotAStencil("channels have different kernels (learned weights)")
    row, col = np.unravel_index(np.argmax(np.abs(first)), first.shape)
    if first[row, col] == 0:
        raise NotAStencil("kernel is all zeros")
    k_h, k_w = first[:, col].astype(np.float64), first[row, :] / float(first[row, col])
    if not np.allclose(np.outer(k_h, k_w), first, rtol=1e-6, atol=0):
        raise NotAStencil("kernel is not separable")
    return k_h, k_w


def _upsample_func(
    shape: tuple[int, int, int, int],
    dtype: str,
    rows: Stencil1D,
    cols: Stencil1D,
    border: str,
    on_gpu: bool,
    residual: bool = False,
) -> tirx.PrimFunc:
    """The phase kernel; for a CPU scheduled: batch x channel x input-row in parallel, phases
    unrolled (which turns the phase ``Select`` chain into straight-line code per phase). With
    ``residual``, it takes a second input of the output's shape and adds it."""
    x = te.placeholder(shape, dtype, name="x")
    n, c, h, w = shape
    added = (
        te.placeholder((n, c, h * rows.scale, w * cols.scale), dtype, name="residual")
        if residual
        else None
    )
    out = _upsample_te(x, rows, cols, border, added)
    sch = tvm.s_tir.Schedule(te.create_prim_func([x, out] if added is None else [x, added, out]))
    block = sch.get_sblock("upsample")
    # Write (n, c, q, r_h, p, r_w) straight to (n, c, s_h*q + r_h, s_w*p + r_w): no reshape.
    sch.transform_layout(
        block,
        ("write", 0),
        lambda n, c, q, r_h, p, r_w: (n, c, q * rows.scale + r_h, p * cols.scale + r_w),
    )
    if not on_gpu:
        b, ch, q, r_h, p, r_w = sch.get_loops(block)
        sch.parallel(sch.fuse(b, ch, q))
        sch.unroll(r_h)
        sch.unroll(r_w)
        # Only the first and last columns' taps can leave the image: with those split off, the
        # interior loop's clamps simplify away and its loads are contiguous vectors (clamped
        # indices made LLVM load lane by lane).
        before, after = cols.pad
        parts = [f for f in (before, w - before - after, after) if f > 0]
        if len(parts) > 1 and before + after < w:
            sch.loop_partition(p, [*parts[:-1], None])
    func = sch.mod["main"].without_attr("global_symbol")
    if not on_gpu:
        func = func.with_attr(SCHEDULED_ATTR, True)
    # Opaque to FuseOps: fusing would re-derive the loops and drop this schedule.
    return func.with_attr("op_pattern", OPAQUE_PATTERN)


def _upsample_te(
    x: te.Tensor, rows: Stencil1D, cols: Stencil1D, border: str, added: te.Tensor | None
) -> te.Tensor:
    """``out[n, c, q, r_h, p, r_w]`` = the phase-``(r_h, r_w)`` stencil at input ``(q, p)``,
    plus ``added`` at the output pixel if given."""
    n, c, h, w = x.shape
    dtype = x.dtype

    def pixel(b, ch, q, d_h, p, d_w):
        """Input ``(q + d_h, p + d_w)``; only a nonzero offset can leave the image."""
        i, j = q + d_h, p + d_w
        row = i if d_h == 0 else tirx.max(tirx.min(i, h - 1), 0)
        col = j if d_w == 0 else tirx.max(tirx.min(j, w - 1), 0)
        value = x[b, ch, row, col]
        if border == "edge" or (d_h == 0 and d_w == 0):
            return value
        inside = tirx.all(i >= 0, i < h, j >= 0, j < w)
        return tirx.if_then_else(inside, value, tirx.const(0, dtype))

    def phase_value(b, ch, q, p, taps_h, taps_w):
        total = None
        for d_h, w_h in taps_h:
            for d_w, w_w in taps_w:
                term = pixel(b, ch, q, d_h, p, d_w)
                weight = Fraction(w_h) * Fraction(w_w)
                if weight != 1:
                    term = term * tirx.const(float(weight), dtype)
                total = term if total is None else total + term
        return total

    def body(b, ch, q, r_h, p, r_w):
        value = None
        for a in reversed(range(rows.scale)):
            row_value = None
            for bw in reversed(range(cols.scale)):
                v = phase_value(b, ch, q, p, rows.taps[a], cols.taps[bw])
                row_value = v if row_value is None else tirx.Select(r_w == bw, v, row_value)
            value = row_value if value is None else tirx.Select(r_h == a, row_value, value)
        if added is not None:
            value = value + added[b, ch, q * rows.scale + r_h, p * cols.scale + r_w]
        return value

    return te.compute((n, c, h, rows.scale, w, cols.scale), body, name="upsample")
