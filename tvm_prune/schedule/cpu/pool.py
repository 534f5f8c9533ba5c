"""Max / sum pooling windows and global pooling: one input reduced over a window."""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.target import Target

from .base import CpuScheduleRule, cpu_params, not_mine
from .tiling import analyse_reduction, schedule_output_tiles


class Pool(CpuScheduleRule):
    """Recognised by structure: one input, reduced. Vectorised along the output's last axis,
    parallel over the rest.
    """

    name = "Pool"

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        info, reason = analyse_reduction(sch)
        if info is None:
            return not_mine(self.name, _name(func), reason)
        if not (info.reads == 1):
            return not_mine(self.name, _name(func), "not a pool: needs exactly 1 input")
        schedule_output_tiles(sch, info, cpu_params(target))
        return sch


def _name(func: tirx.PrimFunc) -> str:
    return str(func.attrs.get("global_symbol", "")) if func.attrs else ""
