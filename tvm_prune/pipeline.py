"""The Relax compile pipeline of a preset: TVM's CPU phases with our schedule rules inside.

    library dispatch -> legalize + fold + fuse -> ApplyScheduleRules -> split weight repacking
    + fold it into the constants -> dataflow lower -> finalize

The four phases are TVM's own (``relax.backend.cpu_generic``); the rules run right after fusion,
so they see the fused kernels the build compiles, and before lowering, so their schedules are
what gets built. Kernels already scheduled (tuning records applied before the pipeline) are left
alone. ``report`` is filled during the build with the rules' counts.
"""

from __future__ import annotations

from typing import Any

import tvm
from tvm import relax
from tvm.relax.backend.cpu_generic import pipeline as cpu_generic

from .schedule import ApplyScheduleRules, rules_for
from .target import TargetPreset


def build_pipeline(
    preset: TargetPreset, *, report: dict[str, Any] | None = None, rules=None
) -> tvm.transform.Pass:
    """The pipeline for ``preset``; ``rules`` overrides ``rules_for(preset)`` (``()``: none)."""
    target = preset.target
    rules = rules_for(preset) if rules is None else tuple(rules)
    schedule = (
        [
            ApplyScheduleRules(rules, report),
            # Weight repacking the rules marked as layout-rewrite preprocessing becomes its own
            # kernel on the constant weights, which FoldConstant runs once, at compile time.
            relax.transform.SplitLayoutRewritePreproc(),
            relax.transform.FoldConstant(),
        ]
        if rules
        else []
    )
    if report is not None and not rules:
        report.update(scheduled={}, fallback=None, note="no schedule rules for this preset")

    @tvm.transform.module_pass(opt_level=0, name="TvmPrunePipeline")
    def _pipeline(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        with target:
            passes = [
                *cpu_generic.library_dispatch_passes(target),
                *cpu_generic.legalize_passes(target),
                *schedule,
                *cpu_generic.dataflow_lower_passes(target),
                *cpu_generic.finalize_passes(target),
            ]
            return tvm.transform.Sequential(passes)(mod)

    return _pipeline
