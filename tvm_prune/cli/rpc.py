"""``tvm-prune rpc tracker|server|emulate``: RPC services on this machine, in the foreground.

``tracker`` replaces this process with TVM's stock tracker. ``server`` and ``emulate`` run TVM's
stock server under :func:`tvm_prune.rpc.supervisor.supervise`, which restarts it when a session
crashes its worker (the stock server would stay up but never accept again); stop them with
Ctrl-C or SIGTERM. ``emulate`` first sets up, once and cached, the emulated aarch64 device of
``cross_compile/emulated-aarch64.sh`` and then serves it.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from importlib import resources

from . import help as texts

logger = logging.getLogger("tvm_prune")
SERVICES = ("tracker", "server", "emulate")


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser("rpc", help=texts.RPC, description=texts.RPC)
    parser.add_argument("service", choices=SERVICES, help=texts.RPC_SERVICE)
    parser.add_argument("--host", default="127.0.0.1", help=texts.RPC_BIND)
    parser.add_argument("--port", type=int, help=texts.RPC_SERVICE_PORT)
    parser.add_argument("--tracker", metavar="HOST:PORT", help=texts.RPC_SERVICE_TRACKER)
    parser.add_argument("--key", help=texts.RPC_SERVICE_KEY)
    parser.add_argument("--cache", help=texts.RPC_CACHE)
    parser.add_argument("--cpu", default="cortex-a72", help=texts.RPC_CPU)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..errors import RunError
    from ..rpc.config import parse_address

    if args.service == "tracker":
        port = args.port or 9190
        command = [
            sys.executable,
            "-m",
            "tvm.exec.rpc_tracker",
            "--host",
            args.host,
            "--port",
            str(port),
            "--port-end",
            str(port + 1),
        ]
        return _exec(command, f"tracker on {args.host}:{port}")
    if not args.tracker:
        raise RunError(f"rpc {args.service} needs --tracker HOST:PORT")
    parse_address(args.tracker, "--tracker")
    key = args.key or ("aarch64-linux" if args.service == "emulate" else "local")
    python = sys.executable
    env = dict(os.environ)
    if args.service == "emulate":
        python = setup_emulated_aarch64(args.cache)
        env["QEMU_CPU"] = args.cpu
    port = args.port or 9090
    command = [
        python,
        "-m",
        "tvm.exec.rpc_server",
        "--tracker",
        args.tracker,
        "--key",
        key,
        "--host",
        args.host,
        "--port",
        str(port),
        "--port-end",
        str(port + 1),
    ]
    from ..rpc.supervisor import supervise

    return supervise(command, env, f"{args.service} server '{key}' via tracker {args.tracker}")


def setup_emulated_aarch64(cache: str | None) -> str:
    """Run the set-up script (a no-op once done); return the device's python3 wrapper."""
    from ..errors import RunError

    script = resources.files("tvm_prune.data") / "cross_compile" / "emulated-aarch64.sh"
    logger.info("setting up the emulated aarch64 device (first time: about a minute)")
    result = subprocess.run(
        ["bash", str(script), *([cache] if cache else [])], stdout=subprocess.PIPE, text=True
    )
    if result.returncode != 0:
        raise RunError(f"setting up the emulated aarch64 device failed (exit {result.returncode})")
    return result.stdout.strip().splitlines()[-1]


def _exec(command: list[str], what: str) -> int:
    logger.info("starting %s", what)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)
    return 0  # not reached
