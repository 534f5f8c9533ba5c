"""Plan -> weights: masks from thresholds, masked weights, and compensation for what they shift.

Compensation (``COMPENSATIONS``), on calibration statistics of each layer's input:

* ``bias``: zeroing part of a layer's weight lowers its output on average by
  ``delta[o] = sum_{i,k} dW[o, i, k] * mean(x[i])`` (``dW`` the removed weights, ``mean(x)`` the
  layer input's mean under each kernel tap). ``delta`` is added back to the layer's bias, or,
  when the layer has none, subtracted from the following batch norm's running mean.
* ``least-squares``: the kept weights of each output channel and that same output shift are
  re-solved so the pruned layer reproduces the dense layer's output on the calibration inputs
  in the least-squares sense: ``min E[(p.w - p_K.v_K - delta)^2] + lam |v_K - w_K|^2`` over
  input patches ``p`` for new kept weights ``v_K`` (the normal equations only need
  ``E[p p^T]``; ``lam`` is 1 % of the mean diagonal, SparseGPT's dampening, and pulls toward
  the original weights, so a layer that loses little changes little even where the
  calibration data cannot pin the solution down). Pruned positions stay exactly zero. Layer
  by layer, on the dense network's inputs (as OBC/SparseGPT do). Layers too wide for it
  (:data:`.engine.MAX_LEAST_SQUARES_FEATURES`) or grouped get ``bias``.

Layers with neither bias nor batch norm keep no shift; ``conv2d_transpose`` is not compensated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from ..model import Model, TransformRecord
from .engine import InputMoments
from .layers import PrunableLayer


def layer_masks(
    magnitudes: Mapping[str, np.ndarray], thresholds: Mapping[str, float]
) -> dict[str, np.ndarray]:
    """Keep-masks (True = kept): ``|w| >= threshold`` per layer."""
    return {name: magnitudes[name] >= thresholds[name] for name in thresholds}


def mask_digest(mask: np.ndarray) -> str:
    return hashlib.sha256(np.packbits(mask.ravel()).tobytes()).hexdigest()[:16]


def with_masks(
    model: Model,
    masks: Mapping[str, np.ndarray],
    params: Mapping[str, np.ndarray],
    report: dict,
) -> Model:
    """``model`` with ``masks`` applied by ``PruneWeights`` and ``params`` replacing its weights,
    recorded as a ``PruneWeights`` transform whose ``report`` gains the masks' digests."""
    from ..transform import PruneWeights

    report["mask_sha256"] = {name: mask_digest(mask) for name, mask in masks.items()}
    mod = PruneWeights(masks)(model.mod)
    return model.with_transform(
        mod, TransformRecord("PruneWeights", report), params={**model.params, **params}
    )


COMPENSATIONS = ("none", "bias", "least-squares")
DAMPING = 0.01


def layer_changes(
    layer: PrunableLayer,
    params: Mapping[str, np.ndarray],
    mask: np.ndarray,
    moments: InputMoments | None,
    compensation: str,
) -> dict[str, np.ndarray]:
    """The parameters pruning ``layer`` with keep-mask ``mask`` changes: its masked (and, with
    least squares, re-solved) weight and its corrected bias or batch-norm mean."""
    weight = np.asarray(params[layer.weight])
    changed = {layer.weight: np.where(mask, weight, 0).astype(weight.dtype)}
    if compensation == "none" or moments is None or layer.op == "conv2d_transpose":
        return changed
    has_shift = layer.bias is not None or layer.batch_norm is not None
    if compensation == "least-squares" and moments.second is not None:
        solved, delta = _least_squares(layer, weight, mask, moments.second, has_shift)
        changed[layer.weight] = solved.astype(weight.dtype)
    else:
        delta = output_shift(layer, np.where(mask, 0, weight), moments.mean)
    if layer.bias is not None:
        bias = np.asarray(params[layer.bias])
        changed[layer.bias] = (bias + delta.reshape(bias.shape)).astype(bias.dtype)
    elif layer.batch_norm is not None:
        mean = np.asarray(params[layer.batch_norm.mean])
        changed[layer.batch_norm.mean] = (mean - delta).astype(mean.dtype)
    return changed


def _least_squares(
    layer: PrunableLayer, weight: np.ndarray, mask: np.ndarray, second: np.ndarray, shift: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Re-solved weight (same shape, zeros where ``mask`` is False) and per-channel shift."""
    transposed = layer.op == "matmul" and layer.out_axis == 1
    rows = (weight.T if transposed else weight.reshape(weight.shape[0], -1)).astype(np.float64)
    keep = mask.T if transposed else mask.reshape(mask.shape[0], -1)
    features = rows.shape[1]
    damping = DAMPING * float(np.mean(np.diag(second)[:features]))
    targets = second[:, :features] @ rows.T  # E[p' (p . w_o)] for every channel o
    solved = np.zeros_like(rows)
    delta = np.zeros(rows.shape[0])
    for o in range(rows.shape[0]):
        kept = np.flatnonzero(keep[o])
        index = np.append(kept, features) if shift else kept
        if not len(index):
            continue
        system = second[np.ix_(index, index)].copy()
        system[np.arange(len(kept)), np.arange(len(kept))] += damping
        rhs = targets[index, o].copy()
        rhs[: len(kept)] += damping * rows[o, kept]  # damp toward the original weights
        z = np.linalg.solve(system, rhs)
        solved[o, kept] = z[: len(kept)]
        if shift:
            delta[o] = z[-1]
    solved = solved.T if transposed else solved.reshape(weight.shape)
    return solved, delta


def output_shift(layer: PrunableLayer, removed: np.ndarray, input_mean: np.ndarray) -> np.ndarray:
    """Expected change of each output channel when the ``removed`` weights are zeroed."""
    removed = np.asarray(removed, dtype=np.float64)
    if layer.op == "matmul":
        return removed @ input_mean if layer.out_axis == 0 else input_mean @ removed
    input_mean = np.asarray(input_mean, dtype=np.float64)
    if input_mean.ndim == 1:  # one mean per channel: every kernel tap sees the same mean
        input_mean = np.broadcast_to(
            input_mean[:, None, None], (len(input_mean), *removed.shape[2:])
        )
    out_channels, group_in = removed.shape[:2]
    groups = max(input_mean.shape[0] // group_in, 1)
    means = input_mean.reshape(groups, group_in, *removed.shape[2:])
    group_of = np.arange(out_channels) // (out_channels // groups)
    return np.sum(removed * means[group_of], axis=(1, 2, 3))
