"""Dense / matmul on Mali: ``Y[i, j] = sum_k X[i, k] W[k, j]`` (and batched forms)."""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.target import Target

from ..cpu.base import func_name, not_mine
from ..cpu.tiling import analyse_reduction
from .base import MaliScheduleRule, mali_params
from .tiling import schedule_reduction_tiles


class Dense(MaliScheduleRule):
    """Recognised by structure: two inputs, one reduction axis. float4 along the output's
    columns, blocked by four rows when there are rows to block.
    """

    name = "mali.Dense"

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        info, reason = analyse_reduction(sch)
        if info is None:
            return not_mine(self.name, func_name(func), reason)
        if not (info.reads == 2 and len(info.reduction) == 1 and len(info.spatial) >= 2):
            return not_mine(self.name, func_name(func), "not a dense: needs 2 inputs, 1 reduction")
        return schedule_reduction_tiles(sch, info, mali_params(target))
