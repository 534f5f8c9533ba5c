"""``WinogradConv2d``: 3x3 stride-1 convs become Winograd F(m x m, 3 x 3) as three kernels.

Rewrites
    ``R.nn.conv2d(x, W)`` with a constant ``W: [K, C, 3, 3]`` into
    ``winograd_output(matmul(U, winograd_input(x)))``, with ``alpha = m + 2``:

    - ``winograd_input``: the padded input cut into ``m x m`` output tiles (``alpha x alpha``
      input tiles overlapping by 2), each transformed ``B^T d B`` in two passes, laid out
      ``V[alpha^2, C, tiles]`` (tiles per row padded to ``TILE_BLOCK``, then rows of zero
      tiles up to a multiple of ``GEMM_COLUMNS`` tiles); the matrix entries are immediates,
      zero terms dropped;
    - ``winograd_gemm(U, V)``: ``alpha^2`` independent ``[K, C] x [C, tiles]`` GEMMs, which the
      ``Matmul`` schedule rule blocks and vectorises along the tiles, ``U`` stored in panels of
      ``WEIGHT_PANEL`` output channels (``[alpha^2, K / panel, C, panel]``);
    - ``winograd_output``: ``A^T M A`` per tile in two passes, written back as
      ``[N, K, H', W']``; the conv's
      epilogue (bias, BN, activation, residual add) stays after it and ``FuseOps`` fuses it in.

    ``U = G g G^T`` is computed here, once, in float64 from the bound weights and stored in
    the panels above. A conv then costs ``alpha^2 / m^2`` multiplies per output tap
    instead of 9 (F(4x4): 2.25 instead of 9) plus the two transforms, linear in ``C + K``.
Only when
    NCHW / OIHW layouts, a 3x3 kernel, stride 1, dilation 1, groups 1, static shapes, a
    constant kernel, float32, output sides that a tile of ``tiles`` divides (or, padded up to
    its multiple and cropped, give at least ``MIN_CROPPED_TILES`` tiles: 14x14 under F(4x4)),
    and at least ``min_channels`` input and output channels (below that the transforms cost
    more than the multiplies they save; the preset's threshold is measured by
    ``bench/winograd.py``).
Leaves alone
    everything else, with the reason in ``report``.
Run after
    ``BindParams`` and the other graph rewrites, before ``LegalizeOps``.

Numerics: not exact. The transforms add and subtract inputs scaled by up to ``m``-th powers of
the interpolation points (0, +-1, +-2, +-1/2 for F(4x4)), so rounding grows: on ResNet-18's
3x3 layers max |error| is 2-3e-6 of the output's max for F(4x4) and ~5e-7 for F(2x2), against
~1e-7 for a direct float32 sum (``bench/winograd.py``).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import tvm
from tvm import relax, te, tirx
from tvm.relax import Call, Expr, PyExprMutator
from tvm.topi.nn.winograd_util import _cook_toom_convolution, _interpolation_points

from ..relax_rewrite import OPAQUE_PATTERN, RewriteRefused, rewrite_calls, static_shape

CONV_OP = "relax.nn.conv2d"
KERNEL = 3
# Block annotation naming the blocks of a transform for the ``WinogradTransform`` schedule rule;
# its value says which: ``input``, ``output``, ``tiles`` (the input tiles) or ``gather`` (the
# first of a transform's two passes, kept per tile in registers).
WINOGRAD_ATTR = "tvm_prune.winograd"
TILE_ATTR = "tvm_prune.winograd_tile"
# Tiles per row are padded to a multiple of this, so the transforms' vectors along a row of
# tiles and the GEMM's along all tiles are whole vectors (one AVX2, two NEON) at any width.
TILE_BLOCK = 8
# Tile rows per image are padded (with tiles of zeros) until all tiles are a multiple of this:
# the GEMM's register tile is then 4 AVX2 vectors wide at every size (28x28 under F(4x4) has
# 7 x 8 tiles: one vector wide and 8 broadcasts per vector load without the padding).
GEMM_COLUMNS = 32
# An output side the tile does not divide is padded up to its multiple (the extra outputs are
# computed and dropped) only where that gives at least this many tiles per image: with fewer
# (7x7 has 4 under F(4x4)), each transformed weight, 4x the direct kernel's bytes, serves too
# few tiles and the GEMM is bound by streaming them. Single thread on the host: 256@14 under
# F(4x4), 16 tiles, runs at 1.03-1.57x the direct conv's speed (bench/winograd.py, 4 runs);
# 512@7 at ~0.5x under F(4x4) (4 tiles) and under F(2x2) (16 tiles, 16 MB of transformed
# weights) at 0.82-0.93x with the weights in rows, 1.29-1.32x in panels (WEIGHT_PANEL; 2 runs,
# shared host).
MIN_CROPPED_TILES = 16
# The transformed weights are stored in panels of this many output channels, each panel's
# channels interleaved along C: the order the GEMM's register tile (this many rows, which the
# ``Matmul`` rule reads off the layout) consumes them, so each GEMM reads U as one sequential
# stream. U is read once per conv and is out of cache by then (256@14: 9.4 MB); row by row it
# ran at half the speed (bench/winograd_gemm.py, single thread, weights out of cache, shared
# host: 36 x [256x256] x [256x16] 2.09 -> 1.01 ms, 36 x [128x128] x [128x64] 1.49 -> 1.06 ms,
# 36 x [64x64] x [64x224] unchanged).
WEIGHT_PANEL = 4


@tvm.transform.module_pass(opt_level=0, name="WinogradConv2d")
class WinogradConv2d:
    """See the module docstring. ``tiles``: the output tile sides ``m`` to use, in order of
    preference (4: F(4x4, 3x3), 2: F(2x2, 3x3)); a conv gets the first that divides both its
    output sides or gives at least ``MIN_CROPPED_TILES`` tiles on the padded output (F(4x4)
    for 14x14, F(2x2) for 7x7 under ``(4, 2)``), else none (refused). After a run, ``report``
    lists every conv seen: its shapes and the tile it got, or why it was left alone."""

    def __init__(self, tiles: tuple[int, ...] = (4, 2), min_channels: int = 1) -> None:
        if not tiles or not set(tiles) <= {2, 4}:
            raise ValueError(f"Winograd output tiles must be 2 and/or 4, got {tiles}")
        self.tiles, self.min_channels = tuple(tiles), min_channels
        self.report: list[dict[str, Any]] = []

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        self.report = []

        def rewrite(mutator: PyExprMutator, call: Call, entry: dict[str, Any]) -> Expr:
            return _rewrite(mutator, call, entry, self.tiles, self.min_channels)

        return rewrite_calls(mod, CONV_OP, rewrite, self.report)


@functools.cache
def winograd_matrices(tile: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``A [alpha, m]``, ``B [alpha, alpha]``, ``G [alpha, 3]`` (float64) of F(m x m, 3 x 3),
    from TOPI's Cook-Toom construction (the matrices its own Winograd schedules use)."""
    points = _interpolation_points(tile + KERNEL - 2)
    a, b, g = _cook_toom_convolution(points, tile, KERNEL)
    return np.asarray(a, np.float64), np.asarray(b, np.float64), np.asarray(g, np.float64)


