"""Shared analysis and scheduling steps for the CPU rules.

``ReductionInfo`` describes the one reduction block of a conv/matmul/pool PrimFunc by structure
(iterator kinds and buffer indices, never block names). ``schedule_output_tiles`` is the one
blocking recipe the reduction rules share:

- the innermost output axis is split into a vector tile (``vec``, vectorised);
- an output axis that one input does not depend on (output channels of a conv, rows of a
  matmul) is split into a register tile (``reg``, unrolled), so each input vector loaded is
  reused ``reg`` times from registers;
- the reduction loops go between the outer tiles and the register tile, the outer tiles are
  fused and run in parallel, and the accumulator tile lives in a small per-tile buffer;
- the fused epilogue (bias, BN, activation) is computed per tile, right after its reduction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tvm import s_tir, sym, tirx

from .base import CpuParams


@dataclass(frozen=True)
class ReductionInfo:
    """The reduction block of a PrimFunc and the roles of its iterators."""

    block: s_tir.schedule.SBlockRV
    spatial: tuple[int, ...]  # positions of spatial iterators, in loop order
    reduction: tuple[int, ...]
    extents: tuple[int, ...]
    vector_axis: int  # position of the iterator indexing the output's last dimension
    reuse_axis: int | None  # a spatial iterator one input does not depend on
    reads: int  # number of input buffers
    dtype: str


def blocks_of(sch: s_tir.Schedule) -> list[s_tir.schedule.SBlockRV]:
    return list(sch.get_child_blocks(sch.get_sblock("root")))


def is_reduction_block(sch: s_tir.Schedule, block) -> bool:
    return any(iv.iter_type == tirx.IterVar.CommReduce for iv in sch.get(block).iter_vars)


def has_if_then_else(sch: s_tir.Schedule, block) -> bool:
    return "if_then_else" in str(sch.get(block).body)


def analyse_reduction(sch: s_tir.Schedule) -> tuple[ReductionInfo | None, str]:
    """The single reduction block with plain loops, or None and the reason."""
    reductions = [b for b in blocks_of(sch) if is_reduction_block(sch, b)]
    if len(reductions) != 1:
        return None, f"{len(reductions)} reduction blocks"
    block = reductions[0]
    stmt = sch.get(block)
    loops = sch.get_loops(block)
    if len(loops) != len(stmt.iter_vars):
        return None, "loops do not match the block iterators"
    binding = _block_bindings(sch, block)
    if binding is None:
        return None, "block iterators are not bound to plain loop variables"
    extents = []
    for loop in loops:
        extent = sch.get(loop).extent
        if not isinstance(extent, tirx.IntImm):
            return None, "symbolic loop extent"
        extents.append(int(extent))
    spatial = tuple(
        i for i, iv in enumerate(stmt.iter_vars) if iv.iter_type == tirx.IterVar.DataPar
    )
    reduction = tuple(
        i for i, iv in enumerate(stmt.iter_vars) if iv.iter_type == tirx.IterVar.CommReduce
    )
    if len(spatial) + len(reduction) != len(stmt.iter_vars) or not reduction:
        return None, "iterators other than spatial and reduction"
    if len(stmt.writes) != 1:
        return None, "more than one output"
    write = stmt.writes[0]
    if not write.region:
        return None, "a scalar output"
    last = write.region[-1].min
    vars_ = [iv.var for iv in stmt.iter_vars]
    vector_axis = next((i for i in spatial if last.same_as(vars_[i])), None)
    if vector_axis is None:
        return None, "the output's last index is not a spatial iterator"
    inputs = [r for r in stmt.reads if not r.source.same_as(write.source)]
    streamed = [r for r in inputs if uses_var(r, vars_[vector_axis])]
    reuse_axis = None
    best = 1
    for i in spatial:
        if i == vector_axis or extents[i] <= best:
            continue
        if streamed and not all(uses_var(r, vars_[i]) for r in streamed):
            reuse_axis, best = i, extents[i]
    return (
        ReductionInfo(
            block=block,
            spatial=spatial,
            reduction=reduction,
            extents=tuple(extents),
            vector_axis=vector_axis,
            reuse_axis=reuse_axis,
            reads=len(inputs),
            dtype=str(write.source.dtype),
        ),
        "",
    )


def _block_bindings(sch, block):
    realize = realize_of(sch, block)
    loops = [sch.get(loop).loop_var for loop in sch.get_loops(block)]
    if realize is None or len(realize.iter_values) != len(loops):
        return None
    for value, var in zip(realize.iter_values, loops, strict=True):
        if not (isinstance(value, tirx.Var) and value.same_as(var)):
            return None
    return realize


def realize_of(sch, block):
    loops = sch.get_loops(block)
    body = sch.get(loops[-1]).body if loops else None
    target = sch.get(block)
    if isinstance(body, s_tir.SBlockRealize) and body.block.same_as(target):
        return body
    return None


def uses_var(region, var) -> bool:
    return any(
        any(v.same_as(var) for v in tirx.analysis.undefined_vars(r.min)) for r in region.region
    )


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def vector_pieces(width: int, lanes: int) -> int:
    """Vector instructions LLVM splits a ``width``-element row into (8 + 4 + 2 for 14 of 8)."""
    return width // lanes + bin(width % lanes).count("1")


def vector_tile(extent: int, lanes: int, max_vectors: int) -> int:
    """A divisor of ``extent`` up to ``max_vectors`` vectors with the most lanes per instruction.

    Ties go to the wider tile. Rows that are neither whole vectors nor a power of two (7, 14,
    28 floats) are loaded by LLVM lane by lane, so they count double: 56 on AVX2 gives 8,
    28 gives 4 (one SSE vector), 14 stays 14 (2 lanes would be worse).
    """

    def lanes_per_instruction(d: int) -> float:
        clean = d % lanes == 0 or d & (d - 1) == 0
        return d / vector_pieces(d, lanes) / (1 if clean else 2)

    candidates = [d for d in divisors(extent) if d <= lanes * max_vectors]
    return max(candidates, key=lambda d: (lanes_per_instruction(d), d))


def largest_divisor_at_most(extent: int, limit: int) -> int:
    """The largest divisor of ``extent`` not above ``limit``."""
    return max(d for d in divisors(extent) if d <= max(1, limit))


def inline_around(sch: s_tir.Schedule, main) -> None:
    """Inline every other block that can be, except padding (kept as its own copy loop)."""
    for block in blocks_of(sch):
        if not (sch.get(block).same_as(sch.get(main)) or is_reduction_block(sch, block)):
            inline_block(sch, block)


def inline_block(sch: s_tir.Schedule, block) -> None:
    """Inline ``block`` into its consumer, else into its producer (an epilogue); padding and
    blocks that inline neither way stay as they are."""
    if has_if_then_else(sch, block):
        return
    try:
        sch.compute_inline(block)
    except s_tir.ScheduleError:
        try:
            sch.reverse_compute_inline(block)
        except s_tir.ScheduleError:
            pass


def single_epilogue(sch: s_tir.Schedule, main):
    """The one block consuming ``main``'s output (a write cache if nothing does), else None."""
    consumers = list(sch.get_consumers(main))
    if not consumers:
        sch.cache_write(main, 0, "global")
        consumers = list(sch.get_consumers(main))
    return consumers[0] if len(consumers) == 1 else None


