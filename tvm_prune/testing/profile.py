"""Per-kernel wall time of a compiled Relax executable, through the VM's call instrument.

TVM 0.27's Relax VM has no profiler; this times each ``call_tir`` kernel with
``VirtualMachine.set_instrument`` (before/after hooks), which is enough to see where a model's
time goes. Kernel names are the fused PrimFunc names (``fused_conv2d_add_relu3``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

import tvm
from tvm import relax

from ..package.threads import use_all_cores


class KernelTime(NamedTuple):
    name: str
    ms: float  # total per run, all calls
    calls: int  # per run
    output_shape: tuple[int, ...]  # of the last argument (a kernel's output); () if none


def profile_kernels(
    executable, inputs: Sequence[tvm.runtime.Tensor], *, rounds: int = 3
) -> list[KernelTime]:
    """Each kernel's time, slowest first; ``rounds`` runs averaged."""
    use_all_cores()
    vm = relax.VirtualMachine(executable, tvm.cpu())
    totals: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    shapes: dict[str, tuple[int, ...]] = {}
    started: list[float] = []

    def instrument(func, name, before, ret, *args):
        if before:
            started.append(time.perf_counter())
        else:
            totals[str(name)] += time.perf_counter() - started.pop()
            calls[str(name)] += 1
            last = args[-1] if args else None
            shapes[str(name)] = tuple(int(d) for d in getattr(last, "shape", ()))
        return 0

    vm["main"](*inputs)  # warm up without the hook
    vm.set_instrument(tvm.runtime.convert(instrument))
    for _ in range(rounds):
        vm["main"](*inputs)
    return sorted(
        (
            KernelTime(name, 1e3 * total / rounds, calls[name] // rounds, shapes[name])
            for name, total in totals.items()
        ),
        key=lambda row: -row.ms,
    )
