"""Behaviour-change metrics: how far pruned outputs are from the dense ones (lower is better).

Every metric takes the dense and the pruned outputs of the same inputs, stacked along axis 0
(one row per input), and returns a float that is 0 for identical outputs:

* ``kl``: mean over rows of KL(softmax(dense) || softmax(pruned)) over the last axis, in nats;
* ``top1``: fraction of rows whose arg-max (last axis) differs (1 - top-1 agreement);
* ``rel-l2``: ``||pruned - dense|| / ||dense||`` over the whole batch;
* ``cosine``: mean over rows of ``1 - cos(dense, pruned)`` (rows flattened).

``kl`` and ``top1`` suit classifiers; ``rel-l2`` and ``cosine`` dense maps (detection,
segmentation).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def kl_divergence(dense: np.ndarray, pruned: np.ndarray) -> float:
    log_p = _log_softmax(np.asarray(dense, dtype=np.float64))
    log_q = _log_softmax(np.asarray(pruned, dtype=np.float64))
    kl = np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)
    return float(np.mean(kl))


def top1_disagreement(dense: np.ndarray, pruned: np.ndarray) -> float:
    return float(np.mean(np.argmax(dense, axis=-1) != np.argmax(pruned, axis=-1)))


def relative_l2(dense: np.ndarray, pruned: np.ndarray) -> float:
    dense = np.asarray(dense, dtype=np.float64)
    diff = np.asarray(pruned, dtype=np.float64) - dense
    return float(np.linalg.norm(diff) / max(np.linalg.norm(dense), np.finfo(np.float64).tiny))


def cosine_distance(dense: np.ndarray, pruned: np.ndarray) -> float:
    a = np.asarray(dense, dtype=np.float64).reshape(len(dense), -1)
    b = np.asarray(pruned, dtype=np.float64).reshape(len(pruned), -1)
    tiny = np.finfo(np.float64).tiny
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), tiny)
    return float(np.mean(1.0 - np.sum(a * b, axis=1) / norms))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "kl": kl_divergence,
    "top1": top1_disagreement,
    "rel-l2": relative_l2,
    "cosine": cosine_distance,
}


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of classifier outputs (arg-max over the last axis) against labels."""
    predicted = np.argmax(outputs.reshape(len(labels), -1), axis=-1)
    return float(np.mean(predicted == np.asarray(labels).reshape(-1)))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - np.max(x, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
