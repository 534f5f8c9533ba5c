"""``rules_for(preset)``: the ordered rules for a preset's ``schedule_set``; first match wins.

On GPU targets the pipeline appends :func:`dlight_gpu_rules` after these.
"""

from __future__ import annotations

import tvm
from tvm.s_tir import dlight as dl

from ..target import TargetPreset
from . import cpu, hexagon, mali


def _cpu_rules() -> tuple[dl.ScheduleRule, ...]:
    # x86 and Arm share the family; the numbers come from each target.
    return (
        cpu.WinogradTransform(),
        cpu.DepthwiseConv2d(),
        cpu.Conv2d(),
        cpu.Matmul(),
        cpu.Pool(),
        cpu.Injective(),
        dl.cpu.Reduction(),
    )


_SETS = {
    "cpu": _cpu_rules,
    "arm_cpu": _cpu_rules,
    "mali": lambda: mali.rules(),
    # HVX is programmed like a CPU's vector unit, 64- or 128-byte vectors (cpu.base.cpu_params);
    # int8 dense gets the vrmpy instruction first.
    "hexagon": lambda: (
        hexagon.VrmpyDense(),
        cpu.DepthwiseConv2d(),
        cpu.Conv2d(),
        cpu.Matmul(),
        cpu.Pool(),
        cpu.Injective(),
    ),
}


def rules_for(preset: TargetPreset) -> tuple[dl.ScheduleRule, ...]:
    """The rules for ``preset`` (empty for schedule sets without rules: TVM's defaults apply)."""
    make = _SETS.get(preset.schedule_set)
    if make is None and preset.target.kind.name == "llvm":
        make = _SETS["cpu"]
    return make() if make is not None else ()


def dlight_gpu_rules() -> tuple[dl.ScheduleRule, ...]:
    """TVM's generic GPU rules (``gpu_generic``'s list, ``Fallback`` last, which takes any
    kernel), each shown the device target without its host (see :class:`DeviceTargetOnly`)."""
    return tuple(
        DeviceTargetOnly(rule)
        for rule in (
            dl.gpu.Matmul(),
            dl.gpu.GEMV(),
            dl.gpu.Reduction(),
            dl.gpu.GeneralReduction(),
            dl.gpu.Fallback(),
        )
    )


class DeviceTargetOnly(dl.ScheduleRule):
    """A dlight rule applied with the target's host removed.

    dlight's Matmul and GEMV pick their Adreno configuration for any OpenCL target whose host
    mentions "android", so a Mali GPU on an Android phone would get Adreno tiles; without the
    host they see the device attributes only (and GEMV takes its Mali branch).
    """

    def __init__(self, rule: dl.ScheduleRule):
        self.rule = rule
        self.name = f"dlight.{type(rule).__name__}"

    def is_target_available(self, target: tvm.target.Target) -> bool:
        return self.rule.is_target_available(target)

    def apply(self, func, target: tvm.target.Target, tunable: bool):
        if target.host is not None:
            device = dict(target.export())
            device.pop("host", None)
            target = tvm.target.Target(device)
        return self.rule.apply(func, target, tunable)
