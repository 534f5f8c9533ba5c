"""Per-kernel wall time of a compiled Relax executable, through the VM's call instrument.

TVM 0.27's Relax VM has no profiler; this times each ``call_tir`` kernel with
``VirtualMachine.set_instrument`` (before/after hooks), which is enough to see where a model's
time goes. Kernel names are the fused PrimFunc names (``fused_conv2d_add_relu3``).

Each call is also timed re-run at once on the same arguments (in separate runs, so the re-runs
do not change the cache state the in-model times see): that is the kernel's time with its
weights, input and output already in cache, and the difference to its in-model time is what it
pays for data the model left cold.
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
    rerun_ms: float  # total per run of the same calls, each re-run at once on warm caches


def profile_kernels(
    executable, inputs: Sequence[tvm.runtime.Tensor], *, rounds: int = 3
) -> list[KernelTime]:
    """Each kernel's time, slowest first; ``rounds`` runs averaged, in the model and re-run."""
    use_all_cores()
    vm = relax.VirtualMachine(executable, tvm.cpu())
    totals: dict[str, float] = defaultdict(float)
    reruns: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    shapes: dict[str, tuple[int, ...]] = {}
    started: list[float] = []
    rerunning = False

    def instrument(func, name, before, ret, *args):
        name = str(name)
        if before:
            started.append(time.perf_counter())
        elif rerunning:
            started.pop()
            if not (name.startswith("vm.builtin") or _aliased(args)):
                start = time.perf_counter()
                func(*args)
                reruns[name] += time.perf_counter() - start
        else:
            totals[name] += time.perf_counter() - started.pop()
            calls[name] += 1
            last = args[-1] if args else None
            shapes[name] = tuple(int(d) for d in getattr(last, "shape", ()))
        return 0

    vm["main"](*inputs)  # warm up without the hook
    vm.set_instrument(tvm.runtime.convert(instrument))
    for _ in range(rounds):
        vm["main"](*inputs)
    rerunning = True
    for _ in range(rounds):
        vm["main"](*inputs)
    return sorted(
        (
            KernelTime(
                name,
                1e3 * total / rounds,
                calls[name] // rounds,
                shapes[name],
                1e3 * reruns[name] / rounds,
            )
            for name, total in totals.items()
        ),
        key=lambda row: -row.ms,
    )


def _aliased(args) -> bool:
    """Two arguments share memory (a kernel writing in place): re-running it would read its
    own output, so it is not re-run."""
    pointers = [arg.data_ptr() for arg in args if isinstance(arg, tvm.runtime.Tensor)]
    return len(set(pointers)) < len(pointers)
