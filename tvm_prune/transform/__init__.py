"""Relax passes of tvm-prune, each a ``tvm.transform.Pass`` in its own file.

In: an ``IRModule``; out: the rewritten module. ``PruneWeights`` runs when a pruning plan is
applied, ``RemoveChannels`` when a channel plan is. The exact graph rewrites of
:func:`default_rewrites` run by default when compiling, after the weights are bound; each has a
``report`` list filled when it runs, which the build records in the package metadata.
``--disabled-pass NAME`` skips one (TVM skips any pass whose name is in the ``PassContext``'s
disabled list).
"""

from ..target.presets import TargetPreset
from .dense_to_grouped import DenseToGroupedConv
from .emit_upsample_kernels import EmitUpsampleKernels
from .fold_batch_norm import FoldBatchNormIntoConv
from .fold_upsample_into_conv import FoldUpsampleIntoConv
from .lower_conv_transpose import LowerConvTransposeToConv
from .lower_upsampling import LowerUpsampling
from .prune_weights import PruneWeights
from .regroup_conv import RegroupConv
from .remove_channels import RemoveChannels
from .winograd_conv2d import WinogradConv2d


def default_rewrites(preset: TargetPreset | None = None) -> list:
    """The rewrites run at compile, in order, after the weights are bound; ``RegroupConv`` too
    when ``preset`` declares which conv groupings it runs, then ``WinogradConv2d`` when it
    declares which convs it runs as Winograd."""
    rewrites = [
        FoldBatchNormIntoConv(),
        FoldUpsampleIntoConv(),
        LowerUpsampling(),
        EmitUpsampleKernels(),
        LowerConvTransposeToConv(),
        DenseToGroupedConv(),
    ]
    if preset is not None and preset.conv_groups is not None:
        rewrites.append(RegroupConv(preset.conv_groups))
    if preset is not None and preset.winograd is not None:
        rewrites.append(WinogradConv2d(preset.winograd.tiles, preset.winograd.min_channels))
    return rewrites


__all__ = [
    "DenseToGroupedConv",
    "EmitUpsampleKernels",
    "FoldBatchNormIntoConv",
    "FoldUpsampleIntoConv",
    "LowerConvTransposeToConv",
    "LowerUpsampling",
    "PruneWeights",
    "RegroupConv",
    "RemoveChannels",
    "WinogradConv2d",
    "default_rewrites",
]
