"""The CPU thread pool TVM's parallel kernels run on: one thread per core this process may use.

TVM's pool defaults to half the hardware threads on x86 (it assumes every core is
hyper-threaded), so on a 2-vCPU machine every parallel kernel ran on one thread; and with
``TVM_NUM_THREADS`` set it pins each worker to a core, so one core busy with another process
stalls every parallel loop (static partitioning waits for the pinned worker). :func:`use_all_cores`
gives the pool one worker per core in this process's affinity set, all sharing those cores
(TVM's ``kSpecifyThreadShareAllCore``). A ``TVM_NUM_THREADS`` or ``OMP_NUM_THREADS`` the user set
wins: TVM reads those itself and nothing is changed.
"""

from __future__ import annotations

import functools
import os

import tvm

# TVM's ThreadGroup::AffinityMode: every worker may run on any core of the given set.
SHARE_ALL_CORES = -3


@functools.cache
def use_all_cores() -> int:
    """Configure the pool once per process; the number of threads it runs parallel loops on."""
    if not (os.environ.get("TVM_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")):
        cores = [str(core) for core in sorted(os.sched_getaffinity(0))]
        tvm.get_global_func("runtime.config_threadpool")(SHARE_ALL_CORES, len(cores), cores)
    return int(tvm.get_global_func("runtime.NumThreads")())
