"""Plan -> weights: masks from thresholds, masked weights, and bias correction.

Bias correction: zeroing part of a layer's weight lowers its output on average by
``delta[o] = sum_{i,k} dW[o, i, k] * mean(x[i])`` (``dW`` the removed weights, ``mean(x)`` the
layer input's mean under each kernel tap on calibration data). ``delta`` is added back to the
layer's bias, or, when the layer has none, subtracted from the following batch norm's running
mean; layers with neither (and ``conv2d_transpose``) are left uncorrected.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from .layers import PrunableLayer, effective_weight


def judged_magnitudes(
    layers: tuple[PrunableLayer, ...], params: Mapping[str, np.ndarray], *, effective: bool
) -> dict[str, np.ndarray]:
    """``|w|`` per layer: on the BN-folded weights if ``effective``, else the stored ones."""
    return {
        layer.weight: np.abs(
            effective_weight(layer, params) if effective else np.asarray(params[layer.weight])
        )
        for layer in layers
    }


def layer_masks(
    magnitudes: Mapping[str, np.ndarray], thresholds: Mapping[str, float]
) -> dict[str, np.ndarray]:
    """Keep-masks (True = kept): ``|w| >= threshold`` per layer."""
    return {name: magnitudes[name] >= thresholds[name] for name in thresholds}


def mask_digest(mask: np.ndarray) -> str:
    return hashlib.sha256(np.packbits(mask.ravel()).tobytes()).hexdigest()[:16]


def pruned_params(
    params: Mapping[str, np.ndarray],
    layers: tuple[PrunableLayer, ...],
    masks: Mapping[str, np.ndarray],
    input_means: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The changed parameters only: masked weights, and corrected biases if ``input_means``."""
    changed: dict[str, np.ndarray] = {}
    for layer in layers:
        mask = masks.get(layer.weight)
        if mask is None or mask.all():
            continue
        weight = np.asarray(params[layer.weight])
        changed[layer.weight] = np.where(mask, weight, 0).astype(weight.dtype)
        if input_means is None or layer.op == "conv2d_transpose":
            continue
        delta = output_shift(layer, np.where(mask, 0, weight), input_means[layer.weight])
        if layer.bias is not None:
            bias = np.asarray(changed.get(layer.bias, params[layer.bias]))
            changed[layer.bias] = (bias + delta.reshape(bias.shape)).astype(bias.dtype)
        elif layer.batch_norm is not None:
            mean = np.asarray(params[layer.batch_norm.mean])
            changed[layer.batch_norm.mean] = (mean - delta).astype(mean.dtype)
    return changed


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
