"""In-sockets that connect, reconnected when libzmq gives up on them.

libzmq ends a connection whose peer breaks the protocol (a frame over ``ZMQ_MAXMSGSIZE``,
a failed handshake ...) and, when the socket is the side that connected, never connects
again: ``session_base_t::engine_error`` reconnects after a connection error but terminates
the session after a protocol error (libzmq 4.3.5, and master). A subscriber that connects,
or a replyer with ``bind=False`` behind a proxy, would then hear nothing for good.
``ZMQ_RECONNECT_STOP`` (a draft option) can only stop reconnects, not add one.

A socket monitor tells the two apart: after a connection error, libzmq's own retry
(``EVENT_CONNECT_RETRIED``) follows ``EVENT_DISCONNECTED`` at once; after a protocol
error nothing does. `Reconnector` watches for a disconnect that nothing follows within
`SETTLE_S` and connects again by hand (disconnect and connect the same endpoint), backing
off while it keeps happening, with a warning each time. Events cost nothing per message;
the serving loops call `Reconnector.check` when a socket is idle (or once per poll round).

The monitor must be on before the socket connects, so `sockets.open_inbound` calls
`watch`; the serving loops find it with `watched`; `RunningApp.close` calls `unwatch`
before it closes each socket (an open monitor socket would keep the context from ending).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import struct
import time
from typing import Any, cast

import zmq

__all__ = ["BACKOFF_S", "SETTLE_S", "STABLE_S", "Reconnector", "unwatch", "watch", "watched"]

LOG = logging.getLogger("zmqservice.runtime")

SETTLE_S = 0.25
"""How long a disconnect may go without libzmq's own retry before we reconnect (libzmq
reports its retry within a millisecond)."""
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""The least wait after the 1st, 2nd ... reconnect in a row before the next one (the last
repeats): a peer that breaks every connection costs a warning every 30 s at most."""
STABLE_S = 10.0
"""A connection that lasted this long ends a row of reconnects: the next one is the 1st."""

EVENTS = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_CONNECT_DELAYED
    | zmq.EVENT_CONNECT_RETRIED
    | zmq.EVENT_DISCONNECTED
)
_ids = itertools.count()
_watched: dict[zmq.Socket[Any], Reconnector] = {}


class Reconnector:
    """Watch one connecting socket; connect it again when libzmq has given up on it.

    Used by the one thread that owns the socket (`check`), except `close`.
    """

    def __init__(self, sock: zmq.Socket[Any], url: str, label: str) -> None:
        self.sock = sock
        self.url = url
        self.label = label
        self.reconnects = 0
        """How many times this socket was connected again by hand."""
        address = f"inproc://zmqservice-monitor-{next(_ids)}"
        sock.monitor(address, EVENTS)
        # A plain socket on the same context, whatever kind `sock` is (asyncio or not).
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.shadow(sock.context.underlying)
        self.monitor = context.socket(zmq.PAIR)
        self.monitor.setsockopt(zmq.LINGER, 0)
        self.monitor.connect(address)
        self._dropped_at: float | None = None
        self._up_at = -STABLE_S
        self._in_a_row = 0
        self._not_before = 0.0

    def check(self) -> None:
        """Read the monitor's events; reconnect if libzmq gave up on the connection."""
        monitor, now = self.monitor, time.monotonic()
        while cast(int, monitor.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            # frame 1: event (uint16) and value (uint32); frame 2: the endpoint. Not
            # zmq.utils.monitor.parse_monitor_message: that module imports asyncio.
            (event,) = struct.unpack_from("=H", monitor.recv_multipart()[0])
            if event == zmq.EVENT_DISCONNECTED:
                self._dropped_at = now
            else:  # connected, or libzmq (re)connecting by itself
                self._dropped_at = None
                if event == zmq.EVENT_CONNECTED:
                    self._up_at = now
        dropped = self._dropped_at
        if dropped is not None and now - dropped >= SETTLE_S and now >= self._not_before:
            self._reconnect(now, dropped)

    def _reconnect(self, now: float, dropped: float) -> None:
        lasted = dropped - self._up_at
        self._in_a_row = 1 if lasted >= STABLE_S else self._in_a_row + 1
        wait = BACKOFF_S[min(self._in_a_row, len(BACKOFF_S)) - 1]
        self._dropped_at = None
        self._not_before = now + wait
        self.reconnects += 1
        with contextlib.suppress(zmq.ZMQError):  # libzmq may have forgotten the endpoint
            self.sock.disconnect(self.url)
        try:
            self.sock.connect(self.url)
        except zmq.ZMQError as exc:
            LOG.error("%s: cannot connect again to %s: %s", self.label, self.url, exc.strerror)
            return
        LOG.warning(
            "%s: libzmq dropped the connection to %s after a protocol error (a frame over "
            "the hard size limit of %s bytes, or a failed handshake) and does not retry "
            "it: connected again (%d in a row; the next no sooner than %gs)",
            self.label,
            self.url,
            self.sock.getsockopt(zmq.MAXMSGSIZE),
            self._in_a_row,
            wait,
        )

    def close(self) -> None:
        """Close the monitor's socket (before the watched one closes, or after)."""
        self.monitor.close(linger=0)


def watch(sock: zmq.Socket[Any], url: str, label: str) -> Reconnector:
    """Watch `sock`, which is about to connect to `url` (call it before connecting)."""
    reconnector = _watched[sock] = Reconnector(sock, url, label)
    return reconnector


def watched(sock: zmq.Socket[Any]) -> Reconnector | None:
    """The `Reconnector` of `sock`, if it connects."""
    return _watched.get(sock)


def unwatch(sock: zmq.Socket[Any]) -> None:
    """Stop watching `sock` and close its monitor's socket; nothing if it was not watched."""
    reconnector = _watched.pop(sock, None)
    if reconnector is not None:
        reconnector.close()