def schedule_injective_block(sch: s_tir.Schedule, block, params: CpuParams, dtype: str) -> None:
    """Parallel outer loops, vectorised inner tile: the fallback for spatial blocks (a zero
    padding copy gets its edges split off first, see ``_schedule_padding_copy``)."""
    if has_if_then_else(sch, block) and _schedule_padding_copy(sch, block, params):
        return
    loops = sch.get_loops(block)
    if not loops:
        return
    extents = [sch.get(loop).extent for loop in loops]
    if not all(isinstance(e, tirx.IntImm) for e in extents):
        return
    inner_extent = int(extents[-1])
    lanes = params.lanes(dtype)
    inner = loops[-1]
    outer = loops[:-1]
    if inner_extent > 4 * lanes:
        tile = vector_tile(inner_extent, lanes, 4)
        if tile >= lanes // 2:
            outer_part, inner = sch.split(inner, [None, tile])
            outer = [*outer, outer_part]
    if outer:
        work = block_work(sch, block)
        fused = sch.fuse(*outer) if len(outer) > 1 else outer[0]
        parallel_if_worth(sch, fused, work)
    if int(sch.get(inner).extent) > 1:
        sch.vectorize(inner)


def _schedule_padding_copy(sch: s_tir.Schedule, block, params: CpuParams) -> bool:
    """Schedule a copy of an input into a buffer padded along its last two axes; False (the
    schedule untouched) for any other block.

    The rows and columns of padding are split off the loops (``loop_partition``), so the
    interior rows copy their interior columns with no condition left: whole-vector loads and
    stores instead of a per-lane select (a 96 x 160 x 160 input padded by one: 1.45 -> 0.73
    ms on one thread). The planes (outer axes) run in parallel.
    """
    stmt = sch.get(block)
    loops = sch.get_loops(block)
    if len(stmt.reads) != 1 or len(loops) != len(stmt.iter_vars) or len(loops) < 3:
        return False
    extents = [sch.get(loop).extent for loop in loops]
    if not all(isinstance(e, tirx.IntImm) for e in extents):
        return False
    read = stmt.reads[0]
    source_shape = [int(d) for d in read.source.shape]
    if len(source_shape) != len(loops):
        return False
    pads = []
    for axis, iter_var in enumerate(stmt.iter_vars):
        coefficients = sym.detect_linear_equation(read.region[axis].min, [iter_var.var])
        if len(coefficients) != 2 or not all(isinstance(c, tirx.IntImm) for c in coefficients):
            return False
        scale, offset = (int(c) for c in coefficients)
        before = -offset
        after = int(extents[axis]) - source_shape[axis] - before
        if scale != 1 or before < 0 or after < 0:
            return False
        pads.append((before, after))
    if any(pad != (0, 0) for pad in pads[:-2]):
        return False
    outer = loops[:-2]
    fused = sch.fuse(*outer) if len(outer) > 1 else outer[0]
    parallel_if_worth(sch, fused, block_work(sch, block))
    interior_rows = _partition(sch, loops[-2], *pads[-2])
    (interior,) = sch.get_child_blocks(interior_rows)
    interior_columns = _partition(sch, sch.get_loops(interior)[-1], *pads[-1])
    sch.vectorize(interior_columns)
    return True


