"""The Relax compile pipeline of a preset: TVM's CPU or GPU phases with our schedule rules inside.

    library dispatch -> [CPU: batch norm decomposed] -> legalize + fold + fuse ->
    ApplyScheduleRules -> [CPU: split weight repacking + fold it into the constants] ->
    dataflow lower -> finalize

The phases are TVM's own: ``relax.backend.cpu_generic`` for LLVM targets, ``gpu_generic`` for
GPU targets (OpenCL). The rules run right after fusion, so they see the fused kernels the build
compiles, and before lowering, so their schedules are what gets built. On a GPU every kernel must
bind threads, so dlight's generic GPU rules (gpu_generic's own, ending with ``Fallback``) always
follow ours there: ``rules=()`` gives TVM's default GPU schedules. Kernels already scheduled
(tuning records applied before the pipeline) are left alone. ``report`` is filled during the
build with the rules' counts.
"""

from __future__ import annotations

from typing import Any

import tvm
from tvm import relax
from tvm.relax.backend.cpu_generic import pipeline as cpu_generic
from tvm.relax.backend.gpu_generic import pipeline as gpu_generic

from .schedule import ApplyScheduleRules, dlight_gpu_rules, rules_for
from .target import TargetPreset
from .tuning_records import tuning_passes


def build_pipeline(
    preset: TargetPreset, *, report: dict[str, Any] | None = None, rules=None
) -> tvm.transform.Pass:
    """The pipeline for ``preset``; ``rules`` overrides ``rules_for(preset)`` (``()``: none)."""
    target = preset.target
    rules = rules_for(preset) if rules is None else tuple(rules)
    if "gpu" in target.keys:
        return _gpu_pipeline(target, (*rules, *dlight_gpu_rules()), report)
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
                *tuning_passes(target),
                *schedule,
                *cpu_generic.dataflow_lower_passes(target),
                *cpu_generic.finalize_passes(target),
            ]
            return tvm.transform.Sequential(passes)(mod)

    return _pipeline


def _gpu_pipeline(target: tvm.target.Target, rules, report) -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="TvmPrunePipeline")
    def _pipeline(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        with target:
            # gpu_generic's legalize phase ends with its own ApplyDefaultSchedule, which ours
            # replaces (same dlight rules last, ours first, with a report).
            legalize = [
                p
                for p in gpu_generic.legalize_passes(target)
                if p.info.name != "ApplyDefaultSchedule"
            ]
            passes = [
                *gpu_generic.library_dispatch_passes(target),
                *legalize,
                ApplyScheduleRules(rules, report),
                *gpu_generic.dataflow_lower_passes(target),
                *gpu_generic.finalize_passes(target),
            ]
            return tvm.transform.Sequential(passes)(mod)

    return _pipeline
