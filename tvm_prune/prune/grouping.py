"""Group-structured pruning: zero a dense conv outside ``g`` diagonal blocks so it becomes a
grouped conv (``DenseToGroupedConv`` rewrites it at compile; ``g`` times fewer MACs).

**Which blocks.** For a kernel ``W: (O, I, kh, kw)`` and ``g`` groups, choose a balanced
assignment of output channels (``O/g`` per block) and input channels (``I/g`` per block) that
keeps the most magnitude ``sum |W[o, i]|`` over pairs in the same block. This is balanced
bipartite co-clustering, NP-hard jointly, but each half is an exact assignment problem: with the
input blocks fixed, giving output channel ``o`` block ``b`` keeps ``sum_{i in b} |W[o, i]|``,
and filling ``O/g`` slots per block optimally is a linear assignment (Hungarian algorithm,
``scipy.optimize.linear_sum_assignment``, a well-kept library). So we alternate exact
output and input assignments (block coordinate ascent: the kept magnitude never decreases)
until neither half changes, from the contiguous blocks and a few random balanced starts, and
keep the best. On 32-256 channels one run takes milliseconds.

**Which layers and ``g``.** The behaviour-change metric of the pruning session
(:mod:`.metrics`, on calibration data) is measured with each layer grouped alone at each
candidate ``g``, the session's compensation re-fitting the kept weights and bias
(:func:`.apply.layer_changes`; pruned positions stay zero). A layer takes the largest ``g``
within ``tolerance``; then all chosen layers are measured together and, while the sum
exceeds ``tolerance``, the layer whose own change is largest falls back one candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..model import Model
from .apply import layer_changes, with_masks
from .layers import PrunableLayer
from .session import PruneSession

CANDIDATE_GROUPS = (2, 4, 8)
RANDOM_STARTS = 4


@dataclass(frozen=True)
class BlockAssignment:
    """Block of each output and input channel, and the fraction of ``sum |W|`` kept."""

    out_block: np.ndarray
    in_block: np.ndarray
    kept: float

    def mask(self, shape: Sequence[int]) -> np.ndarray:
        """Keep-mask of a kernel of ``shape`` (True where output and input share a block)."""
        same = self.out_block[:, None] == self.in_block[None, :]
        return np.broadcast_to(same.reshape(*same.shape, *[1] * (len(shape) - 2)), shape).copy()


def block_assignment(
    kernel: np.ndarray, groups: int, *, starts: int = RANDOM_STARTS, seed: int = 0
) -> BlockAssignment:
    """The balanced block assignment keeping the most ``|kernel|`` (see the module docstring)."""
    out_channels, in_channels = kernel.shape[:2]
    if out_channels % groups or in_channels % groups:
        raise ValueError(f"{groups} groups do not divide a {out_channels}x{in_channels} kernel")
    score = np.abs(kernel).reshape(out_channels, in_channels, -1).sum(axis=2)
    total = float(score.sum()) or 1.0
    rng = np.random.default_rng(seed)
    inits = [np.arange(in_channels) // (in_channels // groups)]
    inits += [rng.permutation(inits[0]) for _ in range(starts)]
    best = None
    for in_block in inits:
        out_block, in_block, kept = _alternate(score, groups, in_block)
        if best is None or kept > best.kept * total:
            best = BlockAssignment(out_block, in_block, kept / total)
    return best


def _alternate(score: np.ndarray, groups: int, in_block: np.ndarray):
    kept = -1.0
    while True:
        out_block = _assign(_block_sums(score, in_block, groups), groups)
        in_block = _assign(_block_sums(score.T, out_block, groups), groups)
        now = float(score[out_block[:, None] == in_block[None, :]].sum())
        if now <= kept:
            return out_block, in_block, now
        kept = now


def _block_sums(score: np.ndarray, blocks: np.ndarray, groups: int) -> np.ndarray:
    """``[rows, groups]``: each row's score summed over the columns of each block."""
    one_hot = np.eye(groups)[blocks]
    return score @ one_hot


