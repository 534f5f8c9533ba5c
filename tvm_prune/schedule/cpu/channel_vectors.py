"""Conv blocking with output channels in the vector lanes (the NCHWc recipe, inside one kernel).

For a conv whose output channels ``K`` divide into vectors: the weights are repacked to
``[K / block, C, R, S, block]`` (``block`` = a few vectors of ``lanes`` channels) so the output
channels of one tap are contiguous vector loads; each input pixel is broadcast once and
multiplied into ``block`` channels. The register tile is ``vectors x pixels`` accumulators
(``register_block``) along output channels and output width, so widths such as 7, 14 and 28
waste no lanes. The fused epilogue writes the tile back to NCHW.

The repacking block is marked as a layout-rewrite preprocess of the weight parameter (the
attribute MetaSchedule uses), so ``relax.transform.SplitLayoutRewritePreproc`` can move it out
of the kernel and ``FoldConstant`` applies it to the constant weights once, at compile time.
"""

from __future__ import annotations

import math

from tvm import s_tir, tirx
from tvm.tirx import IndexMap

from .base import PREPROC_ATTR, CpuParams
from .tiling import (
    ReductionInfo,
    analyse_reduction,
    block_work,
    blocks_of,
    divisors,
    has_if_then_else,
    inline_around,
    is_reduction_block,
    loop_extent,
    parallel_if_worth,
    realize_of,
    schedule_injective_block,
    single_epilogue,
    uses_var,
    width_stride,
)

FLOAT32_BYTES = 4
MIN_POINTWISE_CHANNEL_BLOCK = 16


def weight_read_index(sch: s_tir.Schedule, info: ReductionInfo) -> int | None:
    """Index (in the block's reads) of the input indexed by the reuse axis first, or None."""
    stmt = sch.get(info.block)
    reuse_var = stmt.iter_vars[info.reuse_axis].var
    vector_var = stmt.iter_vars[info.vector_axis].var
    for index, region in enumerate(stmt.reads):
        if region.source.same_as(stmt.writes[0].source):
            continue
        first = region.region[0].min
        if first.same_as(reuse_var) and not uses_var(region, vector_var):
            return index
    return None


def applies(sch: s_tir.Schedule, info: ReductionInfo, params: CpuParams) -> bool:
    lanes = params.lanes(info.dtype)
    return (
        info.reuse_axis is not None
        and info.extents[info.reuse_axis] % lanes == 0
        and weight_read_index(sch, info) is not None
    )


