"""Elementwise, broadcast, layout and padding PrimFuncs: no reduction anywhere."""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.target import Target

from .base import CpuScheduleRule, cpu_params, not_mine
from .tiling import blocks_of, is_reduction_block, schedule_injective_block


class Injective(CpuScheduleRule):
    """Inline what can be inlined, then per remaining block: parallel outer loops, vector tile.

    Recognised by structure: every block is spatial. Blocks that cannot be inlined (the outputs,
    padding with ``if_then_else``) each get the parallel + vectorised loop nest.
    """

    name = "Injective"

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        blocks = blocks_of(sch)
        if not blocks:
            return not_mine(self.name, "", "no blocks")
        if any(is_reduction_block(sch, b) for b in blocks):
            return not_mine(self.name, "", "has a reduction block")
        for block in blocks[:-1]:
            try:
                sch.compute_inline(block)
            except s_tir.ScheduleError:  # not inlinable: scheduled on its own below
                pass
        params = cpu_params(target)
        for block in blocks_of(sch):
            dtype = str(sch.get(block).writes[0].source.dtype)
            schedule_injective_block(sch, block, params, dtype)
        return sch
