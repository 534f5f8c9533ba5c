"""Keep a stock TVM RPC server serving after a session crashes.

When code run in a session kills the server's worker (SIGSEGV, SIGILL: a kernel built for a CPU
feature the board lacks, a bad pointer), TVM 0.27's server raises ``RuntimeError: Child process
N exited unsuccessfully`` in its listening thread. The thread dies, the process stays alive and
registered, and no session is ever accepted again. The supervisor runs the server as a child,
passes its output through, and restarts it (the whole process tree: the server forks workers)
when that line appears or when the server exits. SIGTERM/SIGINT stop the tree and the supervisor.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

import psutil

logger = logging.getLogger(__name__)

CRASH_MARKER = "exited unsuccessfully"
RESTART_DELAY_S = 1.0


def supervise(command: Sequence[str], env: Mapping[str, str], what: str) -> int:
    """Run ``command`` until signalled, restarting it after a crashed session; returns 0."""
    stopping = False
    child: subprocess.Popen | None = None

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        if child is not None:
            _terminate_tree(child.pid)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    starts = 0
    while not stopping:
        starts += 1
        logger.info("starting %s%s", what, f" (restart {starts - 1})" if starts > 1 else "")
        child = subprocess.Popen(
            list(command),
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        crashed = False
        for line in child.stdout:
            sys.stderr.write(line)
            sys.stderr.flush()
            if CRASH_MARKER in line:
                crashed = True
                logger.warning("a session crashed the server's worker; restarting %s", what)
                _terminate_tree(child.pid)
        child.wait()
        if not stopping and not crashed:
            logger.warning("%s exited with code %s; restarting it", what, child.returncode)
        if not stopping:
            time.sleep(RESTART_DELAY_S)
    return 0


def _terminate_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
        processes = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=10)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
