"""One running app: its context, ZAP handler, sockets and run state, opened and closed in order.

The sync driver (`threaded`) and the asyncio driver (`aio`) both compose a `RunningApp`
and take it through the same steps::

    open()      registration closes; ZAP handler, then publishers, then in-connections
    attach()    app.send / stats / endpoints / stop reach this run (it is the `RunState`)
    ...         the driver runs @app.init, then ready(), then serves or runs main
    detach()    closing: app.send says "not running" again, a signal is only logged
    close()     every socket with a bounded linger, then the context

Signals are recorded here (`signalled`), so both drivers log and count them the same way;
what a second signal interrupts is each driver's own business. A stop that gave up on work
in hand (a second signal, replies dropped after the grace period) is recorded in `forced`:
`zmqservice run` exits 1 after it (`ExitStatus`).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs
import zmq

from ..connection import message_limit
from ..dispatch import Dispatcher
from .curve import start_authenticator, stop_authenticator
from .recover import unwatch
from .requesters import SocketOutbound
from .sockets import GRACE_S, last_endpoint, open_inbound

if TYPE_CHECKING:
    from zmq.auth.thread import ThreadAuthenticator

    from ..app import App
    from ..connection import Connection
    from ..sending import AsyncOutbound
    from ..stats import SubscriberStats
    from .addresses import Endpoint
    from .pool import ConcurrentReplyer

__all__ = ["TERM_WAIT_S", "ExitStatus", "RunningApp", "Verdict"]

TERM_WAIT_S = 2.0
"""How long a forced stop waits for a busy serving thread to leave its socket calls."""

S = TypeVar("S", bound="zmq.Socket[Any]")


@attrs.define
class ExitStatus:
    """How a run that ends its process stopped; `zmqservice run` and workers pass one.

    Passing one to `run_app` also makes SIGINT and SIGTERM ignored after the run, until
    the process exits, instead of putting back the handlers from before it: a late signal
    cannot kill a process that is already stopping (`signals.install`, ``hold``).
    """

    forced: str | None = None
    """Why the stop gave up on work in hand; None for a clean stop."""

    @property
    def code(self) -> int:
        """The process exit status: 0 after a clean stop, 1 after a forced one."""
        return 0 if self.forced is None else 1


Verdict = Literal["first", "again", "closing"]
"""What a signal means now: stop gracefully, stop at once, or nothing (already closing)."""


class RunningApp:
    """The zmq context, sockets, dispatcher and run state of one running app.

    Args:
        app: the service.
        config: its validated config.
        addresses: connection name -> `Endpoint`, resolved.
        context: the run's context; the `RunningApp` owns it from now on and terminates it.
        log: where the driver's lines go (``zmqservice.runtime``, ``zmqservice.aio``).
        async_outbound: where ``await to_send(...)`` requests go (the asyncio driver's).
        on_ready: called once @app.init has run (the CLI's start-up announcement).
    """

    def __init__(
        self,
        app: App,
        config: Any,
        addresses: Mapping[str, Endpoint],
        context: zmq.Context[zmq.Socket[bytes]],
        log: logging.Logger,
        *,
        async_outbound: AsyncOutbound | None = None,
        on_ready: Callable[[], Any] | None = None,
    ) -> None:
        self.app = app
        self.context = context
        self.addresses = addresses
        self.log = log
        conns = list(app.connections.values())
        self.outbound = SocketOutbound(context, conns, addresses)
        try:
            self.dispatcher = Dispatcher(app, config, self.outbound, async_outbound=async_outbound)
        except BaseException:
            context.term()
            raise
        self._to_send = self.dispatcher.root_sender
        self.inbound = [c for c in conns if c.side == "in"]
        self.sockets: list[zmq.Socket[Any]] = []
        self.pools: list[ConcurrentReplyer] = []
        """Replyers with ``concurrency`` > 1, closed with the sockets."""
        self.bound: dict[str, str] = {}
        """In-connection name -> the endpoint its socket bound or connected."""
        self.stopping = threading.Event()
        self.signal: tuple[int, FrameType | None] | None = None
        """The first SIGINT/SIGTERM received, and its frame."""
        self.closing = False
        self.forced: str | None = None
        """Why the stop gave up on work in hand (see `ExitStatus`); None while it has not."""
        self.on_ready = on_ready
        self._authenticator: ThreadAuthenticator | None = None
        self._on_stop: list[Callable[[], Any]] = []

    # -- the RunState the App reads ---------------------------------------------------------

    def send(self, name: str, args: Any, **options: Any) -> Any:
        """`app.send`: the run's root `to_send` (main, init and the signal hooks share it)."""
        return self._to_send(name, args, **options)

    @property
    def stats(self) -> Mapping[str, SubscriberStats]:
        """Subscriber name -> its counters."""
        return self.dispatcher.stats

    @property
    def endpoints(self) -> dict[str, str]:
        """Connection name -> its endpoint: the bound one where a socket bound."""
        urls = {name: endpoint.url for name, endpoint in self.addresses.items()}
        return {**urls, **self.outbound.bound, **self.bound}

    def stop(self) -> None:
        """Ask the driver to stop after the message in hand; safe from any thread."""
        self.stopping.set()
        for wake in self._on_stop:
            wake()

    def on_stop(self, wake: Callable[[], Any]) -> None:
        """Also call `wake` on `stop` (the asyncio driver wakes its loop with it)."""
        self._on_stop.append(wake)

    # -- lifecycle --------------------------------------------------------------------------

    def open(self, context: zmq.Context[S]) -> list[tuple[S, Connection]]:
        """Close registration, then open every socket; in-connections on `context`.

        `context` is the run's own or a `zmq.asyncio` shadow of it.

        Raises:
            ConfigError: an address cannot be bound or connected, or a CURVE key is bad.
        """
        self.app.finish_setup()
        # ZAP handler first: a CURVE server socket must never be open without it.
        self._authenticator = start_authenticator(self.context, self.addresses.values())
        self.outbound.open()
        opened: list[tuple[S, Connection]] = []
        for conn in self.inbound:
            endpoint = self.addresses[conn.name]
            sock = open_inbound(context, conn, endpoint, message_limit(self.app, conn))
            self.sockets.append(sock)
            self.bound[conn.name] = last_endpoint(sock)
            opened.append((sock, conn))
            self.log.debug("%s on %s", conn.label, endpoint.url)
        return opened

    def attach(self) -> None:
        """Show this run to the App: `app.send` and the other views work from now on."""
        self.app.attach(self)

    def ready(self) -> None:
        """@app.init has run: `app.wait_ready` returns, `on_ready` is called."""
        self.app.mark_ready()
        if self.on_ready is not None:
            self.on_ready()

    def detach(self) -> None:
        """Closing starts: the App forgets this run; a signal is only logged from now on."""
        self.closing = True
        self.app.detach(self)

    def signalled(self, signum: int, frame: FrameType | None) -> Verdict:
        """Record a SIGINT or SIGTERM and log what it does.

        Returns:
            ``"first"``: a graceful stop was asked (`stop`); ``"again"``: a second signal,
            the driver stops at once; ``"closing"``: too late to matter (close is bounded).
        """
        name = signal.Signals(signum).name
        if self.closing:
            self.log.warning("%s: already closing", name)
            return "closing"
        if self.signal is not None:
            self.log.warning("second signal %s: stopping now", name)
            self.forced = self.forced or f"second signal {name}"
            return "again"
        self.signal = (signum, frame)
        self.log.info("%s: finishing the message in hand, then stopping", name)
        self.stop()
        return "first"

    def signal_hook(self) -> tuple[str, int, FrameType | None] | None:
        """The hook the recorded signal calls, with its signum and frame; None if none came."""
        if self.signal is None:
            return None
        signum, frame = self.signal
        return ("on_sigint" if signum == signal.SIGINT else "on_sigterm"), signum, frame

    def close(self, busy: threading.Event | None = None) -> None:
        """Close every socket with a bounded linger and terminate the context.

        Args:
            busy: given when a serving thread is still inside a message (a handler waiting
                on a requester with no timeout ...); set once it has left its socket calls.
                Closing a socket under a thread blocked on it crashes libzmq, so the context
                is terminated first, which makes its blocking calls raise
                `zmq.ContextTerminated`; the sockets are closed once it has left them.

        Handler threads of a ``concurrency`` > 1 replyer still running are treated the same
        way, without waiting for them: their requester sockets are left to them (a blocking
        call in one raises `zmq.ContextTerminated`, and the requester closes its socket),
        and the process may exit under them (they are daemon threads).
        """
        if self._authenticator is not None:  # first: its sockets live in the context too
            stop_authenticator(self._authenticator)
            self._authenticator = None
        terminator: threading.Thread | None = None
        if busy is not None:
            self.log.warning("the serving thread is still busy after %ss: interrupting it", GRACE_S)
            self.forced = self.forced or "the serving thread was interrupted"
            terminator = self._terminate()
            if not busy.wait(TERM_WAIT_S):
                self.log.error("the serving thread did not stop: leaving its sockets open")
                return
        dropped = sum(pool.in_flight for pool in self.pools)
        stuck: set[threading.Thread] = set()
        for pool in self.pools:
            stuck |= pool.handling
            pool.close()
        if dropped:
            self.forced = self.forced or f"{dropped} request(s) in flight dropped"
        if stuck:
            self.log.warning(
                "%d handler thread(s) still running: interrupting their socket calls", len(stuck)
            )
            terminator = terminator or self._terminate()
        for sock in self.sockets:
            unwatch(sock)  # its monitor socket first: it would hold the context open
            sock.close()
        self.sockets.clear()
        self.outbound.close(keep=stuck)
        if terminator is None:
            self.context.term()
        else:
            terminator.join(TERM_WAIT_S)

    def _terminate(self) -> threading.Thread:
        """Terminate the context in a daemon thread: blocking socket calls raise at once."""
        terminator = threading.Thread(target=self.context.term, name="zmqservice-term", daemon=True)
        terminator.start()
        return terminator
