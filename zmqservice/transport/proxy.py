"""``zmqservice proxy``: libzmq's own proxies, where services on several hosts meet.

``pubsub``: an XSUB frontend (publishers connect with ``xpub=True``) and an XPUB backend
(subscribers connect as usual). ``reqrep``: a ROUTER frontend (requesters connect) and a
DEALER backend (replyers connect with ``bind=False``). The forwarding is libzmq's
``zmq_proxy_steerable`` in a thread of its own; `Proxy.stop` sends it ``TERMINATE`` over an
inproc PAIR, so a stop is clean and bounded, then closes every socket with linger 0.
"""

from __future__ import annotations

import itertools
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

import zmq

from ..connection import DEFAULT_HWM
from ..errors import ConfigError, ZmqServiceError
from . import signals
from .addresses import parse_endpoint
from .sockets import bind, bind_error, last_endpoint

__all__ = ["KINDS", "Proxy", "run_proxy"]

LOG = logging.getLogger("zmqservice.proxy")
STOP_S = 5.0
"""How long `Proxy.stop` waits for libzmq's proxy to return after ``TERMINATE``."""
WAIT_S = 0.1
"""`run_proxy` checks for a signal (and a proxy that died) this often."""

KINDS: dict[str, tuple[int, int, str, str]] = {
    "pubsub": (
        zmq.XSUB,
        zmq.XPUB,
        "XSUB: publishers connect with xpub=True",
        "XPUB: subscribers connect",
    ),
    "reqrep": (
        zmq.ROUTER,
        zmq.DEALER,
        "ROUTER: requesters connect",
        "DEALER: replyers connect with bind=False",
    ),
}
"""Kind -> (frontend socket type, backend socket type, frontend note, backend note)."""

_ids = itertools.count(1)


class Proxy:
    """Both sockets of one proxy, bound at construction; `start` forwards, `stop` ends it.

    Example:
        >>> proxy = Proxy("reqrep", "tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
        >>> proxy.start()
        >>> proxy.stop()
        True
    """

    def __init__(
        self,
        kind: str,
        frontend: str,
        backend: str,
        *,
        hwm: int = DEFAULT_HWM,
        keys: tuple[str, str] = ("--frontend", "--backend"),
    ) -> None:
        """Parse both addresses and bind both sockets.

        Args:
            kind: ``"pubsub"`` or ``"reqrep"``.
            frontend: ``host:port`` (binds ``tcp://*:port``) or a ZMQ endpoint.
            backend: the same, for the other side.
            hwm: pubsub only: the send and receive high-water mark of both sockets.
            keys: what error messages call the frontend and backend addresses: the
                user's own names for them (the options, or an addresses file key).

        Raises:
            ConfigError: an unknown kind, an address that is not one, or a failed bind.
        """
        if kind not in KINDS:
            raise ConfigError(f"unknown proxy kind {kind!r} (known: {', '.join(KINDS)})")
        self.kind = kind
        front_type, back_type, self._front_note, self._back_note = KINDS[kind]
        front_key, back_key = keys
        front_url = parse_endpoint(frontend, front_key, bind=True)
        back_url = parse_endpoint(backend, back_key, bind=True)
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._sockets: list[zmq.Socket[bytes]] = []
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        """What ended the proxy thread, if anything but `stop` did."""
        try:
            self._front = self._bind(front_type, front_url, front_key, hwm)
            self._back = self._bind(back_type, back_url, back_key, hwm)
            control = f"inproc://zmqservice-proxy-{next(_ids)}"
            self._control = self._bind(zmq.PAIR, control, "control", None)
            self._stopper = self.context.socket(zmq.PAIR)
            self._sockets.append(self._stopper)
            self._stopper.setsockopt(zmq.LINGER, 0)
            self._stopper.connect(control)
        except BaseException:
            self._close()
            raise
        self.frontend = last_endpoint(self._front)
        """The endpoint the frontend bound (``tcp://0.0.0.0:0`` shows the port picked)."""
        self.backend = last_endpoint(self._back)
        """The endpoint the backend bound."""

    def _bind(self, kind: int, url: str, key: str, hwm: int | None) -> zmq.Socket[bytes]:
        sock = self.context.socket(kind)
        self._sockets.append(sock)
        sock.setsockopt(zmq.LINGER, 0)
        if hwm is not None and self.kind == "pubsub":
            sock.setsockopt(zmq.SNDHWM, hwm)
            sock.setsockopt(zmq.RCVHWM, hwm)
        try:
            bind(sock, url)
        except zmq.ZMQError as exc:
            raise bind_error(f"{key}: cannot bind {url}", exc) from None
        return sock

    @property
    def summary(self) -> str:
        """One line: the kind, and what is bound where."""
        return (
            f"{self.kind} proxy: frontend {self.frontend} ({self._front_note}), "
            f"backend {self.backend} ({self._back_note})"
        )

    @property
    def running(self) -> bool:
        """Whether the forwarding thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Forward in a daemon thread, which owns both sockets until `stop`."""
        if self._thread is not None:
            raise RuntimeError("a Proxy starts once")
        self._thread = threading.Thread(target=self._forward, name="zmqservice-proxy", daemon=True)
        self._thread.start()

    def _forward(self) -> None:
        try:
            zmq.proxy_steerable(self._front, self._back, None, self._control)
        except BaseException as exc:
            self.error = exc
            LOG.error("%s proxy stopped: %s", self.kind, exc)

    def stop(self, timeout: float = STOP_S) -> bool:
        """End the forwarding, close every socket with linger 0 and terminate the context.

        Call it from the thread that made the proxy.

        Returns:
            False if the forwarding thread did not end within `timeout` seconds; its
            sockets are then left open (closing them under it would crash libzmq).
        """
        if self._thread is not None and self._thread.is_alive():
            self._stopper.send(b"TERMINATE")
            self._thread.join(timeout)
            if self._thread.is_alive():
                LOG.error("%s proxy did not stop within %ss", self.kind, timeout)
                return False
        self._close()
        return True

    def _close(self) -> None:
        for sock in self._sockets:
            sock.close(linger=0)
        self._sockets.clear()
        self.context.term()


def run_proxy(proxy: Proxy, on_ready: Callable[[Proxy], object] | None = None) -> None:
    """Forward until SIGINT or SIGTERM, then stop `proxy` cleanly; blocks.

    Signal handlers are installed only in the main thread (and restored on the way out).

    Raises:
        ZmqServiceError: the proxy ended on an error, or did not stop in time.
    """
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        LOG.info("%s: stopping the %s proxy", signal.Signals(signum).name, proxy.kind)
        stopping.set()

    restore = signals.install(on_signal)
    try:
        proxy.start()
        if on_ready is not None:
            on_ready(proxy)
        while not stopping.wait(WAIT_S) and proxy.running:
            pass
    finally:
        stopped = proxy.stop()
        restore()
    if proxy.error is not None:
        raise ZmqServiceError(f"{proxy.kind} proxy failed: {proxy.error}")
    if not stopped:
        raise ZmqServiceError(f"{proxy.kind} proxy did not stop within {STOP_S}s")
