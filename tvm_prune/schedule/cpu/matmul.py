"""Dense / matmul / batch matmul with one reduction axis."""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.target import Target

from .base import CpuScheduleRule, cpu_params, not_mine
from .tiling import ReductionInfo, analyse_reduction, schedule_output_tiles


class Matmul(CpuScheduleRule):
    """Recognised by structure: two inputs and one reduction axis. Vectorised along the output's
    last axis (columns), register tiled along rows when there is more than one. An input stored
    in panels of rows (``U[..., i // p, c, i % p]``: the Winograd GEMM's weights) fixes the
    register tile at ``p`` rows.
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
        schedule_output_tiles(sch, info, cpu_params(target), _panel_rows(sch, info))
        return sch


def _panel_rows(sch: s_tir.Schedule, info: ReductionInfo) -> int | None:
    """``p`` when an input's last index is ``i % p`` of the reuse axis ``i``, else None."""
    if info.reuse_axis is None:
        return None
    block = sch.get(info.block)
    row = block.iter_vars[info.reuse_axis].var
    for region in block.reads:
        last = region.region[-1].min
        if (
            isinstance(last, tirx.FloorMod)
            and last.a.same_as(row)
            and isinstance(last.b, tirx.IntImm)
            and info.extents[info.reuse_axis] % int(last.b) == 0
        ):
            return int(last.b)
    return None


def _name(func: tirx.PrimFunc) -> str:
    return str(func.attrs.get("global_symbol", "")) if func.attrs else ""
