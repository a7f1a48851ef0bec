"""One way to take SIGINT and SIGTERM, in threads and on an event loop, and give them back.

FastStream's ``set_exit`` idea: the caller writes one ``handler(signum, frame)`` and says
whether it runs under `signal.signal` or `loop.add_signal_handler`; `install` returns the
function that restores what was there before. Signal handlers belong to the main thread:
anywhere else (an app run from a test's thread) `install` leaves them alone.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

__all__ = ["SIGNALS", "Handler", "install"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
Handler = Callable[[int, FrameType | None], Any]
"""Called with the signal number and the interrupted frame (None on an event loop)."""


def _nothing() -> None:
    pass


def install(handler: Handler, loop: asyncio.AbstractEventLoop | None = None) -> Callable[[], None]:
    """Route SIGINT and SIGTERM to `handler` until the returned function is called.

    Args:
        handler: ``handler(signum, frame)``.
        loop: run `handler` on this event loop (`loop.add_signal_handler`, frame None)
            instead of in whatever the main thread is doing (`signal.signal`).

    Returns:
        A function that puts the previous handlers back; outside the main thread, where
        nothing is installed, it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return _nothing
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig in SIGNALS:
        if loop is None:
            signal.signal(sig, handler)
        else:
            loop.add_signal_handler(sig, handler, sig, None)

    def restore() -> None:
        for sig, before in previous.items():
            if loop is not None:
                loop.remove_signal_handler(sig)
            signal.signal(sig, before)

    return restore