def _partition(sch: s_tir.Schedule, loop, before: int, after: int):
    """Split ``before`` and ``after`` iterations off ``loop``; the middle loop."""
    if not (before or after):
        return loop
    middle = loop_extent(sch, loop) - before - after  # the input's extent: never empty
    factors = ([before] if before else []) + ([middle, None] if after else [None])
    return sch.loop_partition(loop, factors)[1 if before else 0]


# Below this many loop iterations (all loops of a block: multiply-adds of a conv, elements of a
# copy), a parallel launch costs more than it saves: waking the pool's other thread takes 5-10 us
# here, about what half a million multiply-adds take on one core. Small kernels (the digits CNN,
# paddings) stay on the calling thread.
MIN_PARALLEL_WORK = 1 << 19


def block_work(sch: s_tir.Schedule, block) -> int:
    """Iterations of all loops around ``block``."""
    return math.prod(loop_extent(sch, loop) for loop in sch.get_loops(block))


def parallel_if_worth(sch: s_tir.Schedule, loop, work: int) -> None:
    if work >= MIN_PARALLEL_WORK and loop_extent(sch, loop) > 1:
        sch.parallel(loop)


def _reduction_chunk(info: ReductionInfo, vec: int, reg: int, l1d_bytes: int) -> int | None:
    """Channels per chunk so one chunk's input and weight tiles fit L1, or None (no need)."""
    channels = info.extents[info.reduction[0]]
    window = math.prod(info.extents[i] for i in info.reduction[1:])
    bytes_per_channel = window * (vec + reg) * 4
    # Half of L1: the rest holds the output tile and the stack.
    fits = [d for d in divisors(channels) if d * bytes_per_channel <= l1d_bytes // 2]
    chunk = max(fits, default=1)
    return None if chunk == channels or chunk < 4 else chunk


def loop_extent(sch, loop) -> int:
    return int(sch.get(loop).extent)


def schedule_output_tiles(
    sch: s_tir.Schedule,
    info: ReductionInfo,
    params: CpuParams,
    panel_rows: int | None = None,
    max_vectors: int = 4,
) -> int:
    """The blocking recipe described in the module docstring; returns the vector tile width.

    ``panel_rows``: an input is stored in panels of this many rows of the reuse axis (packed
    weights): the register tile takes that many rows, and the reduction is not cut in chunks, so
    each panel is read as one sequential stream. ``max_vectors``: the vector tile's limit in
    vectors when the register tile is not fixed by panels.
    """
    main = info.block
    lanes = params.lanes(info.dtype)
    reuse = info.reuse_axis is not None
    accumulators = params.max_accumulators
    if panel_rows is not None:
        vec = vector_tile(info.extents[info.vector_axis], lanes, accumulators // panel_rows)
        reg = panel_rows
    else:
        vec = vector_tile(info.extents[info.vector_axis], lanes, max_vectors)
        vectors = math.ceil(vec / lanes)  # registers per row, however LLVM splits the loads
        reuse_extent = info.extents[info.reuse_axis] if reuse else 1
        reg = largest_divisor_at_most(reuse_extent, accumulators // vectors)

    inline_around(sch, main)
    epilogue = single_epilogue(sch, main)

    loops = sch.get_loops(main)
    outer, tiles, reuse_outer = [], [], []
    for i in info.spatial:
        if i == info.vector_axis:
            o, t = sch.split(loops[i], [None, vec])
            outer.append(o)
            vec_loop = t
        elif reuse and i == info.reuse_axis:
            o, t = sch.split(loops[i], [None, reg])
            reuse_outer.append(o)
            tiles.append(t)
        else:
            outer.append(loops[i])
    work = block_work(sch, main)
    red = [loops[i] for i in info.reduction]
    chunk = (
        _reduction_chunk(info, vec, reg, params.l1d_bytes) if reuse and panel_rows is None else None
    )
    if chunk is None:
        # The reuse axis' outer loop goes innermost of the parallel loops: consecutive tiles on
        # a thread read the same input tile (kept in L1) with the next block of weights.
        sch.reorder(*outer, *reuse_outer, *red, *tiles, vec_loop)
        fused = sch.fuse(*outer, *reuse_outer)
        first_reduction = red[0]
    else:
        # Too many channels for the input and weight tiles to stay in L1: the channel loop is
        # cut in chunks, and each chunk sweeps every reuse block while its inputs are in L1.
        # Accumulators then live in the per-thread output tile between chunks.
        chunk_outer, chunk_inner = sch.split(red[0], [None, chunk])
        sch.reorder(*outer, chunk_outer, *reuse_outer, chunk_inner, *red[1:], *tiles, vec_loop)
        fused = sch.fuse(*outer)
        first_reduction = chunk_outer
        red = [chunk_inner, *red[1:]]
    parallel_if_worth(sch, fused, work)
    for t in tiles:
        sch.unroll(t)
    sch.vectorize(vec_loop)
    # Kernel window loops (all reduction loops but the channel one) unrolled when small.
    window = red[1:]
    if window and math.prod(loop_extent(sch, loop) for loop in window) <= 49:
        for loop in window:
            sch.unroll(loop)
    if epilogue is not None:
        sch.reverse_compute_at(epilogue, fused)
        epi_loops = sch.get_loops(epilogue)
        if len(epi_loops) > 1:
            sch.vectorize(epi_loops[-1])
    init = sch.decompose_reduction(main, first_reduction)
    init_loops = sch.get_loops(init)
    sch.vectorize(init_loops[-1])
    for block in blocks_of(sch):
        if has_if_then_else(sch, block) and not is_reduction_block(sch, block):
            schedule_injective_block(sch, block, params, info.dtype)
    return vec


def width_stride(sch: s_tir.Schedule, info: ReductionInfo, source=None) -> int:
    """The stride of an input's width index in the output's width iterator: of ``source`` (a
    buffer), else of the first input whose width index depends on it; 1 when none does."""
    stmt = sch.get(info.block)
    var = stmt.iter_vars[info.vector_axis].var
    for region in stmt.reads:
        if region.source.same_as(stmt.writes[0].source):
            continue
        if source is not None and not region.source.same_as(source):
            continue
        coefficients = sym.detect_linear_equation(region.region[-1].min, [var])
        stride = coefficients[0] if len(coefficients) == 2 else None
        if isinstance(stride, tirx.IntImm) and int(stride) > 0:
            return int(stride)
    return 1
