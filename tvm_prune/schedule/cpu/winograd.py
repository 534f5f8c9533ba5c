"""The two transform kernels of a Winograd conv (``transform.WinogradConv2d``); its GEMM is
scheduled by ``Matmul``.

Each transform is two passes of ``alpha``-term sums with immediate coefficients, selected by
the position inside the tile. The position loops are unrolled, so each selection becomes one
fixed sum; the first pass of a tile is kept in a local ``[positions, lanes]`` buffer (registers)
that the second reads. The vector runs along tiles next to each other in a row (``tiles`` is
the GEMM's contiguous axis):

- input ``V[alpha^2, C, tile rows, tile columns]``: parallel over (channel, tile row, tile
  block); per tile block the input tiles are gathered once (read at stride ``m``), then
  ``B^T d`` and ``(B^T d) B`` with their positions unrolled, the tile block vectorised;
- output ``Y[N, K, H, W]`` with the conv's epilogue inlined: parallel over (image, channel,
  tile row); per block of tiles of the row ``M A`` then ``A^T (M A)``, positions unrolled,
  the tile block vectorised (``M`` read contiguously, ``Y`` written at stride ``m``).
"""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.target import Target

from ...transform.winograd_conv2d import TILE_ATTR, WINOGRAD_ATTR
from .base import CpuScheduleRule, cpu_params, not_mine
from .tiling import (
    block_work,
    blocks_of,
    has_if_then_else,
    inline_block,
    parallel_if_worth,
    schedule_injective_block,
    vector_tile,
)


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
    vec = vector_tile(_extent(sch, tile_col), lanes, 1)
    col_block, col_lanes = sch.split(tile_col, [None, vec])
    sch.reorder(channel, tile_row, col_block, position, col_lanes)
    work = block_work(sch, block)
    fused = sch.fuse(channel, tile_row, col_block)
    parallel_if_worth(sch, fused, work)
    sch.unroll(position)
    sch.vectorize(col_lanes)
    # first_pass before tiles: compute_at places a producer under the consumer's loop.
    _gather_tiles(sch, first_pass, fused, lambda c, row, x, i, s: (c, row, i, s, x), 2)
    _gather_tiles(sch, tiles, fused, lambda c, row, x, r, s: (c, row, r, s, x), 2)


def _schedule_output(sch: s_tir.Schedule, block, first_pass, lanes: int) -> None:
    tile = int(sch.get(block).annotations[TILE_ATTR])
    image, channel, row, col = sch.get_loops(block)
    tile_row, u = sch.split(row, [None, tile])
    tile_col, v = sch.split(col, [None, tile])
    # The image's tiles per row (14 for 56 wide), not a padded count: up to two vectors, so
    # 14 is one 8 + 4 + 2 piece rather than seven 2-lane vectors.
    vec = vector_tile(_extent(sch, tile_col), lanes, 2)
    col_block, col_lanes = sch.split(tile_col, [None, vec])
    sch.reorder(image, channel, tile_row, col_block, u, v, col_lanes)
    work = block_work(sch, block)
    parallel_if_worth(sch, sch.fuse(image, channel, tile_row), work)
    sch.unroll(u)
    sch.unroll(v)
    sch.vectorize(col_lanes)
    _gather_tiles(sch, first_pass, col_block, lambda k, row, x, i, v: (k, row, i, v, x), 2)


def _gather_tiles(sch: s_tir.Schedule, gathered, loop, lanes_last, positions_count: int) -> None:
    """The ``gathered`` tile block computed per ``loop`` iteration into a local buffer laid out
    by ``lanes_last`` (the tile index innermost: one vector per tile position), which the
    unrolled positions then read as registers instead of reloading per position."""
    sch.set_scope(gathered, 0, "local")
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


def _extent(sch: s_tir.Schedule, loop) -> int:
    return int(sch.get(loop).extent)
