"""CPU schedule rules shared by x86 (AVX2/AVX-512) and Arm (NEON): PrimFunc in, Schedule out.

Each rule takes a legalised, fused PrimFunc and returns a schedule or None ("not mine"); the
numbers they tile with come from the target (``base.cpu_params``).
"""

from .base import CpuParams, CpuScheduleRule, cpu_params
from .conv2d import Conv2d
from .depthwise import DepthwiseConv2d
from .injective import Injective
from .matmul import Matmul
from .pool import Pool
from .winograd import WinogradTransform

__all__ = [
    "Conv2d",
    "CpuParams",
    "CpuScheduleRule",
    "DepthwiseConv2d",
    "Injective",
    "Matmul",
    "Pool",
    "WinogradTransform",
    "cpu_params",
]
