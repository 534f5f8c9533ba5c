"""Dense / matmul / batch matmul with one reduction axis."""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.target import Target

from .base import PREPROC_ATTR, CpuScheduleRule, cpu_params, func_name, not_mine
from .tiling import (
    ReductionInfo,
    analyse_reduction,
    block_work,
    parallel_if_worth,
    schedule_output_tiles,
)


class Matmul(CpuScheduleRule):
    """Recognised by structure: two inputs and one reduction axis. Vectorised along the output's
    last axis (columns), register tiled along rows when there is more than one. An input stored
    in panels of rows (``U[..., i // p, c, i % p]``: the Winograd GEMM's weights) fixes the
    register tile at ``p`` rows.

    A matrix-vector product (one output row: a classifier's dense layer) reads each weight once,
    so it runs at the speed its weights stream from memory: they are repacked into panels of the
    column tile (``[N / v, K, v]``, a layout-rewrite preprocess folded into the constant at compile
    time; a matrix computed at run time is repacked by a kernel of its own), so each tile reads
    one sequential stream, into up to ``registers - 4`` independent vector accumulators.
    MobileNetV2's 1280 -> 1000 dense layer read its row-major weights in 8-column slivers, one
    accumulator, at 1.3-1.5x ORT's time.
    """

    name = "Matmul"

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        info, reason = analyse_reduction(sch)
        if info is None:
            return not_mine(self.name, func_name(func), reason)
        if not (info.reads == 2 and len(info.reduction) == 1):
            return not_mine(
                self.name, func_name(func), "not a matmul: needs 2 inputs and 1 reduction axis"
            )
        params = cpu_params(target)
        if info.reuse_axis is None:
            columns = schedule_output_tiles(
                sch, info, params, max_vectors=params.vector_registers - 4
            )
            _pack_streamed_columns(sch, info, columns)
        else:
            schedule_output_tiles(sch, info, params, _panel_rows(sch, info))
        return sch


def _pack_streamed_columns(sch: s_tir.Schedule, info: ReductionInfo, columns: int) -> None:
    """Repack the input indexed by the output column ``j`` and the reduction ``k`` (in either
    order, as its last two axes) to ``[..., j // columns, k, j % columns]``; other inputs stay."""
    block = sch.get(info.block)
    column = block.iter_vars[info.vector_axis].var
    reduction = block.iter_vars[info.reduction[0]].var
    for index, region in enumerate(block.reads):
        last_two = [r.min for r in region.region[-2:]]
        if len(last_two) != 2 or not all(isinstance(v, tirx.Var) for v in last_two):
            continue
        if last_two[1].same_as(column) and last_two[0].same_as(reduction):
            transposed = False
        elif last_two[0].same_as(column) and last_two[1].same_as(reduction):
            transposed = True
        else:
            continue
        packed = sch.cache_read(info.block, index, "global")
        sch.annotate(packed, PREPROC_ATTR, True)

        def panels(*idx):
            k, j = (idx[-1], idx[-2]) if transposed else (idx[-2], idx[-1])
            return (*idx[:-2], j // columns, k, j % columns)

        sch.transform_layout(packed, ("write", 0), panels)
        parallel_if_worth(sch, sch.get_loops(packed)[0], block_work(sch, packed))
        return


def _panel_rows(sch: s_tir.Schedule, info: ReductionInfo) -> int | None:
    """``p`` when an input's last index is ``i % p`` of the reuse axis ``i``, else None."""
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
