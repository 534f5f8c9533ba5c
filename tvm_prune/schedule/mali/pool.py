"""Pooling on Mali: max / average windows and global pooling (one input reduced)."""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.target import Target

from ..cpu.base import func_name, not_mine
from ..cpu.tiling import analyse_reduction
from .base import MaliScheduleRule, mali_params
from .tiling import schedule_reduction_tiles

# Above this many elements per output, one work-item per output is too serial; dlight's
# cross-thread Reduction takes those (global pooling of large maps).
MAX_WINDOW = 1024


class Pool(MaliScheduleRule):
    """Recognised by structure: one input, reduced over a window of at most ``MAX_WINDOW``.
    float4 along the output's last axis when it allows.
    """

    name = "mali.Pool"

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        info, reason = analyse_reduction(sch)
        if info is None:
            return not_mine(self.name, func_name(func), reason)
        if info.reads != 1:
            return not_mine(self.name, func_name(func), "not a pool: needs exactly 1 input")
        window = 1
        for i in info.reduction:
            window *= info.extents[i]
        if window > MAX_WINDOW:
            return not_mine(self.name, func_name(func), f"window of {window} elements")
        return schedule_reduction_tiles(sch, info, mali_params(target))
