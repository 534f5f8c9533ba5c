"""An RPC tracker and the emulated aarch64 device (qemu-aarch64 + the stock TVM RPC server),
started once for the RPC tests and stopped with their whole process groups afterwards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

DEVICE_KEY = "aarch64-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(command: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(process: subprocess.Popen) -> None:
    # The server forks workers: signal the whole group, not only the PID we started.
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def _wait_for_key(port: int, key: str, timeout: float) -> None:
    from tvm import rpc

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            summary = rpc.connect_tracker("127.0.0.1", port).summary()
            if summary["queue_info"].get(key, {}).get("free", 0) > 0:
                return
        except Exception:  # the tracker is still starting
            pass
        time.sleep(1)
    raise TimeoutError(f"device '{key}' did not register with the tracker in {timeout:.0f} s")


@pytest.fixture(scope="session")
def emulated_device(tmp_path_factory):
    """``(tracker_port, key)`` of a running emulated aarch64 device."""
    logs = tmp_path_factory.mktemp("rpc")
    port = _free_port()
    tracker = _start(
        [sys.executable, "-m", "tvm_prune", "rpc", "tracker", "--port", str(port)],
        logs / "tracker.log",
    )
    server = _start(
        [
            sys.executable,
            "-m",
            "tvm_prune",
            "rpc",
            "emulate",
            "--tracker",
            f"127.0.0.1:{port}",
            "--key",
            DEVICE_KEY,
            "--port",
            str(_free_port()),
        ],
        logs / "server.log",
    )
    try:
        _wait_for_key(port, DEVICE_KEY, timeout=600)
        yield port, DEVICE_KEY
    except TimeoutError:
        pytest.fail(f"emulated device did not start:\n{(logs / 'server.log').read_text()[-3000:]}")
    finally:
        _stop(server)
        _stop(tracker)
