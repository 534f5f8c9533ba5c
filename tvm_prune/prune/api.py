"""``prune_model``: one call from a model and data to a pruned model and its plan."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import TvmPruneError
from ..model import Model, TransformRecord
from .apply import layer_masks, mask_digest
from .data import CalibrationData, generated
from .greedy import greedy
from .methods import behavior, layerwise, magnitude
from .metrics import METRICS
from .plan import PruningPlan
from .session import PruneSession
from .storage import storage_report

logger = logging.getLogger(__name__)

METHODS = ("magnitude", "layerwise", "greedy", "behavior")


class PruneError(TvmPruneError):
    """A pruning request that cannot be carried out (bad method, target or tolerance)."""


def prune_model(
    model: Model,
    *,
    method: str,
    sparsity: float | None = None,
    tolerance: float | None = None,
    metric: str | None = None,
    data: CalibrationData | None = None,
    accuracy_fn: Callable[[Sequence[np.ndarray]], float] | None = None,
    effective: bool = True,
    compensation: str | None = None,
    progress: bool = False,
) -> tuple[Model, PruningPlan]:
    """Prune ``model``'s conv/dense weights with ``method``; return the new model and the plan.

    Parameters
    ----------
    method : str
        ``magnitude`` (baseline: one global cut, raw weights, no bias correction by default),
        ``layerwise`` (per-layer thresholds from each layer's magnitude distribution, LAMP
        scores; needs ``sparsity``), ``greedy`` (predicted
        accuracy change; ``sparsity`` and/or ``tolerance``) or ``behavior`` (largest
        thresholds within ``tolerance``).
    tolerance : float
        Budget for the loss: accuracy points when greedy runs on labels (or ``accuracy_fn``)
        and no ``metric`` is named, otherwise units of ``metric``.
    metric : str, optional
        ``kl``, ``top1``, ``rel-l2`` or ``cosine``; default ``kl`` for 2-d outputs
        (classifiers), else ``rel-l2``.
    data : CalibrationData, optional
        Calibration inputs (and labels); default: 16 random inputs, with a warning.
    effective : bool
        Judge magnitudes on BN-folded weights.
    compensation : str, optional
        ``none``, ``bias`` or ``least-squares`` (see :mod:`.apply`); default least-squares for
        every method but the ``magnitude`` baseline, which gets none.
    """
    _check(method, sparsity, tolerance, metric)
    chosen_metric = metric or ("kl" if len(model.outputs[0].shape) == 2 else "rel-l2")
    objective = "accuracy" if method == "greedy" and metric is None else "behavior"
    if compensation is None:
        compensation = "none" if method == "magnitude" else "least-squares"
    session = PruneSession(
        model,
        data if data is not None else generated(model),
        metric=chosen_metric,
        objective=objective,
        effective=effective if method != "magnitude" else False,
        compensation=compensation,
        accuracy_fn=accuracy_fn,
        progress=progress,
    )
    if method == "magnitude":
        plan = magnitude(session, sparsity=sparsity)
    elif method == "layerwise":
        plan = layerwise(session, sparsity=sparsity)
    elif method == "greedy":
        plan = greedy(session, sparsity=sparsity, tolerance=tolerance)
    else:
        plan = behavior(session, tolerance=tolerance)
    return apply_plan(model, plan, session), plan


def apply_plan(model: Model, plan: PruningPlan, session: PruneSession) -> Model:
    """``model`` with the plan's masks applied (``PruneWeights``) and its weights pruned."""
    from ..transform import PruneWeights

    masks = layer_masks(session.magnitudes, plan.thresholds)
    params = {**model.params, **session.changed_params(plan.thresholds)}
    mod = PruneWeights(masks)(model.mod)
    report = plan.to_dict()
    report["mask_sha256"] = {name: mask_digest(mask) for name, mask in masks.items()}
    report["storage"] = storage_report(model.params, params)
    report["evaluator"] = {
        "compile_seconds": round(session.evaluator.compile_seconds, 3),
        "runs": session.evaluator.runs,
        "run_seconds": round(session.evaluator.run_seconds, 3),
    }
    return model.with_transform(mod, TransformRecord("PruneWeights", report), params=params)


def _check(method, sparsity, tolerance, metric) -> None:
    if method not in METHODS:
        raise PruneError(f"unknown pruning method '{method}'; choose from {', '.join(METHODS)}")
    if metric is not None and metric not in METRICS:
        raise PruneError(f"unknown metric '{metric}'; choose from {', '.join(METRICS)}")
    if sparsity is not None and not 0.0 < sparsity < 1.0:
        raise PruneError(f"sparsity {sparsity} must be between 0 and 1 (exclusive)")
    if tolerance is not None and tolerance < 0:
        raise PruneError(f"tolerance {tolerance} must be >= 0")
    if method in ("magnitude", "layerwise") and sparsity is None:
        raise PruneError(f"method {method} needs --sparsity")
    if method == "behavior" and tolerance is None:
        raise PruneError("method behavior needs --tolerance (in units of --metric)")
    if method == "greedy" and sparsity is None and tolerance is None:
        raise PruneError("method greedy needs --sparsity, --tolerance or both")