def schedule_channel_vectors(sch: s_tir.Schedule, info: ReductionInfo, params: CpuParams) -> bool:
    """Schedule the conv; False (``sch`` only partly changed: start again from the function)
    when its weights stop being readable output-channel first once the blocks around it are
    inlined (a transposed conv's flipped ``[C, K, R, S]`` kernel)."""
    lanes = params.lanes(info.dtype)
    weights_first = _weights_dominate(sch, info, weight_read_index(sch, info))
    # Taps in a kernel row, read before flattening (which turns unit reduction axes spatial),
    # and the stride along it for windows unrolled a row at a time (wider than 3): there the
    # tile counted with the stride won (7 x 7 / 2 stem, 2 x 4: 15% faster than 1 x 8). A 3 x 3
    # window is unrolled whole, and its stride-1 count's pick stays: for 128 -> 256 3 x 3 / 2
    # at 14 the stride count picked 4 x 2, 7-9% slower than 1 x 7 (one and two threads).
    row_taps = info.extents[info.reduction[-1]]
    stride = width_stride(sch, info) if row_taps > 3 else 1
    inline_around(sch, info.block)
    weight_index = weight_read_index(sch, info)
    if weight_index is None:
        return False
    epilogue = single_epilogue(sch, info.block)
    # A pointwise conv whose input overflows L1 runs over all its pixels at once (rows and
    # columns flattened), a block of input channels at a time: each block's input stays in L1
    # for every register tile (MobileNetV2's 7 x 7 and 14 x 14 layers).
    pointwise_block = (
        _pointwise_channel_block(info, params.l1d_bytes)
        if epilogue is not None and _is_pointwise(sch, info, epilogue)
        else None
    )
    if pointwise_block:
        info = _flatten_pixels(sch, info, epilogue)
    row_pixels = info.extents[info.vector_axis]
    # A flattened pixel axis takes tiles that leave a remainder (49 pixels: 8 tiles of 6 and
    # one tail pixel), split off below so the full tiles carry no bounds check by construction
    # (LLVM also unswitches the guard out of the channel loop today: same speed either way).
    vectors, tile_pixels = register_block(
        info.extents[info.reuse_axis] // lanes,
        row_pixels,
        row_taps,
        params,
        tail=bool(pointwise_block),
        stride=stride,
    )
    main = info.block
    block = vectors * lanes
    # Repack the weights: [K, C, R, S] -> [K / block, C, R, S, block].
    packed = sch.cache_read(main, weight_index, "global")
    sch.annotate(packed, PREPROC_ATTR, True)
    sch.transform_layout(
        packed,
        ("write", 0),
        lambda k, *rest: (k // block, *rest, k % block),
    )

    loops = sch.get_loops(main)
    outer = []
    for i in info.spatial:
        if i == info.vector_axis:
            w_outer, w_tile = sch.split(loops[i], [None, tile_pixels])
            outer.append(w_outer)
        elif i == info.reuse_axis:
            k_outer, k_vectors, k_lanes = sch.split(loops[i], [None, vectors, lanes])
        else:
            outer.append(loops[i])
    work = block_work(sch, main)
    red = [loops[i] for i in info.reduction]
    # Keep the larger operand in cache across consecutive tiles of a thread: with more weight
    # than input (late, narrow layers) the channel block is outermost and its weights stay
    # in L2 while the rows go by; otherwise the input rows stay while the weights go by.
    if weights_first:
        parallel = [k_outer, *outer]
    else:
        parallel = [*outer, k_outer]
    channel_block = pointwise_block or _input_channel_block(
        sch, info, red, k_outer, params.l1d_bytes
    )
    if channel_block:
        # All output channels in one register tile (few of them, as in PP-OCR det's neck) and
        # more input rows per output row than L1 holds: a block of input channels at a time
        # across the whole output row, so its input rows stay in L1 for every tile and tap.
        c_outer, c_inner = sch.split(red[0], [None, channel_block])
        parallel.remove(w_outer)
        sch.reorder(*parallel, c_outer, w_outer, c_inner, *red[1:], w_tile, k_vectors, k_lanes)
        red = [c_outer, c_inner, *red[1:]]
    else:
        sch.reorder(*parallel, *red, w_tile, k_vectors, k_lanes)
    fused = sch.fuse(*parallel)
    parallel_if_worth(sch, fused, work)
    sch.unroll(w_tile)
    sch.unroll(k_vectors)
    sch.vectorize(k_lanes)
    # Windows up to 3 x 3 unrolled whole; larger ones a kernel row at a time (its taps share
    # input broadcasts), the rows looped: with a whole 7 x 7 window unrolled, LLVM kept the
    # broadcasts of several rows live and spilled them to the stack (ResNet's 7 x 7 / 2 stem:
    # 3.3-3.5 -> 2.9-3.4 ms, one thread, 5 processes each).
    window = red[1:]
    if window and _product(sch, window) <= 9:
        for loop in window:
            sch.unroll(loop)
    elif window and loop_extent(sch, window[-1]) <= 7:
        sch.unroll(window[-1])
    # The accumulator tile [tile_pixels, lanes] is contiguous in the lanes.
    sch.transform_layout(
        main,
        ("write", 0),
        lambda *idx: (
            *idx[: info.reuse_axis],
            idx[info.reuse_axis] // lanes,
            *idx[info.reuse_axis + 1 :],
            idx[info.reuse_axis] % lanes,
        ),
    )
    if epilogue is not None:
        sch.reverse_compute_at(epilogue, fused)
        _vectorize_epilogue_channels(sch, epilogue, fused, info.reuse_axis, lanes)
    init = sch.decompose_reduction(main, red[0])
    sch.vectorize(sch.get_loops(init)[-1])
    if row_pixels % tile_pixels:
        sch.loop_partition(w_outer, [row_pixels // tile_pixels, None])
    for block in blocks_of(sch):
        if sch.get(block).same_as(sch.get(packed)):
            parallel_if_worth(sch, sch.get_loops(block)[0], block_work(sch, block))
        elif has_if_then_else(sch, block) and not is_reduction_block(sch, block):
            schedule_injective_block(sch, block, params, info.dtype)
    return True


def register_block(
    channel_vectors: int,
    width: int,
    window: int,
    params: CpuParams,
    tail: bool = False,
    stride: int = 1,
) -> tuple[int, int]:
    """``(vectors, pixels)``: the register tile, output-channel vectors x output pixels.

    One kernel row of ``window`` taps costs ``vectors x window`` weight loads and one input
    broadcast per distinct input the row reads, ``stride x (pixels - 1) + window`` (neighbouring
    pixels share inputs; none do when the stride is not below the window), for
    ``vectors x pixels x window`` FMAs. The tile with the most FMAs per load over the whole row
    wins, then the one with more accumulators. Counting ResNet's 7 x 7 / 2 stem as stride 1
    picked 1 x 8; with its stride, 2 x 4 (3.31 -> 2.85 ms on one thread, 1.72 -> 1.47 on two).

    ``pixels`` divides ``width`` unless ``tail``: then the remainder is one narrower tile at the
    row's end (a 7 x 7 map flattened to 49 pixels runs 2 x 6 tiles and a 2 x 1 tail on AVX2
    instead of 1 x 7 tiles, 1.5 FMAs per load instead of 0.9: MobileNetV2's 960 -> 320 conv
    0.54 -> 0.41 ms, one thread). The accumulators, the weight vectors and one broadcast must
    fit the vector registers with some to spare: LLVM spills accumulators otherwise (2 x 7 on
    AVX2's 16 registers runs at half speed). NEON's 4-lane vectors give it more channel
    vectors to tile than AVX2 for the same conv.
    """
    registers = params.vector_registers
    best, best_key = (1, 1), None
    for vectors in divisors(channel_vectors):
        for pixels in range(1, width + 1) if tail else divisors(width):
            accumulators = vectors * pixels
            if (
                vectors > 4
                or accumulators > params.max_accumulators
                or accumulators + vectors + 1 > registers
            ):
                continue
            tiles, rest = divmod(width, pixels)
            loads = tiles * (vectors * window + _row_inputs(pixels, window, stride)) + (
                vectors * window + _row_inputs(rest, window, stride) if rest else 0
            )
            key = (round(vectors * width * window / loads, 2), accumulators, pixels)
            if best_key is None or key > best_key:
                best, best_key = (vectors, pixels), key
    return best


def _row_inputs(pixels: int, window: int, stride: int) -> int:
    """Distinct inputs ``pixels`` neighbouring outputs read along one kernel row."""
    return min(pixels * window, stride * (pixels - 1) + window)


def _input_channel_block(sch, info: ReductionInfo, red, k_outer, l1d_bytes: int) -> int | None:
    """Input channels per block when one output-channel block covers the conv and the input
    rows an output row reads (``C x R x W``) overflow L1; None otherwise."""
    if loop_extent(sch, k_outer) != 1 or len(red) < 2:
        return None
    channels = loop_extent(sch, red[0])
    row_bytes = (
        _product(sch, red[1:-1])
        * (info.extents[info.vector_axis] + loop_extent(sch, red[-1]) - 1)
        * FLOAT32_BYTES
    )
    if channels * row_bytes <= l1d_bytes:
        return None
    fitting = [d for d in divisors(channels) if d * row_bytes <= l1d_bytes and d < channels]
    return max(fitting, default=None)


def _pointwise_channel_block(info: ReductionInfo, l1d_bytes: int) -> int | None:
    """Input channels per block of a pointwise conv whose whole input (``C x H x W``)
    overflows half of L1 (the other half for the weights and accumulators), None when it fits
    or when only blocks of a few channels (a prime channel count, big maps) would fit: those
    reload the accumulators more often than they save input reloads."""
    channels = info.extents[info.reduction[0]]
    map_bytes = info.extents[info.vector_axis - 1] * info.extents[info.vector_axis] * FLOAT32_BYTES
    budget = l1d_bytes // 2
    if channels * map_bytes <= budget:
        return None
    fitting = [d for d in divisors(channels) if d * map_bytes <= budget]
    block = max(fitting, default=0)
    return block if block >= MIN_POINTWISE_CHANNEL_BLOCK else None


def _is_pointwise(sch: s_tir.Schedule, info: ReductionInfo, epilogue) -> bool:
    """A 1x1 stride-1 conv without padding (input maps the size of the output maps) into an
    NCHW epilogue indexed by its own iterators in order."""
    if any(info.extents[i] != 1 for i in info.reduction[1:]) or info.vector_axis - 1 not in (
        info.spatial
    ):
        return False
    stmt = sch.get(info.block)
    output = stmt.writes[0].source
    size = [int(d) for d in output.shape[-2:]]
    if len(output.shape) != 4 or size != [info.extents[info.vector_axis - 1 + i] for i in (0, 1)]:
        return False
    weight = stmt.reads[weight_read_index(sch, info)].source
    data = [
        r.source for r in stmt.reads if not (r.source.same_as(output) or r.source.same_as(weight))
    ]
    if not all([int(d) for d in b.shape[-2:]] == size for b in data):
        return False
    tail = sch.get(epilogue)
    indices = [r.min for r in tail.writes[0].region]
    return len(tail.iter_vars) == len(indices) == 4 and all(
        index.same_as(iv.var) for index, iv in zip(indices, tail.iter_vars, strict=True)
    )


def _flatten_pixels(sch: s_tir.Schedule, info: ReductionInfo, epilogue) -> ReductionInfo:
    """Fuse the output rows and columns of a pointwise conv and its epilogue into one pixel
    iterator (the intermediate output becomes ``[N, K, H * W]``): a GEMM over all pixels, so
    one loop over the register tiles covers the whole map inside an input-channel block.
    Returns the conv block's analysis in the new iterators."""
    rows = info.vector_axis - 1
    width = info.extents[info.vector_axis]

    def fuse(*iters):
        return (*iters[:rows], iters[rows] * width + iters[rows + 1], *iters[rows + 2 :])

    sch.transform_layout(info.block, ("write", 0), lambda n, k, h, w: (n, k, h * width + w))
    sch.transform_block_layout(info.block, IndexMap.from_func(fuse, ndim=len(info.extents)))
    sch.transform_block_layout(epilogue, lambda n, k, h, w: (n, k, h * width + w))
    flat, _ = analyse_reduction(sch)
    return flat


def _weights_dominate(sch: s_tir.Schedule, info: ReductionInfo, weight_index: int) -> bool:
    """More weight elements than input elements (read before any scheduling)."""
    stmt = sch.get(info.block)
    sizes = [
        math.prod(int(d) for d in region.source.shape)
        for index, region in enumerate(stmt.reads)
        if index != weight_index and not region.source.same_as(stmt.writes[0].source)
    ]
    weight = math.prod(int(d) for d in stmt.reads[weight_index].source.shape)
    return weight > max(sizes, default=0)


def _product(sch, loops) -> int:
    result = 1
    for loop in loops:
        result *= loop_extent(sch, loop)
    return result


def _vectorize_epilogue_channels(
    sch: s_tir.Schedule, epilogue, fused, channel_axis: int, lanes: int
) -> None:
    """Run the epilogue of a tile over its output channels in vectors: a vector of the
    accumulator tile is read whole and its lanes stored to their NCHW planes, instead of each
    element read, computed and stored on its own (24 -> 144 and 32 -> 192 pointwise convs:
    0.43 -> 0.35 and 0.19 -> 0.15 ms, one thread). Left as it is when no single loop of the
    tile runs over the channels in whole vectors."""
    loops = sch.get_loops(epilogue)
    under = [sch.get(loop).same_as(sch.get(fused)) for loop in loops].index(True) + 1
    stmt = sch.get(epilogue)
    channel = stmt.writes[0].region[channel_axis].min
    position = next(i for i, iv in enumerate(stmt.iter_vars) if iv.var.same_as(channel))
    channel_vars = tirx.analysis.undefined_vars(realize_of(sch, epilogue).iter_values[position])
    channel_loops = [
        loop
        for loop in loops[under:]
        if any(var.same_as(sch.get(loop).loop_var) for var in channel_vars)
    ]
    if len(channel_loops) != 1 or loop_extent(sch, channel_loops[0]) % lanes:
        return
    others = [
        loop for loop in loops[under:] if not sch.get(loop).same_as(sch.get(channel_loops[0]))
    ]
    channel_outer, channel_lanes = sch.split(channel_loops[0], [None, lanes])
    sch.reorder(channel_outer, *others, channel_lanes)
    sch.vectorize(channel_lanes)
