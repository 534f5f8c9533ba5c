"""Conv2d on Mali: regular, 1x1, strided, dilated, grouped, depthwise, and conv2d_transpose
(legalised to a dilation + padding feeding the same reduction)."""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.target import Target

from ..cpu.base import func_name, not_mine
from ..cpu.tiling import analyse_reduction
from .base import MaliScheduleRule, mali_params
from .tiling import schedule_reduction_tiles


class Conv2d(MaliScheduleRule):
    """Recognised by structure: two inputs, four spatial output axes, two or more reduction axes
    (``rc, ry, rx``; ``ry, rx`` for depthwise). float4 along output width, blocked by four
    output channels when the input does not depend on them (not depthwise or grouped).
    """

    name = "mali.Conv2d"

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        info, reason = analyse_reduction(sch)
        if info is None:
            return not_mine(self.name, func_name(func), reason)
        if not (info.reads == 2 and len(info.spatial) == 4 and len(info.reduction) >= 2):
            return not_mine(
                self.name, func_name(func), "not a conv: needs 2 inputs, 4 spatial, >= 2 reduction"
            )
        return schedule_reduction_tiles(sch, info, mali_params(target))
