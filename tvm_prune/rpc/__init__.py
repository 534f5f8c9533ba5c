"""Devices over TVM RPC.

In: an :class:`RpcConfig` (a tracker and key, or a server's host and port). Out: an RPC session
to run packages on (:func:`open_session`), and the supervisor that keeps a stock server serving
after a session crashes it (:mod:`.supervisor`, used by ``tvm-prune rpc server|emulate``).
"""

from .config import RpcConfig
from .session import open_session

__all__ = ["RpcConfig", "open_session"]
