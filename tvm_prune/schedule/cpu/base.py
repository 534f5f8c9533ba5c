"""What CPU rules read from the target: vector lanes, vector registers, L1 data cache.

Everything comes from the target (its ``mtriple``, ``mcpu``/``mattr`` features; the L1 size from
``mcpu``, or from the kernel's cache description when the target is this machine), so the x86
host and the Arm presets share one rule family with different numbers. The core count is not a
tiling parameter: kernels mark their outer loops parallel and TVM's thread pool spreads them
over the cores the device has (``num-cores`` is read by tuning, for MetaSchedule's search).
LLVM's own ``llvm_get_vector_width`` is not used: it answers 512 for AVX2-only Zen 3. x86 is
tiled for 256-bit vectors and 16 registers, AVX-512 included (see ``cpu_params``).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import tvm
from tvm.s_tir import dlight as dl

logger = logging.getLogger(__name__)


# The block attribute MetaSchedule uses for weight repacking: ``SplitLayoutRewritePreproc``
# moves such a block out of its kernel, and ``FoldConstant`` applies it to the weights once.
PREPROC_ATTR = "meta_schedule.layout_rewrite_preproc"


@dataclass(frozen=True)
class CpuParams:
    """Numbers a CPU rule tiles with."""

    vector_bits: int
    vector_registers: int
    l1d_bytes: int

    def lanes(self, dtype: str) -> int:
        """Elements of ``dtype`` in one vector register."""
        bits = tvm.runtime.DataType(dtype).bits
        return max(1, self.vector_bits // bits)

    @property
    def max_accumulators(self) -> int:
        """Vector accumulators a register tile may keep: at most ``MAX_ACCUMULATORS``, and 4
        registers left for the inputs and broadcasts."""
        return min(self.vector_registers - 4, MAX_ACCUMULATORS)


# x86 FMAs read one operand from memory, so 12 of AVX2's 16 registers can accumulate. More
# registers do not mean more accumulators (checked on the assembly, see tests/schedule): LLVM's
# aarch64 code keeps each input of a kernel row in a register of its own and spilled 2 x 7 and
# 2 x 8 conv tiles of NEON's 32, and the Winograd GEMM's 4 x 7 tile of 28 accumulators made 190
# vector stack accesses in its FMA loop. Tiled for AVX-512's 32 registers, that GEMM tile (4 x 7
# zmm, 1000 stack accesses in its FMA loop) ran ResNet-18-shaped at 2.6x ORT's time instead of
# 0.74x (Zen 4). A matrix-vector product's column tile is the exception (``Matmul``): one
# broadcast feeds all its accumulators, so it may use every register but four.
MAX_ACCUMULATORS = 12


def cpu_params(target: tvm.target.Target) -> CpuParams:
    """Vector width and register count from the target's features, L1 from its CPU."""
    if target.kind.name == "hexagon":
        # HVX: 32 vector registers of 64 or 128 bytes; the DSP's hardware threads are used
        # through the TVM Hexagon runtime's parallel launch.
        mattr = list(target.attrs.get("mattr", []))
        bits = 512 if "+hvx-length64b" in mattr else 1024
        return CpuParams(vector_bits=bits, vector_registers=32, l1d_bytes=DEFAULT_L1D_BYTES)
    features = set(tvm.target.codegen.llvm_get_cpu_features(target))
    triple = str(target.attrs.get("mtriple", ""))
    if "avx2" in features or "avx" in features:
        # AVX-512 CPUs are tiled as AVX2 too: Zen 4 runs a 512-bit FMA as two 256-bit halves
        # (no more FLOPs per cycle), and LLVM marks Intel's AVX-512 server cores
        # ``prefer-256-bit`` (the frequency drop under 512-bit code). On Zen 4, 16-lane tiles
        # with 32 registers ran MobileNetV2-shaped's layers (one thread, summed) at 1.36x ORT's
        # time against 1.18x for these (96 channels at 112 x 112: 0.77 -> 0.43 ms), and the
        # 1000-column classifier in single 8-column slivers.
        bits, registers = 256, 16
    elif triple.startswith(("aarch64", "arm64")) or "neon" in features:
        bits, registers = 128, 32
    else:
        bits, registers = 128, 16
    return CpuParams(vector_bits=bits, vector_registers=registers, l1d_bytes=_l1d_bytes(target))


# L1 data cache per core of the Arm cores presets name (Arm's technical reference manuals; the
# A53's is configurable, 32 KiB in most SoCs). Other CPUs get the smallest of these.
L1D_BYTES_BY_CPU = {
    "cortex-a53": 32 * 1024,
    "cortex-a55": 32 * 1024,
    "cortex-a72": 32 * 1024,
    "cortex-a73": 64 * 1024,
    "cortex-a75": 64 * 1024,
    "cortex-a76": 64 * 1024,
    "cortex-a77": 64 * 1024,
    "cortex-a78": 64 * 1024,
    "cortex-x1": 64 * 1024,
    "neoverse-n1": 64 * 1024,
}
DEFAULT_L1D_BYTES = 32 * 1024
_CACHE_DIR = Path("/sys/devices/system/cpu/cpu0/cache")


def _l1d_bytes(target: tvm.target.Target) -> int:
    mcpu = str(target.attrs.get("mcpu", ""))
    if _is_this_machine(target):
        detected = _detected_l1d_bytes()
        if detected:
            return detected
    return L1D_BYTES_BY_CPU.get(mcpu, DEFAULT_L1D_BYTES)


def _is_this_machine(target: tvm.target.Target) -> bool:
    system_cpu = tvm.get_global_func("target.llvm_get_system_cpu")()
    system_triple = tvm.get_global_func("target.llvm_get_system_triple")()
    return (
        str(target.attrs.get("mcpu", "")) == system_cpu
        and str(target.attrs.get("mtriple", system_triple)) == system_triple
    )


@functools.cache
def _detected_l1d_bytes() -> int | None:
    """Linux's description of core 0's level-1 data cache (``32K``), or None; read once per
    process (every kernel of a compile asks)."""
    for index in sorted(_CACHE_DIR.glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if level == "1" and kind in ("Data", "Unified") and size.endswith("K"):
            return int(size[:-1]) * 1024
    return None


class CpuScheduleRule(dl.ScheduleRule):
    """Base of tvm-prune's CPU rules: LLVM targets (and Hexagon, whose scalar core and HVX
    vectors are programmed the same way), and a name for the compile report."""

    name = "cpu"

    def is_target_available(self, target: tvm.target.Target) -> bool:
        return target.kind.name in ("llvm", "hexagon")


def func_name(func) -> str:
    """A PrimFunc's ``global_symbol`` (the kernel's name in logs), or ""."""
    return str(func.attrs.get("global_symbol", "")) if func.attrs else ""


def not_mine(rule: str, kernel: str, reason: str) -> None:
    """Log at debug level why a rule does not apply; returns None for ``return not_mine()``."""
    logger.debug("%s: skips %s: %s", rule, kernel, reason)
