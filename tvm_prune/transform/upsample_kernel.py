"""Integer-scale resizes as fixed stencils: the per-phase taps and the transposed-conv kernel.

For an integer scale ``s`` and the coordinate transforms ``half_pixel``, ``pytorch_half_pixel``,
``asymmetric`` and ``tf_half_pixel_for_nn``, the input coordinate of output ``o = s*q + r`` is
``q + f(r)``: the same fractional offset for every output of phase ``r``. So each phase reads a
fixed small stencil of input pixels (its *taps*: offset from ``q`` and weight), and the whole
resize along one axis is

    y[s*q + r] = sum(w * x[clamp(q + d)] for d, w in taps[r])

which is a stride-``s`` transposed convolution of the edge-padded input with the kernel
``k[s*(d_max - d) + r] = w``, cropped. Index clamping at the borders (what TVM and ONNX do) is
exactly edge padding. Weights are exact rationals (``Fraction``) until they become float32.

``align_corners`` maps ``o`` to ``o * (n - 1) / (s*n - 1)``: the offset changes with ``o``, so no
fixed kernel exists and :func:`resize_stencil` refuses it, as it does cubic interpolation and
non-integer scales.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..relax_rewrite import RewriteRefused

PERIODIC_MODES = ("half_pixel", "pytorch_half_pixel", "asymmetric", "tf_half_pixel_for_nn")
ROUNDING = ("round", "round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
MAX_SCALE = 8


class NotAStencil(RewriteRefused, ValueError):
    """The resize along an axis has no fixed-kernel form; the message says why."""


@dataclass(frozen=True)
class Stencil1D:
    """One axis of an integer upsampling.

    Attributes
    ----------
    scale : int
        Output size / input size.
    taps : tuple[tuple[tuple[int, Fraction], ...], ...]
        ``taps[r]`` lists ``(offset, weight)`` for output phase ``r``; zero weights are dropped.
    """

    scale: int
    taps: tuple[tuple[tuple[int, Fraction], ...], ...]

    @property
    def min_offset(self) -> int:
        return min(d for phase in self.taps for d, _ in phase)

    @property
    def max_offset(self) -> int:
        return max(d for phase in self.taps for d, _ in phase)

    @property
    def pad(self) -> tuple[int, int]:
        """Edge padding (before, after) that makes every tap read inside the padded input."""
        return max(0, -self.min_offset), max(0, self.max_offset)

    def transposed_conv(self) -> tuple[np.ndarray, int, int]:
        """``(kernel, crop_begin, crop_end)`` of the stride-``scale`` transposed convolution of
        the edge-padded input (see the module docstring), with zero kernel ends trimmed."""
        s, d_min, d_max = self.scale, self.min_offset, self.max_offset
        pad_before, pad_after = self.pad
        kernel = np.zeros(s * (d_max - d_min + 1), dtype=np.float64)
        for r, phase in enumerate(self.taps):
            for d, w in phase:
                kernel[s * (d_max - d) + r] = float(w)
        crop_begin = s * (d_max + pad_before)
        crop_end = s * (pad_after - d_min)
        nonzero = np.flatnonzero(kernel)
        lead, trail = int(nonzero[0]), len(kernel) - 1 - int(nonzero[-1])
        return kernel[lead : len(kernel) - trail], crop_begin - lead, crop_end - trail


def resize_stencil(
    in_size: int, out_size: int, *, method: str, coordinate_mode: str, rounding: str
) -> Stencil1D:
    """The stencil of one axis of TVM's ``image.resize2d``, or :class:`NotAStencil`.

    ``method`` is ``nearest_neighbor`` or ``linear``; ``rounding`` only matters for nearest.
    """
    if out_size % in_size:
        raise NotAStencil(f"scale {out_size}/{in_size} is not an integer")
    scale = out_size // in_size
    if not 1 <= scale <= MAX_SCALE:
        raise NotAStencil(f"scale {scale} is outside 1..{MAX_SCALE}")
    if method not in ("nearest_neighbor", "linear"):
        raise NotAStencil(f"{method} interpolation has no fixed small kernel here")
    if coordinate_mode not in PERIODIC_MODES:
        raise NotAStencil(
            f"coordinate mode {coordinate_mode}: the input offset changes with the output "
            "position, so no fixed kernel reproduces it"
        )
    if method == "nearest_neighbor" and rounding not in ROUNDING:
        raise NotAStencil(f"unknown rounding {rounding}")
    taps = []
    for r in range(scale):
        offset = _input_coordinate(r, scale, out_size, coordinate_mode)
        if method == "nearest_neighbor":
            taps.append(((_round(offset, rounding), Fraction(1)),))
        else:
            low = math.floor(offset)
            frac = offset - low
            phase = ((low, 1 - frac), (low + 1, frac))
            taps.append(tuple((d, w) for d, w in phase if w != 0))
    return Stencil1D(scale=scale, taps=tuple(taps))


def _input_coordinate(o: int, scale: int, out_size: int, mode: str) -> Fraction:
    """TVM's ``get_inx`` for output index ``o`` with an integer scale, exactly."""
    inv = Fraction(1, scale)
    if mode == "half_pixel" or (mode == "pytorch_half_pixel" and out_size > 1):
        return (o + Fraction(1, 2)) * inv - Fraction(1, 2)
    if mode == "pytorch_half_pixel":
        return Fraction(0)
    if mode == "asymmetric":
        return o * inv
    return (o + Fraction(1, 2)) * inv  # tf_half_pixel_for_nn


def _round(value: Fraction, rounding: str) -> int:
    """TVM's ``get_closest_index`` (its floor/ceil epsilon cannot matter for these rationals:
    they are multiples of 1/(2*scale), at least 1/16 away from the next integer)."""
    if rounding == "round":  # half away from zero, as LLVM's round
        return (
            math.floor(value + Fraction(1, 2))
            if value >= 0
            else -math.floor(-value + Fraction(1, 2))
        )
    if rounding == "round_prefer_floor":
        return math.ceil(value - Fraction(1, 2))
    if rounding == "round_prefer_ceil":
        return math.floor(value + Fraction(1, 2))
    if rounding == "floor":
        return math.floor(value)
    return math.ceil(value)


def stencil_from_transposed_conv(
    kernel: np.ndarray, stride: int, crop_begin: int, pad_before: int
) -> Stencil1D:
    """The stencil of a stride-``stride`` transposed conv with 1-D ``kernel``, cropped by
    ``crop_begin`` at the start, of an input padded by ``pad_before`` (the inverse of
    :meth:`Stencil1D.transposed_conv`). Output ``s*q + r`` reads padded input ``q - m`` with
    weight ``kernel[s*m + r + crop_begin]``, i.e. input offset ``d = -m - pad_before``."""
    taps = []
    for r in range(stride):
        phase = []
        for m in range(-len(kernel), len(kernel) + 1):
            index = stride * m + r + crop_begin
            if 0 <= index < len(kernel) and kernel[index] != 0:
                phase.append((-m - pad_before, Fraction(float(kernel[index]))))
        if not phase:
            raise NotAStencil(f"output phase {r} reads no input (kernel shorter than the stride)")
        taps.append(tuple(sorted(phase)))
    return Stencil1D(scale=stride, taps=tuple(taps))
