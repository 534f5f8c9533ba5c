"""Three thresholding methods on a :class:`PruneSession`; greedy lives in :mod:`.greedy`.

* :func:`magnitude` -- the baseline: one global cut on the stored ``|w|`` of every layer.
* :func:`layerwise` -- per-layer thresholds from each layer's fitted weight distribution
  (:func:`.distribution.distribution_thresholds`) for a global target sparsity.
* :func:`behavior` -- the largest thresholds whose behaviour change on calibration inputs stays
  within a tolerance: bisection on the sparsity of the ``layerwise`` (LAMP) thresholds, then a
  pass that raises each layer's own threshold (bisection on its sparsity) while the whole stays
  within.
"""

from __future__ import annotations

import numpy as np

from .distribution import (
    distribution_thresholds,
    global_threshold,
    lamp_thresholds,
    weight_statistics,
)
from .plan import PruningPlan
from .session import Progress, PruneSession


def magnitude(session: PruneSession, *, sparsity: float) -> PruningPlan:
    cut = global_threshold(list(session.magnitudes.values()), sparsity)
    thresholds = {layer.weight: cut for layer in session.layers}
    return _plan(session, "magnitude", thresholds, {"sparsity": sparsity})


def layerwise(session: PruneSession, *, sparsity: float, rule: str = "lamp") -> PruningPlan:
    """``rule``: ``lamp`` (one cut on each layer's tail-energy scores) or ``fitted-scale``
    (one cut in units of each layer's fitted Laplace/normal scale)."""
    if rule == "lamp":
        thresholds, extra = lamp_thresholds(session.magnitudes, sparsity), {}
    else:
        thresholds, cut = distribution_thresholds(
            session.magnitudes, _fit_scales(session), sparsity
        )
        extra = {"cut_in_fitted_scales": cut}
    return _plan(session, "layerwise", thresholds, {"sparsity": sparsity, "rule": rule, **extra})


def behavior(
    session: PruneSession, *, tolerance: float, per_layer: bool = True, iterations: int = 10
) -> PruningPlan:
    """Largest thresholds with ``loss <= tolerance`` (loss in the session's unit)."""
    steps: list[dict] = []
    total = iterations + (len(session.layers) * 6 if per_layer else 0)
    bar = Progress("behaviour scan", total, session.progress)

    def thresholds_at(sparsity: float) -> dict[str, float]:
        return lamp_thresholds(session.magnitudes, sparsity)

    low, high = 0.0, 1.0
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        measured = session.measure(thresholds_at(mid))
        steps.append({"phase": "global", "target_sparsity": mid, **measured})
        bar.step(f"global {mid:.1%}: {measured['loss']:.3g}")
        if measured["loss"] <= tolerance:
            low = mid
        else:
            high = mid
    thresholds = thresholds_at(low) if low > 0 else {layer.weight: 0.0 for layer in session.layers}

    if per_layer:
        # Least sensitive layers (largest) first: they hold most of what is left to prune.
        for layer in sorted(session.layers, key=lambda item: -session.sizes[item.weight]):
            name = layer.weight
            lo = session.pruned_count(name, thresholds[name]) / session.sizes[name]
            hi = 1.0
            for _ in range(6):
                mid = 0.5 * (lo + hi)
                trial = {**thresholds, name: session.threshold_for(name, mid)}
                measured = session.measure(trial)
                steps.append({"phase": "layer", "layer": name, "layer_sparsity": mid, **measured})
                bar.step(f"{name} {mid:.1%}: {measured['loss']:.3g}")
                if measured["loss"] <= tolerance:
                    lo, thresholds = mid, trial
                else:
                    hi = mid
    return _plan(
        session,
        "behavior",
        thresholds,
        {"tolerance": tolerance, "per_layer": per_layer},
        steps=steps,
    )


def _fit_scales(session: PruneSession) -> dict[str, float]:
    return {
        name: max(weight_statistics(weights)["fit_scale"], np.finfo(np.float64).tiny)
        for name, weights in session.judged.items()
    }


def _plan(session, method, thresholds, extra, *, steps=()) -> PruningPlan:
    measured = session.measure(thresholds)
    return PruningPlan(
        method=method,
        settings={**session.settings(), **extra},
        layers=session.layer_plans(thresholds),
        steps=tuple(steps),
        result={**session.dense_result(), **measured, "evaluations": session.evaluations},
    )
