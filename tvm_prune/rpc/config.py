"""Where the device is: a tracker and key, or a server's address; with the timeouts to use."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import RunError

TRACKER_ENV = ("TVM_TRACKER_HOST", "TVM_TRACKER_PORT", "TVM_TRACKER_KEY")


@dataclass(frozen=True)
class RpcConfig:
    """Either ``tracker`` (``(host, port)``) with ``key``, or ``server`` (``(host, port)``).

    ``connect_timeout`` bounds opening the session (TVM's own connect has none, and a server
    whose worker crashed accepts the TCP connection but never answers); ``session_timeout``
    bounds the whole session on the server side (0: none).
    """

    tracker: tuple[str, int] | None = None
    key: str | None = None
    server: tuple[str, int] | None = None
    connect_timeout: float = 60.0
    session_timeout: float = 600.0

    def __post_init__(self) -> None:
        if (self.tracker is None) == (self.server is None):
            raise RunError("give either an RPC tracker (with a key) or an RPC server, not both")
        if self.tracker is not None and not self.key:
            raise RunError("an RPC tracker needs a device key (--rpc-key)")

    def describe(self) -> str:
        if self.tracker is not None:
            return f"tracker {self.tracker[0]}:{self.tracker[1]}, key {self.key}"
        return f"server {self.server[0]}:{self.server[1]}"

    @classmethod
    def resolve(
        cls,
        *,
        tracker: str | None = None,
        key: str | None = None,
        host: str | None = None,
        port: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> RpcConfig | None:
        """From command-line values (``--rpc-tracker HOST:PORT --rpc-key KEY`` or
        ``--rpc-host H --rpc-port P``), else from ``TVM_TRACKER_HOST/PORT/KEY``; ``None`` when
        nothing names a device. The only place tvm-prune reads the environment for RPC."""
        if (host is None) != (port is None):
            raise RunError("--rpc-host and --rpc-port go together")
        if tracker or host:
            return cls(
                tracker=parse_address(tracker, "--rpc-tracker") if tracker else None,
                key=key,
                server=(host, int(port)) if host else None,
            )
        environ = os.environ if environ is None else environ
        host, port, env_key = (environ.get(name) for name in TRACKER_ENV)
        if host and port:
            return cls(
                tracker=parse_address(f"{host}:{port}", "TVM_TRACKER_HOST/PORT"), key=key or env_key
            )
        if key:
            raise RunError(
                f"--rpc-key {key} needs --rpc-tracker HOST:PORT (or TVM_TRACKER_HOST/PORT)"
            )
        return None


def parse_address(text: str, what: str) -> tuple[str, int]:
    """``"host:port"`` -> ``("host", port)``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RunError(f"{what}: '{text}' is not host:port")
    return host, int(port)
