"""Pruning: weight masks with per-layer thresholds, and structural removal of channels.

Weight pruning. In: a :class:`~tvm_prune.model.Model` and calibration data. Out: a
:class:`~tvm_prune.prune.plan.PruningPlan` (per-layer thresholds, the method's trace, the
measured result) and, through :func:`prune_model`, a new ``Model`` whose weights are masked.
Modules: ``layers`` (finding prunable layers, BN-folded effective weights), ``distribution``
(statistics, distribution thresholds), ``engine`` (compile once, swap weights), ``metrics``
(behaviour change), ``session`` (shared state of one run), ``methods`` and ``greedy`` (the four
methods), ``apply`` (masks, bias correction), ``grouping`` (block-diagonal masks that become
grouped convs), ``plan`` (the report), ``plots``, ``api`` (:func:`prune_model`).

Channel pruning. ``depgraph`` (which channels are coupled and must go together),
``channel_plan`` (plans from filter magnitude for a MACs budget), ``gates`` (plans from learned
per-channel gates, ``training`` their host-side training), ``channels`` (checking a plan and
removing the channels).

Shared: ``data`` (calibration data), ``storage`` (weight bytes in a package), ``onnx_export``
and ``onnx_channels`` (the pruned model written back as ONNX).
"""

from .plan import LayerPlan, PruningPlan

__all__ = ["LayerPlan", "PruningPlan"]
