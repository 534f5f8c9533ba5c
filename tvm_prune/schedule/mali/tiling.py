"""The thread-tile recipe the Mali rules share.

Every work-item computes a register tile of the output: ``VECTOR`` consecutive elements along
the output's last axis (float4 stores when the row is whole float4s) times ``VECTOR`` output
channels when one input does not depend on them (channel blocking: each input value loaded
serves four channels). The remaining output axes are fused, split into work-groups of at most
``MaliParams.work_group`` work-items (a divisor of the work, so no guard is needed) and bound
to ``blockIdx.x`` / ``threadIdx.x``. The accumulator tile lives in registers (``local``) and
the fused epilogue (bias, BN, activation, residual add) is applied as it is written back.
For windowed reductions (conv, pool) the input row segment a tile needs for one window row is
staged in registers with its padding checks (``_stage_input_rows``) and read by every tap and
channel from there; padding and dilation (transposed conv) are inlined into that staging, so
no padded copy is materialised. Input loads are float4 only where the staged row is one
unpadded float4 (1x1 convs): padded rows are loaded element by element, the price of fusing
the padding.
"""

from __future__ import annotations

import math

from tvm import s_tir

from ..cpu.tiling import ReductionInfo, blocks_of, is_reduction_block, uses_var
from .base import VECTOR, MaliParams


def vector_width(extent: int) -> int:
    """float4 when the row is whole float4s, else float2, else scalar (keeps accesses aligned)."""
    return next(w for w in (VECTOR, 2, 1) if extent % w == 0)


def inline_producers(sch: s_tir.Schedule, main, keep=()) -> None:
    """Inline every spatial block feeding others (padding, dilation) into its consumers,
    except ``main`` and the blocks in ``keep``."""
    # Names, not statements: inlining into a kept block replaces its statement.
    kept = {sch.get(b).name_hint for b in (main, *keep)}
    for block in blocks_of(sch):
        if sch.get(block).name_hint in kept or is_reduction_block(sch, block):
            continue
        if list(sch.get_consumers(block)):
            try:
                sch.compute_inline(block)
            except s_tir.ScheduleError:
                pass


def inline_epilogue(sch: s_tir.Schedule, writer) -> None:
    """Fold the blocks consuming ``writer``'s output into it, one after another, while each
    writes a tensor of the same shape (a broadcasting consumer, as a squeeze-excite scale,
    stays a block of its own)."""
    while True:
        consumers = list(sch.get_consumers(writer))
        if len(consumers) != 1 or _out_shape(sch, consumers[0]) != _out_shape(sch, writer):
            return
        try:
            sch.reverse_compute_inline(consumers[0])
        except s_tir.ScheduleError:
            return


def _out_shape(sch: s_tir.Schedule, block) -> list[int]:
    return [int(d) for d in sch.get(block).writes[0].source.shape]


def bind_threads(sch: s_tir.Schedule, loops: list, params: MaliParams, *, exact: bool):
    """Fuse ``loops`` and bind them to work-groups of at most ``params.work_group``; returns
    the thread loop. ``exact``: the work-group size divides the work (no guard), for blocks
    computed at the thread loop, which would not inherit the guard and write out of bounds."""
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    total = int(sch.get(fused).extent)
    if exact:
        threads = max(d for d in range(1, min(total, params.work_group) + 1) if total % d == 0)
    else:
        threads = min(params.work_group, 1 << max(0, (total - 1).bit_length()))
    block, thread = sch.split(fused, [None, threads])
    sch.bind(block, "blockIdx.x")
    sch.bind(thread, "threadIdx.x")
    return thread


