"""Zero-tuning schedule rules: legalised, fused PrimFuncs in, scheduled PrimFuncs out.

``rules_for(preset)`` gives the ordered rules of a preset's schedule set (``cpu/`` serves both
the x86 host and Arm, ``mali/`` the Mali GPUs through OpenCL); ``ApplyScheduleRules`` runs them
and reports which rule took each kernel and how many no rule took; ``first_match`` is the
choice it makes for one kernel.
"""

from .apply_schedule_rules import ApplyScheduleRules, first_match
from .rules import dlight_gpu_rules, rules_for

__all__ = ["ApplyScheduleRules", "dlight_gpu_rules", "first_match", "rules_for"]
