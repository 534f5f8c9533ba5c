"""Is a conv kernel block-diagonal under some channel permutation, and with how many blocks?

A dense kernel ``W: (O, I, kh, kw)`` equals a grouped conv with ``g`` groups when its output
and input channels can be ordered so that ``W`` is zero outside ``g`` equal diagonal blocks of
``(O/g, I/g)``. The channels that must share a block are the connected components of the
bipartite graph output channel <-> input channel with an edge wherever a tap is nonzero
(``scipy.sparse.csgraph.connected_components``). Components are then packed into ``g`` blocks
of exactly ``O/g`` outputs and ``I/g`` inputs (an exact two-dimensional bin packing, searched
with backtracking under a step budget); the largest ``g`` that packs wins. Channels with no
nonzero tap (all-zero output filters, unread inputs) are components of one channel and fill
any block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# Backtracking steps per tried group count; packings of real kernels take a few hundred.
_PACKING_BUDGET = 200_000


@dataclass(frozen=True)
class BlockStructure:
    """``groups`` diagonal blocks: grouped output channel ``k`` is original ``out_order[k]``,
    grouped input channel ``k`` is original ``in_order[k]``; block ``b`` holds the slices
    ``[b * O/g, (b + 1) * O/g)`` and ``[b * I/g, (b + 1) * I/g)`` of those orders."""

    groups: int
    out_order: np.ndarray
    in_order: np.ndarray

    def grouped_kernel(self, kernel: np.ndarray) -> np.ndarray:
        """The ``(O, I/g, kh, kw)`` kernel of the grouped conv (OIHW, as Relax reads it)."""
        out_channels, in_channels = kernel.shape[:2]
        per_out, per_in = out_channels // self.groups, in_channels // self.groups
        permuted = kernel[self.out_order][:, self.in_order]
        blocks = [
            permuted[b * per_out : (b + 1) * per_out, b * per_in : (b + 1) * per_in]
            for b in range(self.groups)
        ]
        return np.ascontiguousarray(np.concatenate(blocks, axis=0))

    @property
    def permutes_outputs(self) -> bool:
        return not np.array_equal(self.out_order, np.arange(len(self.out_order)))


def find_blocks(kernel: np.ndarray) -> BlockStructure | None:
    """The block structure with the most groups (at least 2), or None if there is none."""
    out_channels, in_channels = kernel.shape[:2]
    taps = np.any(kernel.reshape(out_channels, in_channels, -1) != 0, axis=2)
    outs, ins = np.nonzero(taps)
    size = out_channels + in_channels
    graph = coo_matrix((np.ones(len(outs)), (outs, out_channels + ins)), shape=(size, size))
    count, labels = connected_components(graph, directed=False)
    members = [np.flatnonzero(labels == c) for c in range(count)]
    components = [(m[m < out_channels], m[m >= out_channels] - out_channels) for m in members]
    common = math.gcd(out_channels, in_channels)
    for groups in range(min(count, common), 1, -1):
        if common % groups:
            continue
        bins = _pack(
            [(len(o), len(i)) for o, i in components],
            groups,
            out_channels // groups,
            in_channels // groups,
        )
        if bins is not None:
            return _structure(components, bins, groups)
    return None


def _pack(sizes, groups: int, per_out: int, per_in: int) -> list[int] | None:
    """A bin per component so every bin holds exactly ``(per_out, per_in)``, or None."""
    order = sorted(range(len(sizes)), key=lambda k: (-sizes[k][0] - sizes[k][1], k))
    room = [[per_out, per_in] for _ in range(groups)]
    chosen = [0] * len(sizes)
    steps = 0

    def place(position: int) -> bool:
        nonlocal steps
        if position == len(order):
            return True
        steps += 1
        if steps > _PACKING_BUDGET:
            return False
        item = order[position]
        need_out, need_in = sizes[item]
        tried = set()
        for b, (left_out, left_in) in enumerate(room):
            # Bins with equal room are interchangeable: try one of them.
            if (left_out, left_in) in tried or need_out > left_out or need_in > left_in:
                continue
            tried.add((left_out, left_in))
            room[b][0] -= need_out
            room[b][1] -= need_in
            chosen[item] = b
            if place(position + 1):
                return True
            room[b][0] += need_out
            room[b][1] += need_in
        return False

    return chosen if place(0) else None


def _structure(components, bins: list[int], groups: int) -> BlockStructure:
    outs = [[] for _ in range(groups)]
    ins = [[] for _ in range(groups)]
    for (out_channels, in_channels), b in zip(components, bins, strict=True):
        outs[b].extend(out_channels.tolist())
        ins[b].extend(in_channels.tolist())
    # Blocks in the order of their first output channel, channels ascending inside a block:
    # a kernel whose blocks are already contiguous gets identity orders.
    blocks = sorted(range(groups), key=lambda b: min(outs[b]))
    out_order = np.array([c for b in blocks for c in sorted(outs[b])], dtype=np.int64)
    in_order = np.array([c for b in blocks for c in sorted(ins[b])], dtype=np.int64)
    return BlockStructure(groups, out_order, in_order)
