"""``FoldUpsampleIntoConv``: a nearest upsample read only by a conv becomes one conv per phase.

Rewrites
    ``R.nn.conv2d(R.image.resize2d(x, (s_h*H, s_w*W), nearest), W)`` into ``s_h * s_w`` convs of
    ``x`` itself, one per output phase ``(r_h, r_w)``, interleaved by a pixel shuffle. On the
    upsampled map, the ``k`` taps of the conv read only ``ceil(k / s) + 1`` or fewer distinct
    input pixels per phase, so phase ``r``'s kernel sums the taps of ``W`` that land on the same
    input pixel: a 3x3 conv after a x2 upsample becomes four 2x2 convs on the small map, 16
    instead of 36 multiply-adds per (output pixel, input channel, output channel) of the
    small map, and the upsampled map is never written.
Only when
    the resize repeats every input pixel ``s_h x s_w`` times (nearest, integer scales, every
    phase reading its own input pixel: no edge clamping), its only reader is the conv, the
    conv has stride 1, dilation 1, a constant NCHW/OIHW kernel and "same" padding (output size =
    upsampled size), and shapes are static. Any groups: the fold is spatial only.
Leaves alone
    every other conv of a resize, with the reason in ``report``.
Run before
    ``LowerUpsampling`` (it matches the resize as imported), after the weights are bound.

Exact: the conv's zero padding of the upsampled map is the phase convs' zero padding of ``x``
(an upsampled position is outside the map exactly when its input pixel is), so only the
summation order of the taps that are summed into one changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tvm
from tvm import relax
from tvm.relax import Call, Expr, PyExprMutator

from ..relax_rewrite import (
    RewriteRefused,
    conv2d_like,
    pixel_shuffle,
    rewrite_calls,
    static_shape,
    use_counts,
)
from .upsample_kernel import NotAStencil, resize_stencil

CONV_OP = "relax.nn.conv2d"
RESIZE_OP = "relax.image.resize2d"


@tvm.transform.module_pass(opt_level=0, name="FoldUpsampleIntoConv")
class FoldUpsampleIntoConv:
    """See the module docstring. After a run, ``report`` lists every conv that reads a resize:
    the phase kernels it became, or why it was left alone."""

    def __init__(self) -> None:
        self.report: list[dict[str, Any]] = []

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        self.report = []
        uses = use_counts(mod)

        def fold(mutator: PyExprMutator, call: Call, entry: dict[str, Any]) -> Expr:
            return _fold(mutator, call, entry, uses)

        rewritten = rewrite_calls(mod, CONV_OP, fold, self.report)
        # Convs that do not read a resize are not this pass's business ("shape" is set once the
        # resize is found).
        self.report[:] = [entry for entry in self.report if "shape" in entry]
        return rewritten


def _fold(mutator: PyExprMutator, call: Call, entry: dict[str, Any], uses) -> Expr:
    data, kernel = call.args
    resize = mutator.lookup_binding(data) if isinstance(data, relax.Var) else None
    if not (isinstance(resize, Call) and getattr(resize.op, "name", None) == RESIZE_OP):
        raise RewriteRefused("input is not a resize")
    x = resize.args[0]
    in_shape, up_shape, out_shape = static_shape(x), static_shape(data), static_shape(call)
    entry["shape"] = [in_shape, out_shape]
    if in_shape is None or out_shape is None:
        raise RewriteRefused("dynamic shape")
    scales = _box_scales(resize, in_shape, up_shape)
    entry["scale"] = scales
    if uses.get(data, 0) != 1:
        raise RewriteRefused("the upsampled map has other readers")
    attrs = call.attrs
    if (str(attrs.data_layout), str(attrs.kernel_layout)) != ("NCHW", "OIHW"):
        raise RewriteRefused(f"layouts {attrs.data_layout}/{attrs.kernel_layout} (only NCHW/OIHW)")
    if any(int(v) != 1 for v in (*attrs.strides, *attrs.dilation)):
        raise RewriteRefused("stride or dilation is not 1")
    if out_shape[2:] != up_shape[2:]:
        raise RewriteRefused(f"padding changes the size ({up_shape[2:]} -> {out_shape[2:]})")
    if not isinstance(kernel, tvm.ir.GenericConst):
        raise RewriteRefused("kernel is not a constant (bind the weights first)")
    weights = kernel.value.numpy()
    top, left = int(attrs.padding[0]), int(attrs.padding[1])
    rows = _phase_taps(scales[0], weights.shape[2], top)
    cols = _phase_taps(scales[1], weights.shape[3], left)
    phases = []
    for row_matrix, row_pad in rows:
        for col_matrix, col_pad in cols:
            phase_kernel = np.einsum("it,ju,octu->ocij", row_matrix, col_matrix, weights)
            phases.append(
                mutator.builder_.emit(
                    conv2d_like(
                        call,
                        x,
                        phase_kernel.astype(weights.dtype),
                        int(attrs.groups),
                        padding=[row_pad[0], col_pad[0], row_pad[1], col_pad[1]],
                    )
                )
            )
    batch, channels, height, width = out_shape[0], out_shape[1], in_shape[2], in_shape[3]
    stacked = mutator.builder_.emit(relax.op.stack(phases, axis=2))
    blocks = relax.op.reshape(stacked, [batch, channels, *scales, height, width])
    entry.update(
        rewritten=True,
        phase_kernels=[[len(m) for m, _ in rows], [len(m) for m, _ in cols]],
        macs_ratio=round(
            sum(len(m) for m, _ in rows)
            * sum(len(m) for m, _ in cols)
            / weights[0, 0].size
            / (scales[0] * scales[1]),
            3,
        ),
    )
    return pixel_shuffle(mutator, mutator.builder_.emit(blocks), out_shape)


def _box_scales(resize: Call, in_shape: list[int], up_shape: list[int]) -> list[int]:
    """The resize's integer scales, if every output pixel copies its own input pixel."""
    attrs = resize.attrs
    if str(attrs.layout) != "NCHW":
        raise RewriteRefused(f"resize layout {attrs.layout} (only NCHW)")
    scales = []
    for axis in (2, 3):
        try:
            stencil = resize_stencil(
                in_shape[axis],
                up_shape[axis],
                method=str(attrs.method),
                coordinate_mode=str(attrs.coordinate_transformation_mode),
                rounding=str(attrs.rounding_method),
            )
        except NotAStencil as reason:
            raise RewriteRefused(f"resize: {reason}") from None
        if any(phase != ((0, 1),) for phase in stencil.taps):
            raise RewriteRefused(
                "resize is not a plain pixel repeat (interpolation or edge clamping)"
            )
        scales.append(stencil.scale)
    if scales == [1, 1]:
        raise RewriteRefused("scale 1")
    return scales


def _phase_taps(scale: int, size: int, pad: int) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Per output phase along one axis: the ``[phase taps, size]`` 0/1 matrix summing the conv's
    taps that read the same input pixel, and the phase conv's (before, after) zero padding."""
    phases = []
    for r in range(scale):
        offsets = [(r + t - pad) // scale for t in range(size)]
        low, high = min(offsets), max(offsets)
        if low > 0 or high < 0:
            raise RewriteRefused(f"padding {pad} leaves phase {r} without its own pixel")
        matrix = np.zeros((high - low + 1, size), dtype=np.float64)
        matrix[np.asarray(offsets) - low, np.arange(size)] = 1
        phases.append((matrix, (-low, high)))
    return phases
