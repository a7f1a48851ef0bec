"""`transport.signals.install`: one install/restore for `signal.signal` and event loops."""

from __future__ import annotations

import asyncio
import signal
import threading
from types import FrameType

from zmqservice.transport import signals


def test_install_routes_both_signals_and_restore_puts_back_what_was_there() -> None:
    before = {sig: signal.getsignal(sig) for sig in signals.SIGNALS}
    seen: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    restore = signals.install(handler)
    try:
        assert all(signal.getsignal(sig) is handler for sig in signals.SIGNALS)
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)
    finally:
        restore()
    assert seen == [signal.SIGTERM, signal.SIGINT]
    assert {sig: signal.getsignal(sig) for sig in signals.SIGNALS} == before


def test_install_outside_the_main_thread_leaves_handlers_alone() -> None:
    before = {sig: signal.getsignal(sig) for sig in signals.SIGNALS}
    restores = []
    thread = threading.Thread(target=lambda: restores.append(signals.install(print)), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert {sig: signal.getsignal(sig) for sig in signals.SIGNALS} == before
    restores[0]()  # a no-op
    assert {sig: signal.getsignal(sig) for sig in signals.SIGNALS} == before


def test_install_on_a_loop_calls_the_handler_there_without_a_frame() -> None:
    before = {sig: signal.getsignal(sig) for sig in signals.SIGNALS}
    seen: list[tuple[int, FrameType | None]] = []

    async def main() -> None:
        restore = signals.install(lambda signum, frame: seen.append((signum, frame)), loop=None)
        restore()  # a sync install and restore inside a loop is fine too
        loop = asyncio.get_running_loop()
        restore = signals.install(lambda signum, frame: seen.append((signum, frame)), loop)
        try:
            signal.raise_signal(signal.SIGTERM)
            await asyncio.sleep(0.05)
        finally:
            restore()

    asyncio.run(main())
    assert seen == [(signal.SIGTERM, None)]
    assert {sig: signal.getsignal(sig) for sig in signals.SIGNALS} == before


def test_hold_ignores_both_signals_after_the_run_instead_of_restoring() -> None:
    before = {sig: signal.getsignal(sig) for sig in signals.SIGNALS}
    restore = signals.install(lambda signum, frame: None, hold=True)
    try:
        restore()
        assert all(signal.getsignal(sig) == signal.SIG_IGN for sig in signals.SIGNALS)
        signal.raise_signal(signal.SIGTERM)  # ignored: the test goes on
        signal.raise_signal(signal.SIGINT)  # no KeyboardInterrupt
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def test_hold_on_a_loop_ignores_them_too() -> None:
    before = {sig: signal.getsignal(sig) for sig in signals.SIGNALS}

    async def main() -> None:
        restore = signals.install(print, asyncio.get_running_loop(), hold=True)
        restore()

    try:
        asyncio.run(main())
        assert all(signal.getsignal(sig) == signal.SIG_IGN for sig in signals.SIGNALS)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
