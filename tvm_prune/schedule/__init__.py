"""Zero-tuning schedule rules: legalised, fused PrimFuncs in, scheduled PrimFuncs out.

``rules_for(preset)`` gives the ordered rules of a preset's schedule set (``cpu/`` serves both
the x86 host and Arm); ``ApplyScheduleRules`` runs them and reports which rule took each kernel
and how many no rule took; ``first_match`` is the choice it makes for one kernel.
"""

from .apply_schedule_rules import ApplyScheduleRules, first_match
from .rules import rules_for

__all__ = ["ApplyScheduleRules", "first_match", "rules_for"]
