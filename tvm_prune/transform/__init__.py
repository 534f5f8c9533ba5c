"""Relax passes of tvm-prune, each a ``tvm.transform.Pass`` in its own file.

In: an ``IRModule``; out: the rewritten module. ``PruneWeights`` runs when a pruning plan is
applied, ``RemoveChannels`` when a channel plan is. The exact graph rewrites of
:func:`default_rewrites` run by default when compiling, after the weights are bound; each has a
``report`` list filled when it runs, which the build records in the package metadata.
``--disabled-pass NAME`` skips one (TVM skips any pass whose name is in the ``PassContext``'s
disabled list).
"""

from .dense_to_grouped import DenseToGroupedConv
from .emit_upsample_kernels import EmitUpsampleKernels
from .lower_conv_transpose import LowerConvTransposeToConv
from .lower_upsampling import LowerUpsampling
from .prune_weights import PruneWeights
from .remove_channels import RemoveChannels


def default_rewrites() -> list:
    """The rewrites run at compile, in order, after the weights are bound."""
    return [
        LowerUpsampling(),
        EmitUpsampleKernels(),
        LowerConvTransposeToConv(),
        DenseToGroupedConv(),
    ]


__all__ = [
    "DenseToGroupedConv",
    "EmitUpsampleKernels",
    "LowerConvTransposeToConv",
    "LowerUpsampling",
    "PruneWeights",
    "RemoveChannels",
    "default_rewrites",
]
