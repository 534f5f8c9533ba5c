"""Mali GPU (OpenCL) schedule rules: buffers, float4 accesses, register tiles, no local memory.

Each rule takes a legalised, fused PrimFunc and returns a schedule or None ("not mine");
dlight's generic GPU rules follow them in the pipeline for what they leave.
"""

from __future__ import annotations

from .base import MaliParams, MaliScheduleRule, mali_params
from .conv2d import Conv2d
from .dense import Dense
from .elementwise import Elementwise
from .pool import Pool


def rules() -> tuple[MaliScheduleRule, ...]:
    """The Mali rules, highest priority first."""
    return (Conv2d(), Dense(), Pool(), Elementwise())


__all__ = [
    "Conv2d",
    "Dense",
    "Elementwise",
    "MaliParams",
    "MaliScheduleRule",
    "Pool",
    "mali_params",
    "rules",
]