def _rewrite(mutator, call, entry, tiles, min_channels) -> Expr:
    data, kernel = call.args
    attrs = call.attrs
    in_shape, out_shape = static_shape(data), static_shape(call)
    entry["shape"] = [in_shape, out_shape]
    if in_shape is None or out_shape is None:
        raise RewriteRefused("dynamic shape")
    layouts = (str(attrs.data_layout), str(attrs.kernel_layout), str(attrs.out_layout))
    if layouts != ("NCHW", "OIHW", "NCHW"):
        raise RewriteRefused(f"layouts {'/'.join(layouts)} (only NCHW/OIHW/NCHW)")
    if int(attrs.groups) != 1:
        raise RewriteRefused(f"groups {int(attrs.groups)} (only 1)")
    strides = [int(s) for s in attrs.strides]
    if strides != [1, 1]:
        raise RewriteRefused(f"strides {strides} (only 1)")
    dilation = [int(d) for d in attrs.dilation]
    if dilation != [1, 1]:
        raise RewriteRefused(f"dilation {dilation} (only 1)")
    if not isinstance(kernel, tvm.ir.GenericConst):
        raise RewriteRefused("kernel is not a constant (bind the weights first)")
    weights = kernel.value.numpy()
    if weights.shape[2:] != (KERNEL, KERNEL):
        raise RewriteRefused(f"kernel {list(weights.shape[2:])} (only 3x3)")
    dtypes = {str(data.ty.dtype), str(weights.dtype), str(call.ty.dtype)}
    if dtypes != {"float32"}:
        raise RewriteRefused(f"dtypes {sorted(dtypes)} (only float32)")
    out_channels, in_channels = weights.shape[:2]
    if min(in_channels, out_channels) < min_channels:
        raise RewriteRefused(
            f"channels {in_channels}->{out_channels} below the threshold {min_channels}"
        )
    tile = _pick_tile(out_shape[2], out_shape[3], tiles)
    if tile is None:
        raise RewriteRefused(
            f"output {out_shape[2]}x{out_shape[3]} is no multiple of tiles {list(tiles)} and has"
            f" fewer than {MIN_CROPPED_TILES} tiles of any"
        )
    a, b, g = winograd_matrices(tile)
    alpha = tile + KERNEL - 1
    # U[i * alpha + j, k, c] = (G w[k, c] G^T)[i, j]
    transformed = np.einsum("ia,kcab,jb->ijkc", g, weights.astype(np.float64), g)
    panel = math.gcd(out_channels, WEIGHT_PANEL)
    # U[e, k // panel, c, k % panel]
    transformed = transformed.reshape(alpha * alpha, out_channels // panel, panel, in_channels)
    transformed = np.ascontiguousarray(transformed.transpose(0, 1, 3, 2), dtype=np.float32)
    padding = [int(p) for p in attrs.padding]  # top, left, bottom, right
    builder = mutator.builder_
    tiles = builder.emit(
        _call_te(
            builder,
            _input_transform(in_shape, out_shape, padding, tile, b),
            [data],
            "winograd_input",
            # Opaque to FuseOps: the input transform reads each input element up to
            # (alpha / m)^2 times, so an inlined producer would be recomputed as often.
            {"op_pattern": OPAQUE_PATTERN},
        )
    )
    tiles = builder.emit(relax.op.reshape(tiles, [alpha * alpha, in_channels, -1]))
    products = builder.emit(
        _call_te(builder, _gemm, [relax.const(transformed), tiles], "winograd_gemm", {})
    )
    entry.update(rewritten=True, tile=tile)
    return _call_te(
        builder, _output_transform(out_shape, tile, a), [products], "winograd_output", {}
    )


def _call_te(builder, compute, args: list[Expr], name: str, func_attrs: dict) -> Expr:
    """``call_tir`` of the PrimFunc ``compute(*placeholders)`` makes, added with ``func_attrs``."""
    placeholders = [
        te.placeholder(list(arg.ty.shape), str(arg.ty.dtype), f"in{i}")
        for i, arg in enumerate(args)
    ]
    result = compute(*placeholders)
    func = te.create_prim_func([*placeholders, result]).without_attr("global_symbol")
    for key, value in func_attrs.items():
        func = func.with_attr(key, value)
    gvar = builder.add_func(func, name)
    return relax.call_tir(gvar, args, relax.TensorType(result.shape, str(result.dtype)))


def _weighted_sum(terms) -> tirx.PrimExpr:
    """``sum(coefficient * value)`` over the nonzero coefficients, as float32 immediates."""
    expr = None
    for coefficient, value in terms:
        if coefficient == 0:
            continue
        term = value if coefficient == 1 else tirx.const(float(coefficient), "float32") * value
        expr = term if expr is None else expr + term
    return expr if expr is not None else tirx.const(0.0, "float32")


def _int64(shape) -> list[tirx.IntImm]:
    """A TE shape in Relax's index type (int64), so the call's type matches the PrimFunc's."""
    return [tirx.IntImm("int64", d) for d in shape]


def _select(index: tirx.PrimExpr, values: list[tirx.PrimExpr]) -> tirx.PrimExpr:
    """``values[index]``: a select chain, which becomes one value once ``index`` is unrolled."""
    expr = values[-1]
    for position in range(len(values) - 2, -1, -1):
        expr = tirx.Select(index == position, values[position], expr)
    return expr


def _pick_tile(height: int, width: int, tiles: tuple[int, ...]) -> int | None:
    """The first of ``tiles`` that divides both output sides or gives at least
    ``MIN_CROPPED_TILES`` tiles on the output padded to its multiple, else None."""
    return next(
        (
            m
            for m in tiles
            if (height % m == 0 and width % m == 0)
            or -(-height // m) * -(-width // m) >= MIN_CROPPED_TILES
        ),
        None,
    )


def _tile_columns(width: int, tile: int) -> int:
    """Tiles per row in ``V`` and ``M``: the image's (``ceil(width / m)``), rounded up to
    ``TILE_BLOCK``, or to a power of two when fewer than half of it (4 for 14x14 under F(4x4))."""
    tiles = -(-width // tile)
    if tiles > TILE_BLOCK // 2:
        return _round_up(tiles, TILE_BLOCK)
    return 1 << (tiles - 1).bit_length()


def _tile_rows(height: int, width: int, tile: int) -> int:
    """Tile rows per image in ``V`` and ``M``: the image's (``ceil(height / m)``), then rows of
    zero tiles until the tiles are a multiple of ``GEMM_COLUMNS`` or a power of two below it."""
    rows, columns = -(-height // tile), _tile_columns(width, tile)
    while (rows * columns) % GEMM_COLUMNS and (rows * columns) & (rows * columns - 1):
        rows += 1
    return rows


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _input_transform(in_shape, out_shape, padding, tile, b):
    """``V[i * alpha + j, c, (n, y, x)] = (B^T d B)[i, j]`` for the input tile at ``(y, x)``
    (``x`` up to :func:`_tile_columns`; the tiles past the image's edge see zeros)."""
    batch, channels, height, width = in_shape
    tiles_h = _tile_rows(out_shape[2], out_shape[3], tile)
    columns = _tile_columns(out_shape[3], tile)
    alpha = tile + KERNEL - 1
    top, left = padding[0], padding[1]
    # The padded input with its columns split by phase: column ``col`` is at
    # ``[..., col % m, col // m]``, so a tile position is one contiguous run across the tiles of
    # a row (the transform's vector) instead of a stride-``m`` gather; columns past ``width``
    # read zeros up to ``columns * m + m``.
    padded_shape = (batch, channels, tiles_h * tile + KERNEL - 1, tile, columns + 1)

    def compute(data):
        # Padding is its own block (a copy loop), so the transform reads without conditions.
        def pad(n, c, row, phase, col_block):
            col = col_block * tile + phase
            return tirx.if_then_else(
                tirx.all(row >= top, row < top + height, col >= left, col < left + width),
                data[n, c, row - top, col - left],
                tirx.const(0.0, "float32"),
            )

        padded = te.compute(_int64(padded_shape), pad, "winograd_pad")

        # The input tiles, each pixel once per tile: the tile the transform reads alpha^2 times.
        tiles = te.compute(
            _int64((channels, batch * tiles_h, columns, alpha, alpha)),
            lambda c, tile_row, x, r, s: padded[
                tile_row // tiles_h, c, tile_row % tiles_h * tile + r, s % tile, x + s // tile
            ],
            "winograd_tiles",
            attrs={WINOGRAD_ATTR: "tiles"},
        )

        # B^T d B in two passes of alpha terms each (not one of alpha^2): B^T d, then (.) B.
        columns_done = te.compute(
            _int64((channels, batch * tiles_h, columns, alpha, alpha)),
            lambda c, tile_row, x, i, s: _select(
                i,
                [
                    _weighted_sum((b[r, ii], tiles[c, tile_row, x, r, s]) for r in range(alpha))
                    for ii in range(alpha)
                ],
            ),
            "winograd_bt_d",
            attrs={WINOGRAD_ATTR: "gather"},
        )

        def element(e, c, tile_row, x):
            i = e // alpha
            return _select(
                e % alpha,
                [
                    _weighted_sum(
                        (b[s, j], columns_done[c, tile_row, x, i, s]) for s in range(alpha)
                    )
                    for j in range(alpha)
                ],
            )

        return te.compute(
            _int64((alpha * alpha, channels, batch * tiles_h, columns)),
            element,
            "winograd_input",
            attrs={WINOGRAD_ATTR: "input", TILE_ATTR: tile},
        )

    return compute


def _gemm(weights, tiles):
    """``M[e, k, t] = sum_c U[e, k, c] V[e, c, t]`` with ``U`` in panels (``WEIGHT_PANEL``)."""
    panel = int(weights.shape[3])
    channels = tiles.shape[1]
    c = te.reduce_axis((0, channels), "c")
    return te.compute(
        (tiles.shape[0], weights.shape[1] * panel, tiles.shape[2]),
        lambda e, k, t: te.sum(weights[e, k // panel, c, k % panel] * tiles[e, c, t], axis=c),
        "winograd_gemm",
    )


def _output_transform(out_shape, tile, a):
    """``Y[n, k, y * m + u, x * m + v] = (A^T M A)[u, v]`` for the tile at ``(y, x)``."""
    batch, channels, height, width = out_shape
    tiles_h, columns = _tile_rows(height, width, tile), _tile_columns(width, tile)
    alpha = tile + KERNEL - 1

    def compute(products):
        # A^T M A in two passes of alpha terms each: (.) A per tile row i, then A^T (.).
        rows_done = te.compute(
            _int64((channels, batch * tiles_h, columns, alpha, tile)),
            lambda k, tile_row, x, i, v: _select(
                v,
                [
                    _weighted_sum(
                        (a[j, vv], products[i * alpha + j, k, tile_row * columns + x])
                        for j in range(alpha)
                    )
                    for vv in range(tile)
                ],
            ),
            "winograd_m_a",
            attrs={WINOGRAD_ATTR: "gather"},
        )

        def element(n, k, h, w):
            tile_row, x = n * tiles_h + h // tile, w // tile
            return _select(
                h % tile,
                [
                    _weighted_sum(
                        (a[i, u], rows_done[k, tile_row, x, i, w % tile]) for i in range(alpha)
                    )
                    for u in range(tile)
                ],
            )

        return te.compute(
            _int64((batch, channels, height, width)),
            element,
            "winograd_output",
            attrs={WINOGRAD_ATTR: "output", TILE_ATTR: tile},
        )

    return compute
