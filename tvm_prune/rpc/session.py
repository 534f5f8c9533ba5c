"""Opening an RPC session with a bound on how long it may take."""

from __future__ import annotations

import logging
import queue
import threading
import time

from ..errors import RunError
from .config import RpcConfig

logger = logging.getLogger(__name__)


def open_session(config: RpcConfig, *, retries: int = 2):
    """An ``tvm.rpc.RPCSession`` to the device, or a one-line :class:`RunError`.

    Connecting runs in a daemon thread so a server that accepts but never answers cannot hang
    the caller past ``config.connect_timeout`` (nor, left behind, the interpreter's exit).
    Refused connections and a tracker with no free device are retried (``retries`` times, 2 s
    apart): both are safe to retry.
    """
    from tvm import rpc

    def connect():
        if config.tracker is not None:
            tracker = rpc.connect_tracker(*config.tracker)
            return tracker.request(config.key, priority=1, session_timeout=config.session_timeout)
        return rpc.connect(*config.server, session_timeout=config.session_timeout)

    last_error: Exception | None = None
    for attempt in range(retries + 1):
        result: queue.Queue = queue.Queue(maxsize=1)

        def attempt_connect(result=result):
            try:
                result.put((True, connect()))
            except Exception as exc:  # TVM raises RuntimeError / TVMError subclasses here
                result.put((False, exc))

        threading.Thread(target=attempt_connect, name="tvm-prune-rpc", daemon=True).start()
        try:
            ok, value = result.get(timeout=config.connect_timeout)
        except queue.Empty as exc:
            raise RunError(
                f"RPC {config.describe()}: no session within {config.connect_timeout:.0f} s "
                "(is the device's server alive?)"
            ) from exc
        if ok:
            logger.info("connected to %s", config.describe())
            return value
        last_error = value
        logger.info("RPC %s: attempt %d failed: %s", config.describe(), attempt + 1, value)
        time.sleep(2)
    message = (str(last_error).strip().splitlines() or ["no answer"])[-1]
    raise RunError(f"RPC {config.describe()}: cannot open a session ({message[:200]})")
