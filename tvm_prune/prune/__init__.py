"""Weight pruning: per-layer magnitude thresholds chosen from weight statistics or measurements.

In: a :class:`~tvm_prune.model.Model` and calibration data. Out: a
:class:`~tvm_prune.prune.plan.PruningPlan` (per-layer thresholds, the method's trace, the
measured result) and, through :func:`prune_model`, a new ``Model`` whose weights are masked.

Modules by concern: ``layers`` (finding prunable layers, BN-folded effective weights),
``distribution`` (statistics, distribution thresholds), ``engine`` (compile once, swap
weights), ``metrics`` (behaviour change), ``session`` (shared state of one run), ``methods``
and ``greedy`` (the four methods), ``apply`` (masks, bias correction), ``plan`` (the report),
``onnx_export`` (pruned weights back into the ONNX file), ``api`` (:func:`prune_model`).
"""

from .plan import LayerPlan, PruningPlan

__all__ = ["LayerPlan", "PruningPlan"]
