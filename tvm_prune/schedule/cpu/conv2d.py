"""Conv2d (regular, 1x1, strided, dilated, grouped, depthwise, transposed once legalised)."""

from __future__ import annotations

import math

from tvm import s_tir, tirx
from tvm.target import Target

from . import channel_vectors
from .base import CpuParams, CpuScheduleRule, cpu_params, func_name, not_mine
from .tiling import ReductionInfo, analyse_reduction, schedule_output_tiles


class Conv2d(CpuScheduleRule):
    """Recognised by structure: two inputs, four spatial output axes, two or more reduction axes
    (``rc, ry, rx`` or ``ry, rx`` for depthwise). Output channels that fill whole vectors go in
    the vector lanes (:mod:`.channel_vectors`, the NCHWc recipe inside one kernel); otherwise,
    and for pointwise convs with few input channels, the output row is vectorised and the output
    channels register tiled (:func:`.tiling.schedule_output_tiles`).
    """

    name = "Conv2d"

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        info, reason = analyse_reduction(sch)
        if info is None:
            return not_mine(self.name, func_name(func), reason)
        if not (info.reads == 2 and len(info.spatial) == 4 and len(info.reduction) >= 2):
            return not_mine(
                self.name,
                func_name(func),
                "not a conv: needs 2 inputs, 4 spatial, >= 2 reduction axes",
            )
        params = cpu_params(target)
        if channel_vectors.applies(sch, info, params) and not _few_channel_pointwise(info, params):
            if channel_vectors.schedule_channel_vectors(sch, info, params):
                return sch
            sch = s_tir.Schedule(func)
            info, _ = analyse_reduction(sch)
        schedule_output_tiles(sch, info, params)
        return sch


# At most this many multiply-adds per output (input channels x window), a 1x1 conv spends more
# time writing its channel-vector tile back to NCHW (a transpose, element by element) than
# accumulating it; vectors along the output row write NCHW directly.
FEW_CHANNELS = 16


def _few_channel_pointwise(info: ReductionInfo, params: CpuParams) -> bool:
    """A 1x1 conv with few input channels whose output rows are whole double vectors (the
    output-tile recipe's vector tile; narrower rows waste its lanes): MobileNetV2's 16 -> 96
    expansion at 112 x 112 runs in half the time with vectors along the row."""
    reduction = [info.extents[i] for i in info.reduction]
    lanes = params.lanes(info.dtype)
    return (
        math.prod(reduction) <= FEW_CHANNELS
        and all(extent == 1 for extent in reduction[1:])
        and info.extents[info.vector_axis] % (2 * lanes) == 0
    )
