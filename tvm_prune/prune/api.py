"""``prune_model``: one call from a model and data to a pruned model and its plan."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from ..errors import TvmPruneError
from ..model import Model
from .apply import layer_masks, with_masks
from .data import CalibrationData, generated
from .greedy import greedy
from .methods import behavior, layerwise, magnitude
from .metrics import METRICS
from .plan import PruningPlan
from .session import PruneSession
from .storage import storage_report

logger = logging.getLogger(__name__)

METHODS = ("magnitude", "layerwise", "greedy", "behavior")
IMPORTANCES = ("l1", "l2", "gates")
# MAC fractions at which L1/L2 plans are evaluated for the curve (down to the target).
CURVE_LEVELS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2)


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
    masks = layer_masks(session.magnitudes, plan.thresholds)
    changed = session.changed_params(plan.thresholds)
    report = plan.to_dict()
    report["storage"] = storage_report(model.params, {**model.params, **changed})
    report["evaluator"] = {
        "compile_seconds": round(session.evaluator.compile_seconds, 3),
        "runs": session.evaluator.runs,
        "run_seconds": round(session.evaluator.run_seconds, 3),
    }
    return with_masks(model, masks, changed, report)


def prune_model_channels(
    model: Model,
    *,
    macs: float,
    importance: str = "l1",
    data: CalibrationData | None = None,
    budget: float = 0.01,
    fine_tune_steps: int = 0,
    multiple: int = 1,
) -> tuple[Model, dict]:
    """Remove whole channels until ``macs`` (a fraction) of the MACs remain.

    Returns the structurally pruned model (``RemoveChannels``; weights of the kept channels as
    trained) and the report, which is also its transform's report.

    Parameters
    ----------
    importance : str
        ``l1``/``l2``: filter magnitude (:func:`.channel_plan.magnitude_plan`); ``gates``:
        learned gates with the accuracy in the loop (:func:`.gates.learn_gates`, needs labels).
    data : CalibrationData, optional
        With labels, accuracies are measured (the report's ``curve``: MACs kept vs accuracy).
    budget : float
        Accuracy drop (fraction) a gate round may cost and still hold.
    fine_tune_steps : int
        Recovery fine-tuning steps (Adam, batches of 32) of the pruned model; needs labels.
    multiple : int
        Pruned layers keep a multiple of this many channels (the vector width: 8 on AVX2, 4 on
        NEON), so the schedules do not run a ragged last vector.
    """
    from .channel_plan import count_macs, magnitude_plan
    from .channels import prune_channels
    from .depgraph import build_depgraph, mask_params
    from .gates import learn_gates
    from .training import Trainer, fine_tune

    if importance not in IMPORTANCES:
        raise PruneError(f"unknown importance '{importance}'; choose from {', '.join(IMPORTANCES)}")
    if not 0.0 < macs < 1.0:
        raise PruneError(f"--macs {macs} must be between 0 and 1 (exclusive)")
    labelled = data is not None and data.labels is not None
    if (importance == "gates" or fine_tune_steps) and not labelled:
        raise PruneError(
            "--importance gates and --fine-tune train on labels: give --calib data.npz with a "
            "'label' array"
        )
    graph = build_depgraph(model.mod, model.params)
    dense_macs = count_macs(model.mod, graph)
    trainer = Trainer(model) if labelled else None
    report: dict = {"importance": importance, "macs_target": macs, "multiple": multiple}

    def accuracy(params) -> float:
        return trainer.evaluate(params, data)[1]

    params = dict(model.params)
    if importance == "gates":
        result = learn_gates(
            model, data, macs=macs, budget=budget, trainer=trainer, multiple=multiple
        )
        plan, params = result.plan, result.params
        report["first_accuracy"] = result.first_accuracy
        report["gate_rounds"] = result.rounds
        curve = [(1.0, result.first_accuracy)]
        curve += [(r["macs_kept"], r["accuracy"]) for r in result.rounds if r["holds"]]
    else:
        plan = magnitude_plan(
            model.mod, model.params, graph, macs=macs, norm=importance, multiple=multiple
        )
        curve = []
        if trainer is not None:
            report["first_accuracy"] = accuracy(model.params)
            curve = [(1.0, report["first_accuracy"])]
            for level in (level for level in CURVE_LEVELS if level > macs):
                level_plan = magnitude_plan(
                    model.mod, model.params, graph, macs=level, norm=importance, multiple=multiple
                )
                kept = count_macs(model.mod, graph, level_plan) / dense_macs
                curve.append((kept, accuracy(mask_params(graph, model.params, level_plan))))
    report["macs_kept"] = count_macs(model.mod, graph, plan) / dense_macs
    masked = mask_params(graph, params, plan)
    if trainer is not None:
        report["accuracy"] = accuracy(masked)
        curve.append((report["macs_kept"], report["accuracy"]))
        report["curve"] = [{"macs_kept": k, "accuracy": a} for k, a in curve]
    if fine_tune_steps:
        zero = {weight: masked[weight] == 0 for weight in plan}
        params = fine_tune(trainer, masked, data, steps=fine_tune_steps, zero=zero)
        report["fine_tune_steps"] = fine_tune_steps
        report["fine_tuned_accuracy"] = accuracy(params)
    trained = replace(model, params=params)
    return prune_channels(trained, plan, report=report), report


def channel_table(report: dict) -> str:
    """The MACs kept vs accuracy table of a channel pruning report."""
    rows = ["| MACs kept | accuracy |", "|---|---|"]
    rows += [f"| {p['macs_kept']:.3f} | {p['accuracy']:.4f} |" for p in report.get("curve", ())]
    result = f"{report['importance']}: {report['macs_kept']:.3f} of the MACs kept"
    if "accuracy" in report:
        result += f", accuracy {report['first_accuracy']:.4f} -> {report['accuracy']:.4f}"
    if "fine_tuned_accuracy" in report:
        result += f", {report['fine_tuned_accuracy']:.4f} after fine-tuning"
    return "\n".join([*rows, result])


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
