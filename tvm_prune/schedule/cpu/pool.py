"""Max / average pooling windows and global pooling: one input reduced over a window."""

from __future__ import annotations

import math

from tvm import s_tir, tirx
from tvm.target import Target

from .base import CpuParams, CpuScheduleRule, cpu_params, func_name, not_mine
from .depthwise import schedule_channel_window
from .tiling import (
    ReductionInfo,
    analyse_reduction,
    block_work,
    inline_around,
    parallel_if_worth,
    schedule_output_tiles,
    single_epilogue,
    vector_tile,
)

# Windows up to this many taps are unrolled in the depthwise recipe; larger (global) pools
# reduce along their rows instead.
MAX_WINDOW_TAPS = 49


class Pool(CpuScheduleRule):
    """Recognised by structure: one input, reduced. A pooling window over NCHW rows whose
    output width has a vector tile gets the depthwise conv's schedule (a per-channel window
    reduction too: the padding copied per tile, stride-2 columns de-interleaved, independent
    accumulator vectors). A global pool (one output per plane) sums each plane into a vector
    of partial sums. Other pools are vectorised along the output's last axis.
    """

    name = "Pool"

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        info, reason = analyse_reduction(sch)
        if info is None:
            return not_mine(self.name, func_name(func), reason)
        if not (info.reads == 1):
            return not_mine(self.name, func_name(func), "not a pool: needs exactly 1 input")
        params = cpu_params(target)
        lanes = params.lanes(info.dtype)
        if _is_row_window(info, lanes):
            schedule_channel_window(sch, info, params)
        elif partial_sums := _partial_sums(info, lanes):
            _schedule_plane_reduction(sch, info, params, partial_sums)
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


def _partial_sums(info: ReductionInfo, lanes: int) -> int | None:
    """Partial sums per plane for a global pool: a multiple of the vector lanes (up to 4
    vectors, independent FMA chains) dividing the plane; None for other reductions."""
    if info.extents[info.vector_axis] != 1:
        return None
    plane = math.prod(info.extents[i] for i in info.reduction)
    fitting = [d for d in range(lanes, 4 * lanes + 1, lanes) if plane % d == 0 and d < plane]
    return max(fitting, default=None)


def _schedule_plane_reduction(
    sch: s_tir.Schedule, info: ReductionInfo, params: CpuParams, partial_sums: int
) -> None:
    """The window loops fused (one contiguous plane), split into ``partial_sums`` lanes and
    factored out (``rfactor``): a vectorised sum into partial sums, then their scalar sum and
    the epilogue, per plane. One accumulator chain over the plane was latency bound (13x slower
    on a 96 x 40 x 40 mean)."""
    main = info.block
    inline_around(sch, main)
    epilogue = single_epilogue(sch, main)
    loops = sch.get_loops(main)
    work = block_work(sch, main)
    plane = sch.fuse(*[loops[i] for i in info.reduction])
    _, lanes_loop = sch.split(plane, [None, partial_sums])
    partial = sch.rfactor(lanes_loop, len(info.spatial))
    partial_loops = sch.get_loops(partial)
    fused = sch.fuse(*partial_loops[: len(info.spatial)])
    parallel_if_worth(sch, fused, work)
    plane_outer, plane_lanes = partial_loops[len(info.spatial) :]
    sch.vectorize(plane_lanes)
    sch.reverse_compute_at(sch.get_consumers(partial)[0], fused)
    if epilogue is not None:
        sch.reverse_compute_at(epilogue, fused)
    init = sch.decompose_reduction(partial, plane_outer)
    sch.vectorize(sch.get_loops(init)[-1])