def _assign(gain: np.ndarray, groups: int) -> np.ndarray:
    """The block of each row maximising total gain with ``rows / groups`` rows per block."""
    per = gain.shape[0] // groups
    rows, slots = linear_sum_assignment(np.repeat(gain, per, axis=1), maximize=True)
    blocks = np.empty(gain.shape[0], dtype=np.int64)
    blocks[rows] = slots // per
    return blocks


@dataclass(frozen=True)
class GroupPlan:
    """Chosen groups per layer (weight name -> g), the per-layer measurements and the result.

    ``trials`` lists ``{"weight", "groups", "kept", "metric"}`` for each layer grouped alone;
    ``metric_value`` is the behaviour change of all chosen layers together.
    """

    metric: str
    tolerance: float
    groups: dict[str, int]
    trials: tuple[dict[str, Any], ...]
    metric_value: float
    steps: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "grouped", **asdict(self), "trials": list(self.trials)}


def groupable_layers(session: PruneSession) -> list[PrunableLayer]:
    """Dense (``groups=1``) convs with more than one input channel."""
    result = []
    for layer in session.layers:
        weight = session.model.params[layer.weight]
        in_channels = int(layer.input_var.ty.shape[1]) if layer.op == "conv2d" else 0
        if layer.op == "conv2d" and weight.shape[1] == in_channels > 1:
            result.append(layer)
    return result


def grouped_changes(session: PruneSession, layer: PrunableLayer, groups: int):
    """``(changed params, assignment)`` grouping ``layer`` into ``groups`` blocks."""
    assignment = block_assignment(session.judged[layer.weight], groups)
    weight = session.model.params[layer.weight]
    mask = assignment.mask(weight.shape)
    changes = layer_changes(
        layer,
        session.model.params,
        mask,
        session.input_moments.get(layer.weight),
        session.compensation,
    )
    return changes, assignment


def plan_groups(
    session: PruneSession, *, tolerance: float, candidates: Sequence[int] = CANDIDATE_GROUPS
) -> GroupPlan:
    """The most groups per layer whose behaviour change stays within ``tolerance``."""
    trials, acceptable = [], {}
    for layer in groupable_layers(session):
        out_channels, in_channels = session.model.params[layer.weight].shape[:2]
        for groups in sorted(candidates):
            if out_channels % groups or in_channels % groups:
                continue
            changes, assignment = grouped_changes(session, layer, groups)
            value = session.metric_of(changes)
            trials.append(
                {
                    "weight": layer.weight,
                    "groups": groups,
                    "kept": round(assignment.kept, 4),
                    "metric": value,
                }
            )
            if value <= tolerance:
                acceptable.setdefault(layer.weight, []).append((groups, value))
    chosen = {name: options[-1] for name, options in acceptable.items()}
    steps = []
    while True:
        value = session.metric_of(_all_changes(session, {k: g for k, (g, _) in chosen.items()}))
        steps.append({"groups": {k: g for k, (g, _) in chosen.items()}, "metric": value})
        if value <= tolerance or not chosen:
            break
        # Back off the layer that hurts most on its own by one candidate.
        worst = max(chosen, key=lambda k: chosen[k][1])
        options = [o for o in acceptable[worst] if o[0] < chosen[worst][0]]
        if options:
            chosen[worst] = options[-1]
        else:
            del chosen[worst]
    return GroupPlan(
        metric=session.metric,
        tolerance=tolerance,
        groups={k: g for k, (g, _) in chosen.items()},
        trials=tuple(trials),
        metric_value=value,
        steps=tuple(steps),
    )


def _all_changes(session: PruneSession, groups: dict[str, int]) -> dict[str, np.ndarray]:
    layers = {layer.weight: layer for layer in session.layers}
    changed: dict[str, np.ndarray] = {}
    for name, g in groups.items():
        changed.update(grouped_changes(session, layers[name], g)[0])
    return changed


def apply_group_plan(model: Model, session: PruneSession, plan: GroupPlan) -> Model:
    """``model`` with the plan's block masks applied (``PruneWeights``) and its weights
    re-fitted; compiling it turns each grouped layer into a grouped conv."""
    masks = {
        name: block_assignment(session.judged[name], g).mask(model.params[name].shape)
        for name, g in plan.groups.items()
    }
    return with_masks(model, masks, _all_changes(session, plan.groups), plan.to_dict())
