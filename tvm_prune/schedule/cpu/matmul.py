"""Dense / matmul / batch matmul with one reduction axis."""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.target import Target

from .base import CpuScheduleRule, cpu_params, not_mine
from .tiling import analyse_reduction, schedule_output_tiles


class Matmul(CpuScheduleRule):
    """Recognised by structure: two inputs and one reduction axis. Vectorised along the output's
    last axis (columns), register tiled along rows when there is more than one.
    """

    name = "Matmul"

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        info, reason = analyse_reduction(sch)
        if info is None:
            return not_mine(self.name, _name(func), reason)
        if not (info.reads == 2 and len(info.reduction) == 1):
            return not_mine(
                self.name, _name(func), "not a matmul: needs 2 inputs and 1 reduction axis"
            )
        schedule_output_tiles(sch, info, cpu_params(target))
        return sch


def _name(func: tirx.PrimFunc) -> str:
    return str(func.attrs.get("global_symbol", "")) if func.attrs else ""
