"""The runner's thread pool: one thread per core of the process unless the user set a count.
Each case runs in a fresh interpreter: the pool is process-global and configured once."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = "from tvm_prune.package.threads import use_all_cores; print(use_all_cores())"


def _threads(**env_overrides) -> int:
    env = {k: v for k, v in os.environ.items() if k not in ("TVM_NUM_THREADS", "OMP_NUM_THREADS")}
    env.update(env_overrides)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return int(result.stdout.strip().splitlines()[-1])


def test_pool_gets_a_thread_per_core():
    # TVM alone would answer half the hardware threads on x86 (1 on a 2-vCPU machine).
    assert _threads() == len(os.sched_getaffinity(0))


def test_a_count_the_user_set_wins():
    assert _threads(TVM_NUM_THREADS="1") == 1
