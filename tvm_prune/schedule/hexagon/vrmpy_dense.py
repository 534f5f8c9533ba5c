"""``VrmpyDense``: uint8 x int8 -> int32 dense on HVX's ``vrmpy`` (32 lanes x 4 products).

Recognised by structure: one block, two spatial iterators ``(m, n)`` and one reduction ``k``,
writing ``int32 C[m, n]`` from ``uint8 A[m, k]`` and ``int8 B[n, k]`` (``x @ W.T``, as
``R.matmul`` with a transposed weight legalises), with ``N % 32 == 0`` and ``K % 4 == 0``.
The weight is repacked to ``[N / 32, K / 4, 32, 4]`` (marked as a layout-rewrite preprocess,
so for constant weights it is folded at compile time) and each 32 x 4 tile is one
``vrmpybusv.acc`` (:mod:`.vrmpy_intrin`). Anything else is left to the CPU rules.
"""

from __future__ import annotations

import logging

from tvm import s_tir, tirx
from tvm.s_tir import dlight as dl
from tvm.target import Target

from ..cpu.base import PREPROC_ATTR
from ..cpu.tiling import blocks_of
from .vrmpy_intrin import DEPTH, LANES, vrmpy_intrin

logger = logging.getLogger(__name__)


class VrmpyDense(dl.ScheduleRule):
    """See the module docstring."""

    name = "VrmpyDense"

    def is_target_available(self, target: Target) -> bool:
        return target.kind.name == "hexagon"

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        blocks = blocks_of(sch)
        if len(blocks) != 1:
            return _skip("not a single block")
        block = blocks[0]
        reason = _why_not(sch.get(block))
        if reason:
            return _skip(reason)
        packed = sch.cache_read(block, 1, "global")
        sch.annotate(packed, PREPROC_ATTR, True)
        sch.transform_layout(
            packed,
            ("write", 0),
            lambda n, k: (n // LANES, k // DEPTH, n % LANES, k % DEPTH),
        )
        m, n, k = sch.get_loops(block)
        n_outer, n_lanes = sch.split(n, [None, LANES])
        k_outer, k_depth = sch.split(k, [None, DEPTH])
        sch.reorder(m, n_outer, k_outer, n_lanes, k_depth)
        sch.decompose_reduction(block, k_outer)
        sch.tensorize(n_lanes, vrmpy_intrin())
        return sch


def _why_not(block: tirx.SBlock) -> str | None:
    kinds = [iv.iter_type for iv in block.iter_vars]
    if kinds != [tirx.IterVar.DataPar, tirx.IterVar.DataPar, tirx.IterVar.CommReduce]:
        return "iterators are not (spatial, spatial, reduction)"
    if len(block.writes) != 1:
        return "more than one output"
    out = block.writes[0].source
    operands = [r.source for r in block.reads if not r.source.same_as(out)]
    if len(operands) != 2:
        return "not C += A * B"
    data, weight = operands
    if (str(out.dtype), str(data.dtype), str(weight.dtype)) != ("int32", "uint8", "int8"):
        return f"dtypes {out.dtype} = {data.dtype} x {weight.dtype}"
    m, n, k = (int(iv.dom.extent) for iv in block.iter_vars)
    shapes = [[int(d) for d in b.shape] for b in (out, data, weight)]
    if shapes != [[m, n], [m, k], [n, k]]:
        return f"shapes {shapes} are not C[m, n], A[m, k], B[n, k]"
    if n % LANES or k % DEPTH:
        return f"N={n} not a multiple of {LANES} or K={k} of {DEPTH}"
    return None


def _skip(reason: str) -> None:
    logger.debug("VrmpyDense: skips: %s", reason)
