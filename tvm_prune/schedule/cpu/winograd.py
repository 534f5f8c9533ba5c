"""The two transform kernels of a Winograd conv (``transform.WinogradConv2d``); its GEMM is
scheduled by ``Matmul``.

Each transform is two passes of ``alpha``-term sums with immediate coefficients, selected by
the position inside the tile. The position loops are unrolled, so each selection becomes one
fixed sum; the first pass is kept in a small buffer (registers) that the second reads. The
vector runs along tiles next to each other in a row (``tiles`` is the GEMM's contiguous axis):

- input ``V[alpha^2, C, tile rows, tile columns]``: parallel over (channel, tile row, tile
  block); per tile block and row position ``i`` of the tile, ``B^T d`` for that row (``alpha``
  vectors, summed straight from the padded input) and then the row's ``alpha`` outputs
  ``(B^T d) B``, positions unrolled, the tile block vectorised;
- output ``Y[N, K, H, W]`` with the conv's epilogue inlined: parallel over (image, channel,
  tile row); per block of tiles of the row ``M A`` then ``A^T (M A)``, positions unrolled,
  the tile block vectorised (``M`` read contiguously, ``Y`` written at stride ``m``).

The first-pass buffers are global-scope allocations: TVM's ``LowerTVMBuiltin`` keeps global
CPU allocations under 1 KiB on the stack, where LLVM keeps them in registers, and makes every
other one a ``TVMBackendAllocWorkspace`` call, which inside a parallel loop runs once per
iteration and keeps the buffer in memory. ResNet-18's input transforms, two threads: 2.48 ->
1.80 ms in all. The output transform of a 56-wide map still takes 1344 bytes (14 tiles) and
a workspace, and still gained (0.22 -> 0.17 ms).
"""

from __future__ import annotations

import math

from tvm import s_tir, tirx
from tvm.target import Target

from ...transform.winograd_conv2d import KERNEL, TILE_ATTR, WINOGRAD_ATTR
from .base import CpuScheduleRule, cpu_params, not_mine
from .tiling import (
    block_work,
    blocks_of,
    has_if_then_else,
    inline_block,
    loop_extent,
    parallel_if_worth,
    schedule_injective_block,
    vector_tile,
)

# A transform term (a tile element read at stride ``m`` and multiplied into a sum) costs about
# as much as 16 multiply-adds of a conv: ResNet's smallest transform (512 x 7 x 7 outputs,
# 0.2 million terms) took 53 us on one core, where 0.5 million conv multiply-adds take 5-10 us.
# Every transform of ResNet-18 ran faster on two threads (53 -> 22 us for that one).
TERM_COST = 16


class WinogradTransform(CpuScheduleRule):
    """Recognised by the block annotations ``WinogradConv2d`` puts on its transform blocks."""

    name = "WinogradTransform"

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        marked = {
            str(sch.get(b).annotations[WINOGRAD_ATTR]): b
            for b in blocks_of(sch)
            if WINOGRAD_ATTR in sch.get(b).annotations
        }
        kind = "input" if "input" in marked else "output"
        if kind not in marked:
            return not_mine(self.name, "", "no Winograd transform block")
        block = marked[kind]
        params = cpu_params(target)
        dtype = str(sch.get(block).writes[0].source.dtype)
        for other in blocks_of(sch):
            if not any(sch.get(other).same_as(sch.get(b)) for b in marked.values()):
                # A bias reshape into its consumer; the conv's epilogue (bias, BN,
                # activation, residual) into the output transform.
                inline_block(sch, other)
        rest = [
            b
            for b in blocks_of(sch)
            if not any(sch.get(b).same_as(sch.get(m)) for m in marked.values())
        ]
        if not all(has_if_then_else(sch, b) for b in rest):
            return not_mine(self.name, "", "an epilogue that does not inline")
        for padding in rest:
            schedule_injective_block(sch, padding, params, dtype)
        lanes = params.lanes(dtype)
        if kind == "input":
            _schedule_input(sch, block, marked["tiles"], marked["gather"], lanes)
        else:
            _schedule_output(sch, block, marked["gather"], lanes)
        return sch


def _schedule_input(sch: s_tir.Schedule, block, tiles, first_pass, lanes: int) -> None:
    position, channel, tile_row, tile_col = sch.get_loops(block)
    alpha = math.isqrt(loop_extent(sch, position))
    vec = vector_tile(loop_extent(sch, tile_col), lanes, 1)
    col_block, col_lanes = sch.split(tile_col, [None, vec])
    row_position, col_position = sch.split(position, [alpha, alpha])
    sch.reorder(channel, tile_row, col_block, row_position, col_position, col_lanes)
    work = _transform_work(sch, block, alpha)
    fused = sch.fuse(channel, tile_row, col_block)
    parallel_if_worth(sch, fused, work)
    sch.unroll(row_position)
    sch.unroll(col_position)
    sch.vectorize(col_lanes)
    # The first pass of one row of the tile (alpha vectors) per row position: the whole tile
    # gathered (alpha^2 vectors, 1152 bytes for F(4 x 4)) would not fit the 1 KiB a stack
    # buffer may take. Its taps read the padded input directly (L1) instead of a tile copy.
    sch.compute_inline(tiles)
    _gather_tiles(sch, first_pass, row_position, lambda c, row, x, i, s: (c, row, i, s, x), 1)


def _schedule_output(sch: s_tir.Schedule, block, first_pass, lanes: int) -> None:
    tile = int(sch.get(block).annotations[TILE_ATTR])
    image, channel, row, col = sch.get_loops(block)
    tile_row, u = sch.split(row, [None, tile])
    tile_col, v = sch.split(col, [None, tile])
    # The image's tiles per row (14 for 56 wide), not a padded count: up to two vectors, so
    # 14 is one 8 + 4 + 2 piece rather than seven 2-lane vectors.
    vec = vector_tile(loop_extent(sch, tile_col), lanes, 2)
    col_block, col_lanes = sch.split(tile_col, [None, vec])
    sch.reorder(image, channel, tile_row, col_block, u, v, col_lanes)
    work = _transform_work(sch, block, tile + KERNEL - 1)
    parallel_if_worth(sch, sch.fuse(image, channel, tile_row), work)
    sch.unroll(u)
    sch.unroll(v)
    sch.vectorize(col_lanes)
    _gather_tiles(sch, first_pass, col_block, lambda k, row, x, i, v: (k, row, i, v, x), 2)


def _gather_tiles(sch: s_tir.Schedule, gathered, loop, lanes_last, positions_count: int) -> None:
    """The ``gathered`` tile block computed per ``loop`` iteration into a buffer laid out
    by ``lanes_last`` (the tile index innermost: one vector per tile position), which the
    unrolled positions then read as registers instead of reloading per position."""
    sch.transform_layout(gathered, ("write", 0), lanes_last)
    sch.compute_at(gathered, loop)
    # compute_at makes loops for the extents above 1 only: no lane loop for a 1-tile vector.
    loops = sch.get_loops(gathered)
    under = [sch.get(outer).same_as(sch.get(loop)) for outer in loops].index(True) + 1
    inner = loops[under:]
    positions = inner[-positions_count:]
    for position in positions:
        sch.unroll(position)
    if len(inner) > positions_count:
        sch.reorder(*positions, inner[0])
        sch.vectorize(inner[0])


def _transform_work(sch: s_tir.Schedule, block, alpha: int) -> int:
    """Conv multiply-adds a transform's time is worth: two passes of ``alpha`` terms per
    element, at ``TERM_COST`` each."""
    return block_work(sch, block) * 2 * alpha * TERM_COST
