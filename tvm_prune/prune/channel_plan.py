"""Channel plans from filter magnitude, for a target fraction of multiply-accumulates kept.

A component (channels that go together, :class:`~tvm_prune.prune.depgraph.ChannelGroup`) is
scored by the L1 or L2 norm of its producers' filters, each divided by the mean norm of its
layer's filters so layers of different scale compare. Components are removed weakest first until
the model's MACs (every ``conv2d``, ``conv2d_transpose`` and ``matmul``, counted from the graph,
so a removed channel also shrinks its consumers and depthwise convs) reach the target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..relax_rewrite import static_shape
from .depgraph import (
    WEIGHT_AXES,
    ChannelPlanError,
    DepGraph,
    is_depthwise,
    op_name,
    plan_from_ranked,
)

NORMS = {"l1": 1, "l2": 2}


def count_macs(mod, graph: DepGraph, plan: Mapping[str, Sequence[int]] | None = None) -> int:
    """Multiply-accumulates of ``mod["main"]``'s layers with ``plan``'s channels removed."""
    roots = graph.removed_roots(plan) if plan else set()
    total = 0.0
    for var, call, macs in _layers(mod):
        macs *= _kept_fraction(graph, var, roots)
        data = call.args[0]
        if data in graph.maps and not is_depthwise(call):
            macs *= _kept_fraction(graph, data, roots)
        total += macs
    return round(total)


def _layers(mod):
    """``(var, call, dense MACs)`` of each conv/matmul binding of ``main`` with static shapes."""
    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            call = binding.value
            if op_name(call) not in WEIGHT_AXES:
                continue
            out_shape, weight_shape = static_shape(binding.var), static_shape(call.args[1])
            if out_shape is None or weight_shape is None:
                continue
            kernel = int(np.prod(weight_shape[2:]))
            if op_name(call) == "relax.matmul":
                macs = float(np.prod(out_shape)) * weight_shape[-2]
            elif op_name(call) == "relax.nn.conv2d_transpose":  # IOHW: each input scatters
                macs = float(np.prod(static_shape(call.args[0]))) * weight_shape[1] * kernel
            else:  # OIHW, I per group
                macs = float(np.prod(out_shape)) * weight_shape[1] * kernel
            yield binding.var, call, macs


def _kept_fraction(graph: DepGraph, var, roots) -> float:
    cmap = graph.maps.get(var)
    if cmap is None or not roots:
        return 1.0
    return 1.0 - len(graph.removed_channels(cmap, roots)) / len(cmap.nodes)


def magnitude_plan(
    mod,
    params: Mapping[str, np.ndarray],
    graph: DepGraph,
    *,
    macs: float,
    norm: str = "l1",
    multiple: int = 1,
) -> dict[str, list[int]]:
    """Remove the weakest components until at most ``macs`` (a fraction) of the MACs remain.

    See :func:`plan_for_macs`.
    """
    if norm not in NORMS:
        raise ChannelPlanError(f"unknown norm {norm!r}; use one of {', '.join(NORMS)}")
    scores = {}
    for name, producer in graph.producers.items():
        weight = np.moveaxis(np.asarray(params[name], dtype=np.float64), producer.out_axis, 0)
        filters = np.linalg.norm(weight.reshape(len(weight), -1), ord=NORMS[norm], axis=1)
        scores[name] = filters / max(float(filters.mean()), np.finfo(np.float64).tiny)
    members = removable_components(graph)
    ranked = [float(np.mean([scores[w][c] for w, c in comp])) for comp in members]
    return plan_for_macs(mod, graph, members, ranked, macs=macs, multiple=multiple)


def removable_components(graph: DepGraph) -> list[tuple[tuple[str, int], ...]]:
    """Every removable component of every group, in program order."""
    return [group.components[i] for group in graph.groups() for i in group.removable]


def component_macs(mod, graph: DepGraph, components) -> np.ndarray:
    """The MACs removing each component alone saves, as a fraction of the model's MACs.

    First order: each layer's MACs times the share of its output (and, unless depthwise,
    input) channels the component holds.
    """
    index = {graph.find(graph.node_of(*comp[0])): i for i, comp in enumerate(components)}
    saved = np.zeros(len(components))
    total = 0.0
    for var, call, macs in _layers(mod):
        total += macs
        maps = [graph.maps.get(var)]
        if not is_depthwise(call):
            maps.append(graph.maps.get(call.args[0]))
        for cmap in maps:
            if cmap is None:
                continue
            for node in cmap.nodes:
                i = index.get(graph.find(node)) if node is not None else None
                if i is not None:
                    saved[i] += macs / len(cmap.nodes)
    return saved / total


def plan_for_macs(
    mod,
    graph: DepGraph,
    components,
    scores: Sequence[float],
    *,
    macs: float,
    multiple: int = 1,
) -> dict[str, list[int]]:
    """Remove the lowest-scored ``components`` until at most ``macs`` (a fraction) remain.

    Every producer keeps one channel at least; if the target cannot be reached that way, the
    plan removes all it can and :func:`count_macs` tells what it reached. With ``multiple``
    (the vector width: 8 float32 lanes on AVX2, 4 on NEON), every pruned producer keeps a
    multiple of that many channels: the strongest removed components come back until it does.
    """
    if not 0 < macs <= 1:
        raise ChannelPlanError(f"--macs {macs} is not a fraction in (0, 1]")
    ranked = [components[i] for i in np.argsort(np.asarray(scores), kind="stable")]

    def plan_of(count: int) -> dict[str, list[int]]:
        return plan_from_ranked(graph, _round_kept(graph, ranked[:count], multiple))

    target = macs * count_macs(mod, graph)
    low, high = 0, len(ranked)  # smallest count whose plan reaches the target
    while low < high:
        middle = (low + high) // 2
        if count_macs(mod, graph, plan_of(middle)) <= target:
            high = middle
        else:
            low = middle + 1
    return plan_of(low)


def _round_kept(graph: DepGraph, removed: list, multiple: int) -> list:
    """``removed`` (weakest first) minus its strongest components until every producer that
    loses channels keeps a multiple of ``multiple``."""
    removed = list(removed)
    while multiple > 1:
        counts: dict[str, int] = {}
        for members in removed:
            for weight, _ in members:
                counts[weight] = counts.get(weight, 0) + 1
        uneven = {w for w, n in counts.items() if (graph.producers[w].channels - n) % multiple}
        if not uneven:
            break
        last = max(i for i, members in enumerate(removed) if uneven & {w for w, _ in members})
        del removed[last]
    return removed
