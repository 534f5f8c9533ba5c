"""Injective kernels on Mali: elementwise epilogues left unfused (BN + activation, residual
add), reshapes and transposes, the upsampling kernels; one output block, no reduction."""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.target import Target

from ..cpu.base import func_name, not_mine
from ..cpu.tiling import blocks_of, is_reduction_block
from .base import MaliScheduleRule, mali_params
from .tiling import bind_spatial_block


class Elementwise(MaliScheduleRule):
    """Recognised by structure: no reduction block and, once producers are inlined, a single
    block with static loops. Each work-item computes a float4 (float2, scalar) run of the
    output's last axis; the rest is fused into work-groups (``tiling.bind_spatial_block``).
    """

    name = "mali.Elementwise"

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        blocks = blocks_of(sch)
        if not blocks or any(is_reduction_block(sch, b) for b in blocks):
            return not_mine(self.name, func_name(func), "has a reduction (or no block)")
        for block in blocks[:-1]:
            try:
                sch.compute_inline(block)
            except s_tir.ScheduleError:
                return not_mine(self.name, func_name(func), "a block that cannot be inlined")
        (block,) = blocks_of(sch)
        loops = sch.get_loops(block)
        extents = [sch.get(loop).extent for loop in loops]
        if not loops or not all(isinstance(e, tirx.IntImm) for e in extents):
            return not_mine(self.name, func_name(func), "no loops or symbolic extents")
        bind_spatial_block(sch, block, mali_params(target))
        return sch
