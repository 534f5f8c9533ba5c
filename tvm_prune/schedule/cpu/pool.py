"""Max / average pooling windows and global pooling: one input reduced over a window."""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.target import Target

from .base import CpuScheduleRule, cpu_params, not_mine
from .depthwise import schedule_channel_window
from .tiling import ReductionInfo, analyse_reduction, schedule_output_tiles, vector_tile

# Windows up to this many taps are unrolled in the depthwise recipe; larger (global) pools
# reduce along their rows instead.
MAX_WINDOW_TAPS = 49


class Pool(CpuScheduleRule):
    """Recognised by structure: one input, reduced. A pooling window over NCHW rows whose
    output width has a vector tile gets the depthwise conv's schedule (a per-channel window
    reduction too: the padding copied per tile, stride-2 columns de-interleaved, independent
    accumulator vectors); other pools are vectorised along the output's last axis.
    """

    name = "Pool"

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        info, reason = analyse_reduction(sch)
        if info is None:
            return not_mine(self.name, _name(func), reason)
        if not (info.reads == 1):
            return not_mine(self.name, _name(func), "not a pool: needs exactly 1 input")
        params = cpu_params(target)
        if _is_row_window(info, params.lanes(info.dtype)):
            schedule_channel_window(sch, info, params)
        else:
            schedule_output_tiles(sch, info, params)
        return sch


def _is_row_window(info: ReductionInfo, lanes: int) -> bool:
    """A 2-D window over the last two axes of a 4-D output with a vector tile along its rows."""
    window = [info.extents[i] for i in info.reduction]
    return (
        len(info.spatial) == 4
        and len(info.reduction) == 2
        and info.vector_axis == info.spatial[-1]
        and window[0] * window[1] <= MAX_WINDOW_TAPS
        and vector_tile(info.extents[info.vector_axis], lanes, 2) > 1
    )


def _name(func: tirx.PrimFunc) -> str:
    return str(func.attrs.get("global_symbol", "")) if func.attrs else ""
