"""Exact graph rewrites (Relax passes) that tvm-prune runs by default when compiling.

Each pass is a ``tvm.transform.Pass`` with a ``report`` list filled when it runs; the build
records the reports in the package metadata. ``--disabled-pass NAME`` skips one (TVM skips any
pass whose name is in the ``PassContext``'s disabled list).
"""

from .emit_upsample_kernels import EmitUpsampleKernels
from .lower_upsampling import LowerUpsampling


def default_rewrites() -> list:
    """The rewrites run at compile, in order, after the weights are bound."""
    return [LowerUpsampling(), EmitUpsampleKernels()]


__all__ = ["EmitUpsampleKernels", "LowerUpsampling", "default_rewrites"]
