"""Thin pyzmq wrappers, one per connection kind, and the socket `Outbound` for `to_send`."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import zmq

from .errors import ConfigError, RequestTimeout

if TYPE_CHECKING:
    from .app import Connection
    from .config import Endpoint

__all__ = ["SocketOutbound", "open_inbound"]

LOG = logging.getLogger("zmqservice.sockets")
CLOSE_LINGER_MS = 500
"""How long close() may spend flushing unsent messages: bounded, so exit never hangs."""


def _attach(sock: zmq.Socket[bytes], conn: Connection, endpoint: Endpoint) -> None:
    try:
        if endpoint.bind:
            sock.bind(endpoint.url)
        else:
            sock.connect(endpoint.url)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        verb = "bind" if endpoint.bind else "connect"
        raise ConfigError(f"cannot {verb} {conn.label} to {endpoint.url}: {exc.strerror}") from None


def open_inbound(
    context: zmq.Context[zmq.Socket[bytes]], conn: Connection, endpoint: Endpoint
) -> zmq.Socket[bytes]:
    """Open the REP (replyer) or SUB (subscriber) socket of an in-connection."""
    if conn.kind == "replyer":
        sock = context.socket(zmq.REP)
    else:
        sock = context.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, conn.hwm)
        from .codec import topic_prefix

        sock.setsockopt(zmq.SUBSCRIBE, topic_prefix(conn.topic))
    sock.setsockopt(zmq.LINGER, CLOSE_LINGER_MS)
    _attach(sock, conn, endpoint)
    return sock


class SocketOutbound:
    """`to_send` over ZMQ: a REQ socket per requester per thread, one PUB per publisher.

    REQ sockets are made lazily in the thread that uses them, so a requester can be called
    from several threads; PUB sockets are shared behind a lock.
    """

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        connections: list[Connection],
        endpoints: dict[str, Endpoint],
    ) -> None:
        self._context = context
        self._connections = connections
        self._endpoints = endpoints
        self._local = threading.local()
        self._publishers: dict[str, tuple[zmq.Socket[bytes], threading.Lock]] = {}
        self._requesters: list[zmq.Socket[bytes]] = []
        self._lock = threading.Lock()
        self.bound: dict[str, str] = {}
        """Publisher name -> the endpoint it actually bound (``tcp://...:0`` resolved)."""

    def open(self) -> None:
        """Bind (or connect) every publisher now, so subscribers can find it."""
        for conn in self._connections:
            if conn.kind == "publisher":
                sock = self._context.socket(zmq.PUB)
                sock.setsockopt(zmq.SNDHWM, conn.hwm)
                sock.setsockopt(zmq.LINGER, CLOSE_LINGER_MS)
                _attach(sock, conn, self._endpoints[conn.name])
                self._publishers[conn.name] = (sock, threading.Lock())
                self.bound[conn.name] = sock.getsockopt(zmq.LAST_ENDPOINT).decode()  # type: ignore[union-attr]

    def _new_requester(self, conn: Connection) -> zmq.Socket[bytes]:
        sock = self._context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        _attach(sock, conn, self._endpoints[conn.name])
        with self._lock:
            self._requesters.append(sock)
        self._local.__dict__[conn.name] = sock
        return sock

    def _discard(self, conn: Connection, sock: zmq.Socket[bytes]) -> None:
        sock.close(linger=0)
        with self._lock:
            self._requesters.remove(sock)
        self._local.__dict__.pop(conn.name, None)

    def request(self, conn: Connection, frame: bytes) -> bytes:
        """Send one request and wait for its reply (Lazy Pirate when `timeout` is set)."""
        sock = self._local.__dict__.get(conn.name) or self._new_requester(conn)
        if conn.timeout is None:
            sock.send(frame)
            return sock.recv()
        timeout_ms = int(conn.timeout * 1000)
        for _ in range(conn.retries + 1):
            sock.send(frame)
            if sock.poll(timeout_ms, zmq.POLLIN):
                return sock.recv()
            # A REQ socket that missed its reply is stuck: throw it away, open a fresh one.
            self._discard(conn, sock)
            sock = self._new_requester(conn)
            LOG.warning("%s: no reply within %ss", conn.label, conn.timeout)
        raise RequestTimeout(
            f"{conn.label}: no reply from {self._endpoints[conn.name].url} within "
            f"{conn.timeout}s after {conn.retries + 1} tries"
        )

    def publish(self, conn: Connection, frame: bytes) -> None:
        """Publish one frame; PUB never blocks (it drops at the high-water mark)."""
        sock, lock = self._publishers[conn.name]
        with lock:
            sock.send(frame)

    def close(self) -> None:
        """Close every socket this outbound made, with a bounded linger."""
        with self._lock:
            requesters, self._requesters = self._requesters, []
        for sock in requesters:
            sock.close(linger=0)
        for sock, _ in self._publishers.values():
            sock.close(linger=CLOSE_LINGER_MS)
        self._publishers.clear()
