"""Devices over TVM RPC.

In: an :class:`RpcConfig` (a tracker and key, or a server's host and port). Out: an RPC session
to run packages on (:func:`open_session`), and the local helpers that start a tracker, a server
or the emulated aarch64 device (:mod:`.services`).
"""

from .config import RpcConfig
from .session import open_session

__all__ = ["RpcConfig", "open_session"]
