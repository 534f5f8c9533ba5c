"""``ApplyScheduleRules``: dlight's ``ApplyDefaultSchedule`` with a report of who scheduled what.

For each PrimFunc not yet marked ``tirx.is_scheduled`` (tuning records mark theirs), the first
rule that returns a schedule wins and the function is marked. Functions no rule takes keep
TVM's naive loops and are counted as ``fallback``, by name, so a model that is slow because a
rule missed is visible in the compile report.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import tvm
from tvm import s_tir, tirx
from tvm.s_tir import dlight as dl

from ..errors import tvm_error_line

logger = logging.getLogger(__name__)

SCHEDULED_ATTR = "tirx.is_scheduled"


@tvm.transform.module_pass(opt_level=0, name="ApplyScheduleRules")
class ApplyScheduleRules:
    """Apply ``rules`` in order to every unscheduled PrimFunc; fill ``report``.

    Parameters
    ----------
    rules : tuple of dl.ScheduleRule
        Highest priority first.
    report : dict, optional
        Filled with ``{"scheduled": {rule: count}, "fallback": count, "fallback_funcs": [...],
        "pre_scheduled": count}``; pass one in to read it after the build.
    """

    def __init__(self, rules, report: dict[str, Any] | None = None):
        self.rules = tuple(rules)
        self.report = report if report is not None else {}

    def transform_module(self, mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        scheduled: Counter[str] = Counter()
        fallback: list[str] = []
        pre_scheduled = 0
        updates = {}
        for gvar, func in mod.functions_items():
            if not isinstance(func, tirx.PrimFunc):
                continue
            if func.attrs is not None and func.attrs.get(SCHEDULED_ATTR, False):
                pre_scheduled += 1
                continue
            target = func.attrs.get("target") if func.attrs else None
            target = target or tvm.target.Target.current(allow_none=False)
            result = first_match(self.rules, gvar.name_hint, func, target)
            if result is None:
                fallback.append(gvar.name_hint)
                continue
            name, sch = result
            scheduled[name] += 1
            updates[gvar] = sch.mod["main"].with_attr(SCHEDULED_ATTR, True)
        if updates:
            mod = mod.clone()  # the caller's module stays as it was
            for gvar, func in updates.items():
                mod[gvar] = func
        self.report.update(
            scheduled=dict(sorted(scheduled.items())),
            fallback=len(fallback),
            fallback_funcs=sorted(fallback),
            pre_scheduled=pre_scheduled,
        )
        if fallback:
            logger.info("no schedule rule for %d kernel(s): %s", len(fallback), ", ".join(fallback))
        return mod


def first_match(rules, name: str, func: tirx.PrimFunc, target):
    """``(rule name, schedule)`` of the first of ``rules`` that schedules ``func``, or None.

    The one choice both the compile pipeline and tuning (a kernel's first trial) make; a rule
    that raises is logged and skipped. ``name`` is the kernel's, for the log.
    """
    for rule in rules:
        if not rule.is_target_available(target):
            continue
        try:
            space = rule.apply(func, target, False)
        except Exception as exc:
            # Ours decline what they do not fit, so an exception is a bug worth a warning;
            # TVM's dlight rules assert on kernels outside their shape (a scalar loss gradient).
            ours = type(rule).__module__.startswith("tvm_prune.")
            logger.log(
                logging.WARNING if ours else logging.DEBUG,
                "%s failed on %s (%s); trying the next rule",
                _rule_name(rule),
                name,
                tvm_error_line(exc),
            )
            continue
        if space is None:
            continue
        if isinstance(space, list):
            space = space[0]
        if isinstance(space, s_tir.Schedule):
            return _rule_name(rule), space
    return None


def _rule_name(rule: dl.ScheduleRule) -> str:
    return getattr(rule, "name", None) or type(rule).__name__
