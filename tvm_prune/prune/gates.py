"""Channel plans from learned per-channel gates, with the task accuracy in the loop.

Every removable component (coupled channels, :class:`~tvm_prune.prune.depgraph.ChannelGroup`)
gets a gate ``g`` in [0, 1] that scales its producers' filters, so ``g = 0`` is the masked
model that ``RemoveChannels`` reproduces exactly. The gates minimise

    cross-entropy(weights * gates) + weight_lambda * sum_k macs_k * g_k

where ``macs_k`` is the share of the model's MACs component ``k`` costs
(:func:`~tvm_prune.prune.channel_plan.component_macs`): the learning weight sets how hard
pruning pushes. Gradients come from TVM's ``Gradient`` pass (:class:`.training.Trainer`).

The loop: measure the *first accuracy* of the dense model; each round, take Adam steps on the
gates and (with a small learning rate) on the weights, prune the components whose gate fell
below ``threshold`` and measure the *pruned accuracy*. If it stays within ``budget`` of the
first accuracy, the round's gates and weights are kept and the learning weight grows (push
harder); otherwise the learning weight shrinks (back off) and training goes on from there, so
the cross-entropy can win the channels back. The loop ends when a kept round reaches the MAC
target, or after ``rounds``. The plan then removes the components with the lowest kept gates
until the MAC target is met, and the gates are folded into the kept filters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..model import Model
from .channel_plan import (
    component_macs,
    count_macs,
    plan_for_macs,
    removable_components,
)
from .data import CalibrationData
from .depgraph import DepGraph, build_depgraph, mask_params, plan_from_ranked
from .training import Adam, Trainer

logger = logging.getLogger(__name__)


@dataclass
class GateResult:
    """A gate-learned plan: channels to remove, weights with the gates folded in, the trace."""

    plan: dict[str, list[int]]
    params: dict[str, np.ndarray]
    first_accuracy: float
    rounds: list[dict] = field(default_factory=list)


def learn_gates(
    model: Model,
    data: CalibrationData,
    *,
    macs: float,
    budget: float = 0.01,
    trainer: Trainer | None = None,
    rounds: int = 12,
    steps: int = 20,
    lr: float = 0.05,
    weight_lr: float = 1e-3,
    weight_lambda: float = 1.0,
    threshold: float = 0.05,
    seed: int = 0,
    multiple: int = 1,
) -> GateResult:
    """Learn gates on ``data`` (inputs with labels) and plan to keep ``macs`` of the MACs.

    ``budget`` is the accuracy drop (a fraction, 0.01 = one point) a round may cost and still
    count as holding. ``trainer`` is reused when given (compiling one costs seconds).
    ``multiple``: see :func:`~tvm_prune.prune.channel_plan.plan_for_macs`.
    """
    trainer = trainer or Trainer(model)
    graph = build_depgraph(model.mod, model.params)
    components = removable_components(graph)
    cost = component_macs(model.mod, graph, components)
    dense_macs = count_macs(model.mod, graph)
    first = trainer.evaluate(model.params, data)[1]
    gates, params = np.ones(len(components)), dict(model.params)
    kept_gates, kept_params, lam = gates, params, weight_lambda
    gate_optimizer, weight_optimizer = Adam(lr), Adam(weight_lr)
    batches = trainer.batches(data, seed=seed)
    result = GateResult({}, {}, first)
    for round_index in range(rounds):
        for _ in range(steps):
            gated = gated_params(graph, params, components, gates)
            _, grads = trainer.loss_and_grads(gated, *next(batches))
            grad = _gate_grads(graph, params, components, grads) + lam * cost
            # d loss / d filter = gate * d loss / d gated filter: the gated_params scaling again.
            params = weight_optimizer.step(params, gated_params(graph, grads, components, gates))
            gates = np.clip(gate_optimizer.step({"g": gates}, {"g": grad})["g"], 0.0, 1.0)
        closed = [components[i] for i in np.argsort(gates) if gates[i] < threshold]
        plan = plan_from_ranked(graph, closed)
        gated = mask_params(graph, gated_params(graph, params, components, gates), plan)
        accuracy = trainer.evaluate(gated, data)[1]
        kept = count_macs(model.mod, graph, plan) / dense_macs
        holds = first - accuracy <= budget
        result.rounds.append(
            {
                "round": round_index + 1,
                "weight_lambda": lam,
                "macs_kept": kept,
                "accuracy": accuracy,
                "holds": holds,
            }
        )
        logger.info(
            "gates round %d: learning weight %.3g, MACs kept %.3f, accuracy %.4f (first %.4f)%s",
            round_index + 1,
            lam,
            kept,
            accuracy,
            first,
            "" if holds else ", backing off",
        )
        if holds:
            kept_gates, kept_params, lam = gates, params, lam * 1.5
            if kept <= macs:
                break
        else:
            lam *= 0.5
    result.plan = plan_for_macs(
        model.mod, graph, components, kept_gates, macs=macs, multiple=multiple
    )
    gated = gated_params(graph, kept_params, components, kept_gates)
    result.params = mask_params(graph, gated, result.plan)
    return result


def gated_params(graph: DepGraph, params, components, gates: np.ndarray) -> dict:
    """``params`` with each component's producer filters scaled by its gate."""
    scales: dict[str, np.ndarray] = {}
    for gate, members in zip(gates, components, strict=True):
        for weight, channel in members:
            producer = graph.producers[weight]
            scales.setdefault(weight, np.ones(producer.channels))[channel] = gate
    result = dict(params)
    for weight, scale in scales.items():
        value = np.asarray(params[weight])
        shape = [1] * value.ndim
        shape[graph.producers[weight].out_axis] = len(scale)
        result[weight] = (value * scale.reshape(shape)).astype(value.dtype)
    return result


def _gate_grads(graph: DepGraph, params, components, grads) -> np.ndarray:
    """d loss / d gate from the gradients of the gated filters (chain rule: sum of grad * w)."""
    per_channel = {}
    for weight in {w for members in components for w, _ in members}:
        axis = graph.producers[weight].out_axis
        product = np.moveaxis(grads[weight] * np.asarray(params[weight]), axis, 0)
        per_channel[weight] = product.reshape(len(product), -1).sum(axis=1)
    return np.array(
        [sum(per_channel[w][c] for w, c in members) for members in components], dtype=np.float64
    )
