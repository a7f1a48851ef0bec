"""`app.run()`: one poller loop over every in-connection, signals, graceful close."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

import zmq

from ..connection import message_limit
from ..dispatch import Dispatcher
from . import signals
from .curve import start_authenticator, stop_authenticator
from .pool import ConcurrentReplyer
from .requesters import SocketOutbound
from .serve import Handlers, entries, serve_one, serve_polled
from .sockets import GRACE_S, WAKE_MS, last_endpoint, open_inbound

if TYPE_CHECKING:
    from zmq.auth.thread import ThreadAuthenticator

    from ..app import App

__all__ = ["Runtime", "Shutdown"]

LOG = logging.getLogger("zmqservice.runtime")
TERM_WAIT_S = 2.0
"""How long a forced stop waits for a busy serving thread to leave its socket calls."""


class Shutdown(BaseException):
    """Raised in the main thread to end main mode (or on a second signal) at once."""


def _nothing() -> None:
    pass


class Runtime:
    """Owns the zmq context and sockets of one running app."""

    def __init__(self, app: App, config: Any, endpoints: Mapping[str, Any]) -> None:
        self.app = app
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        conns = list(app.connections.values())
        self.outbound = SocketOutbound(self.context, conns, dict(endpoints))
        try:
            self.dispatcher = Dispatcher(app, config, self.outbound)
        except BaseException:
            self.context.term()
            raise
        self.endpoints = endpoints
        self.inbound = [c for c in conns if c.side == "in"]
        self.sockets: list[zmq.Socket[bytes]] = []
        self.concurrent: list[ConcurrentReplyer] = []
        """Replyers with ``concurrency`` > 1: served by `serve.serve_polled`."""
        self.stopping = threading.Event()
        self._signal: tuple[int, FrameType | None] | None = None
        self._main_mode = False
        self._closing = False
        self._served = threading.Event()
        """Set when the serving loop has returned: it holds no socket call any more."""
        self.bound: dict[str, str] = {}
        self.ready = threading.Event()
        self.on_ready: Callable[[], Any] | None = None
        self.authenticator: ThreadAuthenticator | None = None

    # -- signals ----------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._closing:  # closing is bounded (linger): let it finish
            LOG.warning("%s: already closing", signal.Signals(signum).name)
            return
        if self._signal is not None:
            LOG.warning("second signal %s: stopping now", signal.Signals(signum).name)
            raise Shutdown
        self._signal = (signum, frame)
        LOG.info("%s: finishing the message in hand, then stopping", signal.Signals(signum).name)
        self.stopping.set()
        if self._main_mode:
            self._run_signal_hook()
            raise Shutdown

    def _run_signal_hook(self) -> None:
        if self._signal is None:
            return
        signum, frame = self._signal
        hook = "on_sigint" if signum == signal.SIGINT else "on_sigterm"
        try:
            self.dispatcher.run_hook(hook, signum, frame)
        except Exception:
            LOG.exception("%s hook raised", hook)

    # -- running ----------------------------------------------------------------------------

    def run(self, *, main: bool, min_wait: float) -> Any:
        """Serve (or run main) until stopped; always closes every socket."""
        restore: Callable[[], None] = _nothing
        server: threading.Thread | None = None
        try:
            # ZAP handler first: a CURVE server socket must never be open without it.
            self.authenticator = start_authenticator(self.context, self.endpoints.values())
            self.outbound.open()
            handlers = self._open_inbound()
            restore = signals.install(self._on_signal)
            self.app._sender = self.dispatcher.root_sender  # type: ignore[attr-defined]
            self.app._runtime = self  # type: ignore[attr-defined]
            self.dispatcher.run_hook("init")
            self.ready.set()
            self.app._ready.set()
            if self.on_ready is not None:
                self.on_ready()
            if not main:
                self._serve(handlers, min_wait)
                return None
            self._main_mode = True
            if handlers or self.concurrent:
                server = threading.Thread(
                    target=self._serve, args=(handlers, min_wait), name="zmqservice-serve"
                )
                server.daemon = True
                server.start()
            return self.dispatcher.run_hook("main")
        except Shutdown:
            return None
        finally:
            self._main_mode = False
            self.stopping.set()
            busy = server is not None and not self._join()
            self._closing = True
            self.app._sender = None  # type: ignore[attr-defined]
            self.app._runtime = None  # type: ignore[attr-defined]
            self.app._ready.clear()
            try:
                self.close(busy)
            finally:
                restore()

    def _join(self) -> bool:
        """Give the serving thread `GRACE_S` to finish; a second signal stops the wait."""
        # An Event, not Thread.join: a join that a signal interrupts can mark a thread that
        # is still running as stopped (Python 3.11), and then its sockets would be closed
        # under it.
        with contextlib.suppress(Shutdown):
            self._served.wait(GRACE_S)
        return self._served.is_set()

    def _open_inbound(self) -> Handlers:
        opened = []
        for conn in self.inbound:
            limit = message_limit(self.app, conn)
            sock = open_inbound(self.context, conn, self.endpoints[conn.name], limit)
            self.sockets.append(sock)
            self.bound[conn.name] = last_endpoint(sock)
            opened.append((sock, conn))
            LOG.debug("%s on %s", conn.label, self.endpoints[conn.name].url)
        return entries(self.dispatcher, self.context, opened, self.concurrent)

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
        if len(handlers) == 1 and not self.concurrent and not min_wait:
            serve_one(*next(iter(handlers.items())), self.stopping)
        elif handlers or self.concurrent:
            serve_polled(handlers, self.concurrent, self.stopping, min_wait)
        else:
            LOG.info("App %r has no in-connections: nothing to serve until stopped", self.app.name)
            # zmq.Poller.poll() returns at once with no sockets: wait on the event instead.
            while not self.stopping.wait(WAKE_MS / 1000):
                pass

    def stop(self) -> None:
        """Ask the loop to stop after the message in hand; safe from any thread."""
        self.stopping.set()

    def close(self, busy: bool = False) -> None:
        """Close sockets with a bounded linger and terminate the context.

        `busy`: the serving thread is still inside a message (a handler waiting on a
        requester with no timeout ...). Closing a socket under a thread blocked on it
        crashes libzmq, so the context is terminated first, which makes its blocking calls
        raise `zmq.ContextTerminated`; its sockets are closed once it has left them.
        """
        if self.authenticator is not None:  # first: its sockets live in the context too
            stop_authenticator(self.authenticator)
            self.authenticator = None
        terminator: threading.Thread | None = None
        if busy:
            LOG.warning("the serving thread is still busy after %ss: interrupting it", GRACE_S)
            terminator = threading.Thread(
                target=self.context.term, name="zmqservice-term", daemon=True
            )
            terminator.start()
            if not self._served.wait(TERM_WAIT_S):
                LOG.error("the serving thread did not stop: leaving its sockets open")
                return
        for replyer in self.concurrent:
            replyer.close()
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
        self.outbound.close()
        if terminator is None:
            self.context.term()
        else:
            terminator.join(TERM_WAIT_S)
