"""Applying a MetaSchedule database (``--tuning-records``) to a model before the build.

The database folder holds ``database_workload.json`` and ``database_tuning_record.json`` (the
layout ``tvm-prune tune`` writes and ``schedules/<preset>/`` ships). The module is legalised and
fused exactly as during tuning, so workloads hash the same, then ``MetaScheduleApplyDatabase``
replaces every PrimFunc that has a record; the rest get the zero-tuning schedule rules in the
build. The report counts both, because a database that silently matches nothing is the usual
failure.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import tvm
from tvm import relax
from tvm.relax.backend.cpu_generic import pipeline as cpu_generic

from .errors import CompileError
from .schedule.apply_schedule_rules import SCHEDULED_ATTR

logger = logging.getLogger(__name__)

DATABASE_FILES = ("database_workload.json", "database_tuning_record.json")


def tuning_passes(target: tvm.target.Target) -> list[tvm.transform.Pass]:
    """The passes that bring a model to its fused kernels on a CPU: the form the build schedules,
    tuning measures and records are looked up in (the CPU pipeline runs these too)."""
    return [
        # Inference batch norm as multiply-add on constants, which legalize folds and fusion
        # puts into the producing conv's epilogue (batch_norm itself stays a kernel of its own,
        # a pass over memory with a square root per element).
        relax.transform.DecomposeOpsForInference(),
        # The decomposed batch norm is still read through its tuple's first field, and fusion
        # stops at the tuple: without this, the activation after every batch norm is a kernel
        # of its own (another pass over memory).
        relax.transform.CanonicalizeBindings(),
        *cpu_generic.legalize_passes(target),
    ]


def apply_tuning_records(
    mod: tvm.IRModule, target: tvm.target.Target, records: Path
) -> tuple[tvm.IRModule, dict[str, Any]]:
    """``mod`` with tuned schedules applied where the database has them, and a report."""
    missing = [name for name in DATABASE_FILES if not (records / name).is_file()]
    if missing:
        raise CompileError(f"{records}: not a tuning-records folder (missing {', '.join(missing)})")
    with target:
        mod = tvm.transform.Sequential(
            [*tuning_passes(target), relax.transform.MetaScheduleApplyDatabase(str(records))]
        )(mod)
    prim_funcs = [f for f in mod.functions.values() if isinstance(f, tvm.tirx.PrimFunc)]
    applied = sum(1 for f in prim_funcs if f.attrs and f.attrs.get(SCHEDULED_ATTR, False))
    logger.info("tuning records %s: applied to %d of %d kernels", records, applied, len(prim_funcs))
    return mod, {"path": str(records), "applied": applied, "kernels": len(prim_funcs)}
