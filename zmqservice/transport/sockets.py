"""Thin pyzmq wrappers, one per connection kind, and the socket `Outbound` for `to_send`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

from .. import codec
from ..connection import hard_limit
from ..errors import ConfigError, RequestTimeout
from ..sending import DEFAULT, Default, call_target
from . import curve

if TYPE_CHECKING:
    from ..connection import Connection
    from .addresses import Endpoint

__all__ = ["SocketOutbound", "open_inbound", "open_requester", "timed_out"]

LOG = logging.getLogger("zmqservice.sockets")
CLOSE_LINGER_MS = 500
"""How long close() may spend flushing unsent messages: bounded, so exit never hangs."""
WAKE_MS = 100
"""Longest a requester blocks in one libzmq call. A signal that lands just before the call
starts does not interrupt it, so the wait goes in slices and the signal is handled (its
Python handler runs) at the end of the slice at the latest."""
_MORE = zmq.SNDMORE


def _attach(sock: zmq.Socket[bytes], conn: Connection, endpoint: Endpoint) -> None:
    try:
        curve.configure(sock, endpoint)  # CURVE options must precede bind/connect
        if endpoint.bind:
            sock.bind(endpoint.url)
        else:
            sock.connect(endpoint.url)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        verb = "bind" if endpoint.bind else "connect"
        raise ConfigError(f"cannot {verb} {conn.label} to {endpoint.url}: {exc.strerror}") from None


def open_inbound(
    context: zmq.Context[zmq.Socket[bytes]],
    conn: Connection,
    endpoint: Endpoint,
    max_message_size: int | None = None,
) -> zmq.Socket[bytes]:
    """Open the REP (replyer) or SUB (subscriber) socket of an in-connection.

    A replyer with ``concurrency`` > 1 gets a ROUTER socket instead (see `concurrency`).
    With `max_message_size`, libzmq drops the connection of a peer that sends a message
    `HARD_LIMIT_FACTOR` times bigger (``ZMQ_MAXMSGSIZE``) before it is read into memory.
    """
    if conn.kind == "replyer":
        sock = context.socket(zmq.REP if conn.concurrency == 1 else zmq.ROUTER)
    else:
        sock = context.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, conn.hwm)
        sock.setsockopt(zmq.SUBSCRIBE, codec.topic_prefix(conn.topic))
    sock.setsockopt(zmq.LINGER, CLOSE_LINGER_MS)
    sock.setsockopt(zmq.MAXMSGSIZE, hard_limit(max_message_size))
    _attach(sock, conn, endpoint)
    return sock


def open_requester(
    context: zmq.Context[zmq.Socket[bytes]], conn: Connection, endpoint: Endpoint
) -> zmq.Socket[bytes]:
    """Open a requester's DEALER socket (REQ's wire protocol, see `SocketOutbound`)."""
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    _attach(sock, conn, endpoint)
    return sock


def timed_out(
    conn: Connection, endpoint: Endpoint, timeout: float | None, retries: int
) -> RequestTimeout:
    """The error a requester raises when its last try got no reply."""
    return RequestTimeout(
        f"{conn.label}: no reply from {endpoint.url} within {timeout}s after {retries + 1} tries"
    )


class _Requester:
    """One thread's socket for one requester, and the receive timeout it is set to."""

    __slots__ = ("sock", "timeout_ms")

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        self.sock = sock
        self.timeout_ms = -1


