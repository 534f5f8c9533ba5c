"""Weight statistics per layer and magnitude thresholds derived from them.

Each layer's effective weights get their summary (mean, std, percentiles of ``|w|``) and a fitted
zero-centred distribution: a Laplace (scale ``b = mean|w - mu|``) or a normal (``sigma``),
whichever has the higher log-likelihood. A global target sparsity becomes per-layer thresholds
``t_l = c * scale_l``: one cut ``c`` in units of each layer's own fitted scale, found by
bisection so that the pruned fraction over all layers is the target. A layer with a wide
distribution therefore keeps a larger threshold than a narrow one, and no layer is wiped out by
a cut sized for another layer's scale, as a single global magnitude cut does.

That rule prunes every layer to about the same fraction. :func:`lamp_thresholds` also derives
each threshold from the layer's own distribution (of squared magnitudes, cumulated from the
top) but lets the fraction differ by layer; it is the default of the ``layerwise`` method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

_PERCENTILES = (10, 25, 50, 75, 90, 99)


def weight_statistics(weights: np.ndarray) -> dict:
    """JSON-ready statistics of one layer's (effective) weights and its fitted distribution."""
    w = np.asarray(weights, dtype=np.float64).ravel()
    mu = float(np.mean(w))
    std = float(np.std(w))
    b = float(np.mean(np.abs(w - mu)))
    tiny = np.finfo(np.float64).tiny
    loglik_laplace = float(np.sum(-np.log(2 * max(b, tiny)) - np.abs(w - mu) / max(b, tiny)))
    loglik_normal = float(
        np.sum(-0.5 * np.log(2 * np.pi * max(std, tiny) ** 2) - (w - mu) ** 2 / (2 * std**2 + tiny))
    )
    laplace = loglik_laplace >= loglik_normal
    magnitudes = np.abs(w)
    return {
        "count": int(w.size),
        "mean": mu,
        "std": std,
        "abs_percentiles": {
            str(p): float(v) for p, v in zip(_PERCENTILES, np.percentile(magnitudes, _PERCENTILES))
        },
        "fit": "laplace" if laplace else "normal",
        "fit_scale": b if laplace else std,
        "loglik": {"laplace": loglik_laplace, "normal": loglik_normal},
    }


def distribution_thresholds(
    magnitudes: Mapping[str, np.ndarray],
    scales: Mapping[str, float],
    sparsity: float,
    *,
    iterations: int = 60,
) -> tuple[dict[str, float], float]:
    """Per-layer thresholds ``c * scale`` whose overall pruned fraction is ``sparsity``.

    Returns the thresholds and the cut ``c`` (in units of each layer's fitted scale).
    """
    total = sum(m.size for m in magnitudes.values())
    sorted_mags = {name: np.sort(np.asarray(m).ravel()) for name, m in magnitudes.items()}

    def pruned(cut: float) -> int:
        return sum(
            int(np.searchsorted(sorted_mags[name], cut * scales[name], side="left"))
            for name in sorted_mags
        )

    low, high = 0.0, 1.0
    while pruned(high) < sparsity * total and high < 1e6:
        high *= 2
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        if pruned(mid) < sparsity * total:
            low = mid
        else:
            high = mid
    return {name: high * scales[name] for name in magnitudes}, high


def lamp_scores(magnitudes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``|w|`` of one layer and each weight's share of the energy at or above it.

    ``score_i = w_i^2 / sum_{|w_j| >= |w_i|} w_j^2`` (LAMP, Lee et al., ICLR 2021): increasing
    in ``|w|``, 1 for the layer's largest weight, and unchanged by rescaling the layer, so one
    cut on the scores gives every layer its own threshold from its own distribution of
    magnitudes, and never removes a whole layer.
    """
    mags = np.sort(np.abs(np.asarray(magnitudes, dtype=np.float64)).ravel())
    energy = mags**2
    tail = np.cumsum(energy[::-1])[::-1]
    return mags, energy / np.maximum(tail, np.finfo(np.float64).tiny)


def lamp_thresholds(magnitudes: Mapping[str, np.ndarray], sparsity: float) -> dict[str, float]:
    """Per-layer magnitude thresholds from one global cut on LAMP scores."""
    per_layer = {name: lamp_scores(m) for name, m in magnitudes.items()}
    allscores = np.sort(np.concatenate([scores for _, scores in per_layer.values()]))
    k = round(sparsity * allscores.size)
    if k <= 0:
        return {name: 0.0 for name in magnitudes}
    cut = allscores[k - 1]
    thresholds = {}
    for name, (mags, scores) in per_layer.items():
        count = int(np.searchsorted(scores, cut, side="right"))  # scores are non-decreasing
        thresholds[name] = 0.0 if count == 0 else float(np.nextafter(mags[count - 1], np.inf))
    return thresholds


def global_threshold(magnitudes: Sequence[np.ndarray], sparsity: float) -> float:
    """One magnitude cut over all layers that prunes ``sparsity`` of their weights."""
    allmags = np.sort(np.concatenate([np.asarray(m).ravel() for m in magnitudes]))
    k = round(sparsity * allmags.size)
    if k <= 0:
        return 0.0
    return float(np.nextafter(allmags[k - 1], np.inf))
