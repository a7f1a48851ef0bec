"""One way to take SIGINT and SIGTERM, in threads and on an event loop, and give them back.

FastStream's ``set_exit`` idea: the caller writes one ``handler(signum, frame)`` and says
whether it runs under `signal.signal` or `loop.add_signal_handler`; `install` returns the
function that restores what was there before (or, for a run that ends its process,
ignores them: a late signal must not kill a process that is already stopping).
Signal handlers belong to the main thread: anywhere else (an app run from a test's thread)
`install` leaves them alone.
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


def install(
    handler: Handler,
    loop: asyncio.AbstractEventLoop | None = None,
    *,
    hold: bool = False,
) -> Callable[[], None]:
    """Route SIGINT and SIGTERM to `handler` until the returned function is called.

    Args:
        handler: ``handler(signum, frame)``.
        loop: run `handler` on this event loop (`loop.add_signal_handler`, frame None)
            instead of in whatever the main thread is doing (`signal.signal`).
        hold: the run ends its process (``zmqservice run``, a worker): the returned
            function ignores both signals from then on instead of restoring the previous
            handlers, so a signal between the end of the run and the exit neither kills
            the process nor raises `KeyboardInterrupt` in it. Ignoring is the only way:
            Python resets the handlers it installed to the default while it finalizes.

    Returns:
        A function that puts the previous handlers back (or ignores the signals); outside
        the main thread, where nothing is installed, it does nothing.
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
            if hold:  # first: removing a loop's handler puts the default back
                signal.signal(sig, signal.SIG_IGN)
            if loop is not None:
                loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN if hold else before)

    return restore
