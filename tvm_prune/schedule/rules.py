"""``rules_for(preset)``: the ordered rules for a preset's ``schedule_set``; first match wins."""

from __future__ import annotations

from tvm.s_tir import dlight as dl

from ..target import TargetPreset
from . import cpu, hexagon

_SETS = {
    # x86 and Arm share the family; the numbers come from each target.
    "cpu": lambda: (cpu.Conv2d(), cpu.Matmul(), cpu.Pool(), cpu.Injective(), dl.cpu.Reduction()),
    "arm_cpu": lambda: (
        cpu.Conv2d(),
        cpu.Matmul(),
        cpu.Pool(),
        cpu.Injective(),
        dl.cpu.Reduction(),
    ),
    # HVX is programmed like a CPU's vector unit, 128-byte vectors (see cpu.base.cpu_params);
    # int8 dense gets the vrmpy instruction first.
    "hexagon": lambda: (
        hexagon.VrmpyDense(),
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
