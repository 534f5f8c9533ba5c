"""Depthwise conv2d: enough independent accumulators, padding per tile, strided reads made unit.

A depthwise conv has no axis to broadcast an input over (each channel reads only its own input),
so it is a stream of ``kernel window`` FMAs per output. What limits it is the FMA latency when
one accumulator chain does all of a tile's taps, the extra pass over memory of a padded copy of
the whole input, and, for stride 2, input vectors gathered lane by lane (every other pixel).
So the schedule:

- tiles the output as ``rows x vectors x lanes`` (rows and vectors unrolled, lanes vectorised)
  with up to ``CHAINS`` independent accumulator vectors, taps outside the tile, unrolled; rows
  before vectors, since output rows share input rows (see ``window_tile``);
- computes the zero padding per band of rows (``compute_at``), so the padded rows are read
  from L1; a band spans as many tiles along the width as half of L1 holds (whole rows on
  MobileNet's maps), so the copy streams whole input rows;
- for a stride ``s`` along the width, stores the padded rows de-interleaved by column phase
  (``[.., w % s, w // s]``): tap ``rx`` of ``s`` consecutive outputs then reads consecutive
  elements, and the vectors are loads instead of gathers;
- on maps that are one register tile per channel (7 x 7), pads ``CHANNELS_PER_TILE`` channels
  per parallel iteration before computing any of them.

Tiles are fused and run in parallel; the epilogue (bias, BN, activation) runs per tile (per
band of rows for rows narrower than whole vectors).
"""

from __future__ import annotations

import math

import tvm
from tvm import s_tir, tirx
from tvm.target import Target

from .base import CpuParams, CpuScheduleRule, cpu_params, func_name, not_mine
from .tiling import (
    ReductionInfo,
    analyse_reduction,
    block_work,
    divisors,
    has_if_then_else,
    inline_around,
    largest_divisor_at_most,
    parallel_if_worth,
    single_epilogue,
    vector_tile,
    width_stride,
)

# Independent accumulator vectors per tile: FMA latency (4-5 cycles) x 2 FMA units.
CHAINS = 8
# Fewer chains than this are latency bound: a tile that spills its weights beats them.
MIN_CHAINS = 4
# Output rows per tile: the padded input rows of a tile are copied once, and a taller band
# re-copies fewer halo rows (kernel - stride of them per band).
BAND_ROWS = 16
# Channels per parallel iteration when a channel's whole output map is one register tile (7 x 7
# maps): the iteration pads all of them, then computes them. With one channel per iteration the
# taps read the padded rows right after the copy wrote them, and the kernel ran 1.6x slower for
# the same instructions per channel (checked on the assembly): 960 channels at 7 x 7, one
# thread, 0.061 -> 0.037 ms (2, 3, 4 and 8 channels: 0.033-0.038 ms); 576 at 14 / 2, 0.039-0.053
# -> 0.036-0.042 ms (five runs each). Larger maps gained nothing (144 at 56 / 2 aside, 14%) or
# lost (384 at 14: 0.040 -> 0.048 ms, 192 at 28 / 2: 0.035 -> 0.039 ms).
CHANNELS_PER_TILE = 4
# A window tap (one multiply-add per lane along a row of one channel, its input and weight
# loaded for few FMAs) costs about as much as 8 multiply-adds of a conv, which
# ``MIN_PARALLEL_WORK`` counts: MobileNetV2's 960-channel 3x3 at 7x7 (0.42 million taps)
# took 55 us on one core and 26 us on two.
TAP_COST = 8