class SocketOutbound:
    """`to_send` over ZMQ: a socket per requester per thread, one PUB per publisher.

    A requester is a DEALER socket speaking REQ's wire protocol (an empty delimiter frame,
    then the request), so peers cannot tell it from REQ; unlike REQ it can read past a
    reply that answers another request. It is made lazily in the thread that uses it, so a
    requester can be called from several threads; the dispatcher serializes each PUB.
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
        self._publishers: dict[str, zmq.Socket[bytes]] = {}
        self._requesters: dict[zmq.Socket[bytes], threading.Thread] = {}
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
                self._publishers[conn.name] = sock
                self.bound[conn.name] = sock.getsockopt(zmq.LAST_ENDPOINT).decode()  # type: ignore[union-attr]

    # -- requesters -------------------------------------------------------------------------

    def _new_requester(self, conn: Connection) -> _Requester:
        sock = open_requester(self._context, conn, self._endpoints[conn.name])
        with self._lock:
            # A thread that has ended uses its sockets no more: close them here, so a pool
            # that replaces its threads does not pile up sockets until the app stops.
            for old in [s for s, thread in self._requesters.items() if not thread.is_alive()]:
                del self._requesters[old]
                old.close(linger=0)
            self._requesters[sock] = threading.current_thread()
        requester = self._local.__dict__[conn.name] = _Requester(sock)
        return requester

    def _discard(self, requester: _Requester) -> None:
        # linger 0 drops the request if it is still queued: a replyer that comes back
        # later never runs a call its caller has given up on.
        with self._lock:
            self._requesters.pop(requester.sock, None)
        requester.sock.close(linger=0)

    def request(
        self,
        conn: Connection,
        frame: bytes,
        workflow_id: str = "",
        timeout: float | Default | None = DEFAULT,
        retries: int | Default = DEFAULT,
    ) -> bytes:
        """Send one request and return the reply that answers it (Lazy Pirate on a miss).

        Each try waits up to `timeout` seconds (None: for ever); after a miss the socket is
        closed, with the request if it is still queued, and a fresh one sends it again, up
        to `retries` more times. A reply naming another `workflow_id` is discarded and the
        wait goes on.

        Raises:
            RequestTimeout: no reply after the last try; the next call starts afresh.
        """
        if timeout is DEFAULT:
            timeout = conn.timeout
        if retries is DEFAULT:
            retries = conn.retries
        requester = self._local.__dict__.get(conn.name) or self._new_requester(conn)
        timeout_ms = -1 if timeout is None else max(1, round(timeout * 1000))
        for _ in range(retries + 1):
            reply = self._try(conn, requester, frame, workflow_id, timeout_ms)
            if reply is not None:
                return reply
            self._discard(requester)
            requester = self._new_requester(conn)
            LOG.warning("%s: no reply within %ss", conn.label, timeout)
        raise timed_out(conn, self._endpoints[conn.name], timeout, retries)

    def _try(
        self,
        conn: Connection,
        requester: _Requester,
        frame: bytes,
        workflow_id: str,
        timeout_ms: int,
    ) -> bytes | None:
        """Send `frame` once; the reply that answers it, or None after `timeout_ms`."""
        sock = requester.sock
        slice_ms = WAKE_MS if timeout_ms < 0 else min(timeout_ms, WAKE_MS)
        if requester.timeout_ms != slice_ms:  # set only when it changes: a syscall
            sock.setsockopt(zmq.RCVTIMEO, slice_ms)
            requester.timeout_ms = slice_ms
        started = time.monotonic()
        sock.send(b"", _MORE)
        sock.send(frame)
        while True:
            try:
                delimiter = sock.recv()
            except zmq.Again:  # a slice is over: is the try?
                if not self._wait_more(requester, started, timeout_ms):
                    return None
                continue
            reply = None
            if not delimiter:  # a REP peer answers [b"", reply], both frames at once
                try:  # noqa: SIM105 - contextlib.suppress costs more on this path
                    reply = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    pass
            if reply is not None and (not workflow_id or codec.is_reply_to(reply, workflow_id)):
                return reply
            if reply is None:  # not REP's envelope: skip the whole message
                while sock.getsockopt(zmq.RCVMORE):
                    sock.recv()
            LOG.warning("%s: discarded a reply that answers another request", conn.label)
            if not self._wait_more(requester, started, timeout_ms):
                return None

    @staticmethod
    def _wait_more(requester: _Requester, started: float, timeout_ms: int) -> bool:
        """Whether the try that started at `started` has time left; if so, slice it."""
        if timeout_ms < 0:
            return True
        left_ms = timeout_ms - round((time.monotonic() - started) * 1000)
        if left_ms <= 0:
            return False
        slice_ms = min(left_ms, WAKE_MS)
        if requester.timeout_ms != slice_ms:
            requester.sock.setsockopt(zmq.RCVTIMEO, slice_ms)
            requester.timeout_ms = slice_ms
        return True

    # -- external targets ---------------------------------------------------------------------

    def call(self, conn: Connection, target: Callable[..., Any], args: Any) -> Any:
        """Call an external target in this process; no socket is involved."""
        return call_target(target, args)

    # -- publishers -------------------------------------------------------------------------

    def publish(self, conn: Connection, frame: bytes) -> None:
        """Publish one frame; PUB never blocks (it drops at the high-water mark).

        Not locked here: the dispatcher numbers and sends each publisher's frames under a
        lock of its own, which also keeps the socket to one thread at a time.
        """
        self._publishers[conn.name].send(frame)

    def close(self) -> None:
        """Close every socket this outbound made, with a bounded linger."""
        with self._lock:
            requesters = list(self._requesters)
            self._requesters.clear()
        for sock in requesters:
            sock.close(linger=0)
        for sock in self._publishers.values():
            sock.close(linger=CLOSE_LINGER_MS)
        self._publishers.clear()
