"""Injective kernels on Mali: elementwise epilogues left unfused (BN + activation, residual
add), reshapes and transposes, the upsampling kernels; one output block, no reduction."""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.target import Target

from ..cpu.base import not_mine
from ..cpu.tiling import blocks_of, is_reduction_block
from .base import MaliScheduleRule, func_name, mali_params
from .tiling import bind_threads, vector_width


class Elementwise(MaliScheduleRule):
    """Recognised by structure: no reduction block and, once producers are inlined, a single
    block with static loops. Each work-item computes a float4 (float2, scalar) run of the
    output's last axis; the rest is fused into work-groups.

    A block choosing values per element (``Select``, as the upsampling kernel's phases do)
    gets its run unrolled, not vectorised: TVM 0.27's OpenCL code for a vector ``select``
    gives wrong results (seen on PoCL), and unrolled the choice folds to straight-line code.
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
        vec = vector_width(int(extents[-1]))
        outer, inner = loops[:-1], loops[-1]
        if vec > 1:
            rest, inner = sch.split(inner, [None, vec])
            outer = [*outer, rest]
        else:
            outer, inner = loops, None
        bind_threads(sch, outer, mali_params(target))
        if inner is not None:
            chooses = "Select(" in str(sch.get(block).body) or "if_then_else" in str(
                sch.get(block).body
            )
            (sch.unroll if chooses else sch.vectorize)(inner)
        return sch