class DepthwiseConv2d(CpuScheduleRule):
    """Recognised by structure: a conv reduction (2 inputs, 4 spatial axes) whose input channel
    is fixed by the output channel (no spatial axis the input does not depend on) and whose
    channel reduction, if any, has extent 1."""

    name = "DepthwiseConv2d"

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        info, reason = analyse_reduction(sch)
        name = func_name(func)
        if info is None:
            return not_mine(self.name, name, reason)
        window = [i for i in info.reduction if info.extents[i] > 1]
        if not (
            info.reads == 2
            and len(info.spatial) == 4
            and info.reuse_axis is None
            and len(window) == 2
            and window == list(info.reduction[-2:])
            and info.vector_axis == info.spatial[-1]
        ):
            return not_mine(self.name, name, "not a depthwise conv")
        params = cpu_params(target)
        width = info.extents[info.spatial[-1]]
        if vector_tile(width, params.lanes(info.dtype), 2) == 1:
            # A prime width above two vectors (29) has no vector tile here: Conv2d's output-tile
            # recipe takes the conv and vectorises the whole 29-wide row.
            return not_mine(self.name, name, f"output width {width} has no vector tile")
        schedule_channel_window(sch, info, params)
        return sch


def schedule_channel_window(sch: s_tir.Schedule, info: ReductionInfo, params: CpuParams) -> None:
    """The module docstring's schedule, for any per-channel window reduction whose last two
    reduction loops are the window: depthwise convs, and windowed max / average pooling."""
    main = info.block
    lanes = params.lanes(info.dtype)
    *_, height_axis, width_axis = info.spatial
    height, width = info.extents[height_axis], info.extents[width_axis]
    vec, vectors, rows = window_tile(info, params)

    inline_around(sch, main)
    pad = _padding_block(sch, main)
    stride = width_stride(sch, info, None if pad is None else sch.get(pad).writes[0].source)
    if pad is not None and stride > 1:

        def deinterleave(n, c, h, w):
            return n, c, h, w % stride, w // stride

        divides = _padded_width(sch, pad) % stride == 0
        sch.transform_layout(pad, ("write", 0), deinterleave, pad_value=0.0)
        if divides:
            # The copy loops over the new layout, so its stores are whole vectors (a width
            # the stride does not divide leaves a pad column the copy's loops cannot cover).
            sch.transform_block_layout(pad, deinterleave)
    epilogue = single_epilogue(sch, main)

    loops = sch.get_loops(main)
    band = largest_divisor_at_most(height // rows, max(1, BAND_ROWS // rows))
    # A band's padded copy spans as many register tiles along the width as half of L1 holds:
    # it then copies whole input rows (one 16-wide tile of a 112-wide map copied 18-float row
    # pieces, re-read 2 halo columns per 16, and ran 2x slower on inputs coming from L3).
    tile_width = vectors * vec
    input_rows = stride * band * rows + info.extents[info.reduction[-2]]
    element_bytes = tvm.runtime.DataType(info.dtype).bits // 8
    tile_bytes = input_rows * stride * tile_width * element_bytes
    strip = largest_divisor_at_most(width // tile_width, params.l1d_bytes // 2 // tile_bytes)
    h_outer, h_band, h_tile = sch.split(loops[height_axis], [None, band, rows])
    w_outer, w_strip, w_vectors, w_lanes = sch.split(loops[width_axis], [None, strip, vectors, vec])
    outer = [loops[i] for i in info.spatial[:-2]]
    red = [loops[i] for i in info.reduction]
    grouped = []
    if rows == height and tile_width == width:
        channel_groups, channels_in_group = sch.split(outer[-1], [None, _channel_group(info)])
        outer, grouped = [*outer[:-1], channel_groups], [channels_in_group]
    sch.reorder(
        *outer, h_outer, w_outer, *grouped, h_band, w_strip, *red, h_tile, w_vectors, w_lanes
    )
    work = block_work(sch, main) * TAP_COST
    fused = sch.fuse(*outer, h_outer, w_outer)
    parallel_if_worth(sch, fused, work)
    for loop in (h_tile, w_vectors, *red[-2:]):
        sch.unroll(loop)
    sch.vectorize(w_lanes)
    if epilogue is not None:
        # Rows of whole vectors: the epilogue per tile, so the tile's accumulators go to it
        # from a stack buffer (registers) rather than through a band-sized buffer in memory
        # (two threads: 32-channel 3x3 at 112 x 112 0.27 -> 0.19 ms, 144 at 56 0.24 -> 0.20).
        # Narrower rows (7, 14, 28) keep it per band: per tile, 576 at 14 / 2 went 0.027 ->
        # 0.039 ms.
        per_tile = width % lanes == 0
        sch.reverse_compute_at(epilogue, w_strip if per_tile else fused)
        sch.vectorize(sch.get_loops(epilogue)[-1])
    init = sch.decompose_reduction(main, red[0])
    sch.vectorize(sch.get_loops(init)[-1])
    if pad is not None:
        sch.compute_at(pad, fused)
        if stride == 1:
            sch.vectorize(sch.get_loops(pad)[-1])
        elif divides:
            _deinterleave_loops(sch, pad)


def _channel_group(info: ReductionInfo) -> int:
    """Channels per parallel iteration for a map that is one register tile: the largest
    divisor of the channel count up to ``CHANNELS_PER_TILE``."""
    channels = info.extents[info.spatial[-3]]
    return largest_divisor_at_most(channels, CHANNELS_PER_TILE)


def window_tile(info: ReductionInfo, params: CpuParams) -> tuple[int, int, int]:
    """``(vec, vectors, rows)``: the tile is ``rows x vectors`` accumulators of ``vec`` lanes.

    Rows first: with the taps unrolled, ``rows`` outputs of a column read ``rows + window - 1``
    input rows (stride 1) for ``rows x window`` taps, where neighbouring vectors of one row share
    no loads (each tap's load is shifted). Then the register file: the accumulators, one
    broadcast weight per tap (a depthwise conv's, not a pool's) and the input must fit, as
    LLVM otherwise reloads the weights in every tap. On AVX2 a 3 x 3 conv's 4 x 1 tiles beat
    1 x 7 tiles (7 accumulators + 9 weights) by 20% (one thread: 144 channels at 56 x 56
    0.27 -> 0.21 ms, 192 at 28 x 28 0.116 -> 0.094 ms). Maps whose sides have no divisor giving
    ``MIN_CHAINS`` (7 x 7) keep ``CHAINS`` and reload the weights.
    """
    lanes = params.lanes(info.dtype)
    *_, height_axis, width_axis = info.spatial
    height, width = info.extents[height_axis], info.extents[width_axis]
    vec = vector_tile(width, lanes, 2)
    registers_per_vector = math.ceil(vec / lanes)
    taps = math.prod(info.extents[i] for i in info.reduction) if info.reads == 2 else 0
    tiles = [
        (rows * vectors * registers_per_vector, rows, vectors)
        for rows in divisors(height)
        for vectors in divisors(width // vec)
        if rows * vectors * registers_per_vector <= CHAINS
    ]
    fitting = [t for t in tiles if t[0] + taps + 1 <= params.vector_registers]
    accumulators, rows, vectors = max(fitting or tiles)
    if accumulators < MIN_CHAINS:
        accumulators, rows, vectors = max(tiles)
    return vec, vectors, rows


def _deinterleave_loops(sch: s_tir.Schedule, pad) -> None:
    """Loops of the column-phase copy for LLVM's vectoriser, not ours: TIR vectorises one axis,
    and either the reads (along a phase) or the writes (along the input) are strided and become
    lane-by-lane loads or stores. With the columns outer, the phases unrolled and the two edge
    columns (the only ones reading padding) split off, the interior loop reads ``stride``
    consecutive inputs per column, which LLVM loads as whole vectors and de-interleaves with
    shuffles (2.5x faster on a 96-channel 112x112 stride-2 conv)."""
    *_, phase, column = sch.get_loops(pad)
    sch.reorder(column, phase)
    sch.unroll(phase)
    columns = int(sch.get(column).extent)
    if columns > 2:
        sch.loop_partition(column, [1, columns - 2, None])


def _padding_block(sch: s_tir.Schedule, main) -> s_tir.schedule.SBlockRV | None:
    """The zero-padding block feeding ``main`` (``inline_around`` keeps it as its own block)."""
    for block in sch.get_producers(main):
        if has_if_then_else(sch, block):
            return block
    return None


def _padded_width(sch: s_tir.Schedule, pad) -> int:
    return int(sch.get(pad).writes[0].source.shape[-1])
