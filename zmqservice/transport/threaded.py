"""The sync driver: ``app.run()`` serves from this thread until a signal or `app.stop()`.

In main mode, `@app.main` runs here and the in-connections are served from a thread next
to it. A first SIGINT/SIGTERM lets the message in hand finish, runs the signal hook and
closes; a second one stops at once (`Shutdown`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

import zmq

from . import signals
from .running import ExitStatus, RunningApp
from .serve import Handlers, entries, serve_one, serve_polled
from .sockets import GRACE_S, WAKE_MS

if TYPE_CHECKING:
    from ..app import App
    from .addresses import Endpoint

__all__ = ["Shutdown", "ThreadedRuntime"]

LOG = logging.getLogger("zmqservice.runtime")


class Shutdown(BaseException):
    """Raised in the main thread to end main mode (or on a second signal) at once."""


def _nothing() -> None:
    pass


class ThreadedRuntime:
    """Runs one app on a `RunningApp` with threads: serving, or main mode."""

    def __init__(
        self,
        app: App,
        config: Any,
        addresses: Mapping[str, Endpoint],
        on_ready: Callable[[], Any] | None = None,
        status: ExitStatus | None = None,
    ) -> None:
        self.running = RunningApp(app, config, addresses, zmq.Context(), LOG, on_ready=on_ready)
        self.status = status
        self._main_mode = False
        self._served = threading.Event()
        """Set when the serving loop has returned: it holds no socket call any more."""
        self._interruptible = False
        """Whether a second signal may raise `Shutdown` where the main thread is now: not
        while the run closes, which would leave sockets open and handlers installed."""

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        verdict = self.running.signalled(signum, frame)
        if not self._interruptible:
            return
        if verdict == "again":
            raise Shutdown
        if verdict == "first" and self._main_mode:
            self._run_signal_hook()
            raise Shutdown

    def _run_signal_hook(self) -> None:
        called = self.running.signal_hook()
        if called is None:
            return
        hook, signum, frame = called
        try:
            self.running.dispatcher.run_hook(hook, signum, frame)
        except Exception:
            LOG.exception("%s hook raised", hook)

    def run(self, *, main: bool, min_wait: float) -> Any:
        """Serve (or run main) until stopped; always closes every socket."""
        running = self.running
        restore: Callable[[], None] = _nothing
        server: threading.Thread | None = None
        try:
            opened = running.open(running.context)
            handlers = entries(running.dispatcher, running.context, opened, running.pools)
            self._interruptible = True
            restore = signals.install(self._on_signal, hold=self.status is not None)
            running.attach()
            running.dispatcher.run_hook("init")
            running.ready()
            if not main:
                self._serve(handlers, min_wait)
                return None
            self._main_mode = True
            if handlers or running.pools:
                server = threading.Thread(
                    target=self._serve, args=(handlers, min_wait), name="zmqservice-serve"
                )
                server.daemon = True
                server.start()
            return running.dispatcher.run_hook("main")
        except Shutdown:
            return None
        finally:
            self._interruptible = False
            self._main_mode = False
            running.stop()
            busy = server is not None and not self._join()
            running.detach()
            try:
                running.close(self._served if busy else None)
            finally:
                restore()
                if self.status is not None:
                    self.status.forced = running.forced

    def _join(self) -> bool:
        """Give the serving thread `GRACE_S` to finish; a second signal stops the wait."""
        # An Event, not Thread.join: a join that a signal interrupts can mark a thread that
        # is still running as stopped (Python 3.11), and then its sockets would be closed
        # under it.
        with contextlib.suppress(Shutdown):
            self._interruptible = True
            try:
                self._served.wait(GRACE_S)
            finally:
                self._interruptible = False
        return self._served.is_set()

    def _serve(self, handlers: Handlers, min_wait: float) -> None:
        serving_mode = not self._main_mode  # read now: main mode's end clears the flag
        try:
            self._serve_loop(handlers, min_wait)
        except zmq.ContextTerminated:  # a forced stop interrupted the message in hand
            LOG.warning("stopped while handling a message: its reply is lost")
            return
        finally:
            self._served.set()
        if serving_mode:  # in main mode the signal handler runs the hook itself
            self._run_signal_hook()

    def _serve_loop(self, handlers: Handlers, min_wait: float) -> None:
        running = self.running
        if len(handlers) == 1 and not running.pools and not min_wait:
            serve_one(*next(iter(handlers.items())), running.stopping)
        elif handlers or running.pools:
            serve_polled(handlers, running.pools, running.stopping, min_wait)
        else:
            LOG.info(
                "App %r has no in-connections: nothing to serve until stopped", running.app.name
            )
            # zmq.Poller.poll() returns at once with no sockets: wait on the event instead.
            while not running.stopping.wait(WAKE_MS / 1000):
                pass
