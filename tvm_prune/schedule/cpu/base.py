"""What CPU rules read from the target: vector lanes, vector registers, cores.

Everything comes from the target (its ``mtriple``, ``mcpu``/``mattr`` features and
``num-cores``), so the x86 host and the Arm presets share one rule family with different numbers.
LLVM's own ``llvm_get_vector_width`` is not used: it answers 512 for AVX2-only Zen 3.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import tvm
from tvm.s_tir import dlight as dl

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CpuParams:
    """Numbers a CPU rule tiles with."""

    vector_bits: int
    vector_registers: int
    cores: int

    def lanes(self, dtype: str) -> int:
        """Elements of ``dtype`` in one vector register."""
        bits = tvm.runtime.DataType(dtype).bits
        return max(1, self.vector_bits // bits)


def cpu_params(target: tvm.target.Target) -> CpuParams:
    """Vector width and register count from the target's features, cores from ``num-cores``."""
    if target.kind.name == "hexagon":
        # HVX: 32 vector registers of 64 or 128 bytes; the DSP's hardware threads are used
        # through the TVM Hexagon runtime's parallel launch.
        mattr = list(target.attrs.get("mattr", []))
        bits = 512 if "+hvx-length64b" in mattr else 1024
        return CpuParams(
            vector_bits=bits, vector_registers=32, cores=int(target.attrs.get("num-cores", 1))
        )
    features = set(tvm.target.codegen.llvm_get_cpu_features(target))
    triple = str(target.attrs.get("mtriple", ""))
    if "avx512f" in features:
        bits, registers = 512, 32
    elif "avx2" in features or "avx" in features:
        bits, registers = 256, 16
    elif triple.startswith(("aarch64", "arm64")) or "neon" in features:
        bits, registers = 128, 32
    else:
        bits, registers = 128, 16
    cores = target.attrs.get("num-cores")
    return CpuParams(
        vector_bits=bits, vector_registers=registers, cores=int(cores or os.cpu_count() or 1)
    )


class CpuScheduleRule(dl.ScheduleRule):
    """Base of tvm-prune's CPU rules: LLVM targets (and Hexagon, whose scalar core and HVX
    vectors are programmed the same way), and a name for the compile report."""

    name = "cpu"

    def is_target_available(self, target: tvm.target.Target) -> bool:
        return target.kind.name in ("llvm", "hexagon")


def not_mine(rule: str, func_name: str, reason: str) -> None:
    """Log at debug level why a rule does not apply; returns None for ``return not_mine()``."""
    logger.debug("%s: skips %s: %s", rule, func_name, reason)
