"""What Mali rules read from the target, and their base class.

Mali's local memory is ordinary (cached global) memory and its cores run many threads with
few registers each, so the rules keep each work-item's tile in registers (``local`` scope in
TIR, which is private memory in OpenCL C), never stage through ``shared`` (OpenCL ``__local``),
and use modest work-groups: 64 work-items (a multiple of Bifrost's 4/8-wide and Valhall's
16-wide warps), clamped to the preset's ``max_threads_per_block``.
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm.s_tir import dlight as dl

WORK_GROUP = 64
VECTOR = 4  # float4: Mali's load/store and arithmetic width for 32-bit types


@dataclass(frozen=True)
class MaliParams:
    """Numbers a Mali rule tiles with."""

    work_group: int


def mali_params(target: tvm.target.Target) -> MaliParams:
    limit = int(target.attrs.get("max_threads_per_block", WORK_GROUP))
    return MaliParams(work_group=min(WORK_GROUP, limit))


class MaliScheduleRule(dl.ScheduleRule):
    """Base of tvm-prune's Mali rules: OpenCL targets with the ``mali`` key only."""

    name = "mali"

    def is_target_available(self, target: tvm.target.Target) -> bool:
        return target.kind.name == "opencl" and "mali" in target.keys