def schedule_reduction_tiles(
    sch: s_tir.Schedule, info: ReductionInfo, params: MaliParams
) -> s_tir.Schedule | None:
    """The recipe of the module docstring for the reduction block ``info`` describes, or None
    when the epilogue cannot be folded into the write-back."""
    main = info.block
    # The epilogue collapses to one block; padding stays until the input rows are staged.
    inline_producers(sch, main, keep=sch.get_producers(main))
    vec = vector_width(info.extents[info.vector_axis])
    reuse = info.reuse_axis is not None
    reg = vector_width(info.extents[info.reuse_axis]) if reuse else 1

    loops = sch.get_loops(main)
    outer, tiles = [], []
    for i in info.spatial:
        if i == info.vector_axis:
            o, vec_loop = sch.split(loops[i], [None, vec])
            outer.append(o)
        elif reuse and i == info.reuse_axis:
            o, t = sch.split(loops[i], [None, reg])
            outer.append(o)
            tiles.append(t)
        else:
            outer.append(loops[i])
    red = [loops[i] for i in info.reduction]
    sch.reorder(*outer, *red, *tiles, vec_loop)
    thread = bind_threads(sch, outer, params, exact=True)

    writer = sch.cache_write(main, 0, "local")
    sch.reverse_compute_at(writer, thread, preserve_unit_loops=True)
    inline_epilogue(sch, writer)
    # Windowed reductions (conv, pool) stage the input row a tile needs per window row in
    # registers: loaded once (padding checks included), used by every tap and channel.
    rows = _stage_input_rows(sch, info, red) if len(red) >= 2 else None
    inline_producers(sch, main, keep=[writer] + ([rows] if rows is not None else []))
    if len(blocks_of(sch)) != 2 + (rows is not None):
        # An epilogue that broadcasts (a squeeze-excite scale) would need its own kernel and
        # a global intermediate: left to dlight, which fuses it differently.
        return None
    # Vectorised while the block is still a whole reduction; the init copies the loop kinds.
    if vec > 1:
        sch.vectorize(vec_loop)
    sch.decompose_reduction(main, red[0])

    # Small kernel windows unrolled (registers re-used across taps).
    window = red[1:]
    if window and math.prod(int(sch.get(loop).extent) for loop in window) <= 9:
        for loop in window:
            sch.unroll(loop)
    for tile in tiles:
        sch.unroll(tile)
    if rows is not None:
        # A row without padding checks that is one float4 (1x1 convs) is loaded as one.
        *row_outer, row_inner = sch.get_loops(rows)[-len(info.spatial) :]
        checked = "if_then_else" in str(sch.get(rows).body)
        for loop in row_outer:
            if int(sch.get(loop).extent) > 1:
                sch.unroll(loop)
        if vec > 1 and not checked and int(sch.get(row_inner).extent) == vec:
            sch.vectorize(row_inner)
        elif int(sch.get(row_inner).extent) > 1:
            sch.unroll(row_inner)
    # The write-back: float4 stores, the channel tile unrolled.
    *writer_tiles, writer_vec = sch.get_loops(writer)[-len(info.spatial) :]
    for loop in writer_tiles:
        if int(sch.get(loop).extent) > 1:
            sch.unroll(loop)
    if vec > 1:
        sch.vectorize(writer_vec)
    return sch


def bind_spatial_block(sch: s_tir.Schedule, block, params: MaliParams) -> None:
    """One float4 (float2, scalar) run of the output's last axis per work-item, the rest fused
    into work-groups. A block choosing values per element (``Select``, ``if_then_else``, as the
    upsampling kernel's phases do) gets its run unrolled, not vectorised: TVM 0.27's OpenCL
    code for a vector ``select`` gives wrong results (seen on PoCL), and unrolled the choice
    folds to straight-line code."""
    loops = sch.get_loops(block)
    vec = vector_width(int(sch.get(loops[-1]).extent))
    if vec == 1:
        bind_threads(sch, loops, params, exact=False)
        return
    rest, inner = sch.split(loops[-1], [None, vec])
    bind_threads(sch, [*loops[:-1], rest], params, exact=False)
    body = str(sch.get(block).body)
    if "Select(" in body or "if_then_else" in body:
        sch.unroll(inner)
    else:
        sch.vectorize(inner)


def _stage_input_rows(sch: s_tir.Schedule, info: ReductionInfo, red: list):
    """A ``local`` copy of the input region the tile reads in one window row (at the window's
    row loop), or None if no input is indexed by the output's row axis."""
    stmt = sch.get(info.block)
    along = stmt.iter_vars[info.vector_axis].var
    written = stmt.writes[0].source
    index = next(
        (
            i
            for i, region in enumerate(stmt.reads)
            if not region.source.same_as(written) and uses_var(region, along)
        ),
        None,
    )
    if index is None:
        return None
    rows = sch.cache_read(info.block, index, "local")
    sch.compute_at(rows, red[-2], preserve_unit_loops=True)
    return rows
