"""Opening sockets, one function per connection kind, and the limits every socket loop keeps.

The opening functions take any `zmq.Context[S]` and return its socket type `S` (pyzmq's
generics), so the asyncio driver opens `zmq.asyncio` sockets on a shadow context with the
same code and without casts.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from typing import TYPE_CHECKING, Any, TypeVar

import zmq

from .. import codec
from ..connection import hard_limit
from ..errors import ConfigError
from . import curve, recover

if TYPE_CHECKING:
    from ..connection import Connection
    from .addresses import Endpoint

__all__ = [
    "CLOSE_LINGER_MS",
    "GRACE_S",
    "REPLYER_RCVHWM",
    "WAKE_MS",
    "AddressUnavailable",
    "bind",
    "bind_error",
    "discard_rest",
    "last_endpoint",
    "open_inbound",
    "open_publisher",
    "open_requester",
]

CLOSE_LINGER_MS = 500
"""How long close() may spend flushing unsent messages: bounded, so exit never hangs."""
WAKE_MS = 100
"""Longest any of our blocking libzmq calls (poll, recv) lasts. A stop request is seen, and
a signal that landed just before the call started is handled (its Python handler runs), at
the end of the call at the latest."""
GRACE_S = 5.0
"""How long a stop waits for the messages in hand (a handler running, requests in flight in
a concurrent replyer, main mode's serving thread) before it gives up on them."""

REPLYER_RCVHWM = 4
"""Requests a replyer's socket queues per peer connection (at least its ``concurrency``);
libzmq's default of 1,000 let one pipelining peer park 1,000 x the hard limit in memory."""

S = TypeVar("S", bound="zmq.Socket[Any]")


class AddressUnavailable(ConfigError):
    """An address that cannot be bound now (in use, or not on this host yet).

    Unlike the rest of `ConfigError`, the same start may succeed later (the process
    holding the port exits, the interface comes up): `zmqservice run` and `proxy` exit 1,
    which a supervisor restarts, rather than 2 (docs/deploy.md).
    """


_TRANSIENT = frozenset({zmq.EADDRINUSE, zmq.EADDRNOTAVAIL})


def bind_error(message: str, exc: zmq.ZMQError) -> ConfigError:
    """The error for a failed bind or connect: `AddressUnavailable` when it may pass."""
    kind = AddressUnavailable if exc.errno in _TRANSIENT else ConfigError
    return kind(f"{message}: {exc.strerror}")


def last_endpoint(sock: zmq.Socket[Any]) -> str:
    """The endpoint `sock` last bound or connected (``tcp://...:0`` shows the port picked)."""
    endpoint = sock.getsockopt(zmq.LAST_ENDPOINT)
    return endpoint.decode() if isinstance(endpoint, bytes) else str(endpoint)


IPC_PROBE_S = 1.0
"""How long `bind` waits for a connect to an existing ipc path (a listener answers at once)."""


def bind(sock: zmq.Socket[Any], url: str) -> None:
    """``sock.bind(url)``, except over an ``ipc://`` path a live socket listens on.

    libzmq unlinks whatever is at an ipc path before it binds there: a second service would
    take the address over silently and leave the first one running, unreachable. So an
    ipc path is probed first: a live listener makes it EADDRINUSE, as a busy tcp port is,
    and a file that is not a socket is not replaced. A socket file nobody answers on (left
    by a process that died) is taken over as before. Two binds racing between the probe and
    the bind are not told apart.

    Raises:
        zmq.ZMQError: EADDRINUSE, EEXIST, or what the bind itself raised.
    """
    if url.startswith("ipc://"):
        _probe_ipc(url.removeprefix("ipc://"))
    sock.bind(url)


def _probe_ipc(path: str) -> None:
    if path in ("", "*") or path.startswith("@") or not hasattr(socket, "AF_UNIX"):
        return  # a wildcard, or Linux's abstract namespace (libzmq refuses those itself)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # nothing there (or nothing we may look at: the bind will say)
    if not stat.S_ISSOCK(mode):
        raise zmq.ZMQError(errno.EEXIST, "a file that is not a socket is there; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(IPC_PROBE_S)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return  # a stale socket file: nobody listens
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK) and not isinstance(exc, TimeoutError):
            return  # e.g. no permission: the bind reports it
    finally:
        probe.close()
    raise zmq.ZMQError(errno.EADDRINUSE, "Address already in use")


def discard_rest(sock: zmq.Socket[Any]) -> int:
    """Read and drop the rest of the message in hand (a sync socket); return its frame count.

    It never waits: libzmq hands a message over once all its frames are in. Reading them as
    frames without copying costs ~1 µs each (1,000,000 frames: ~1 s; as a list of bytes,
    ~4 s).
    """
    count, more, recv = 0, True, sock.recv
    while more:
        more = recv(copy=False).more
        count += 1
    return count


def _attach(sock: S, conn: Connection, endpoint: Endpoint) -> S:
    try:
        curve.configure(sock, endpoint)  # CURVE options must precede bind/connect
        if endpoint.bind:
            bind(sock, endpoint.url)
        else:
            sock.connect(endpoint.url)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        verb = "bind" if endpoint.bind else "connect"
        raise bind_error(f"cannot {verb} {conn.label} to {endpoint.url}", exc) from None
    return sock


def open_inbound(
    context: zmq.Context[S],
    conn: Connection,
    endpoint: Endpoint,
    max_message_size: int | None = None,
) -> S:
    """Open the REP (replyer) or SUB (subscriber) socket of an in-connection.

    A replyer with ``concurrency`` > 1 gets a ROUTER socket instead (see `pool`). With
    `max_message_size`, libzmq drops the connection of a peer that sends a message
    `HARD_LIMIT_FACTOR` times bigger (``ZMQ_MAXMSGSIZE``) before it is read into memory.
    A replyer queues `REPLYER_RCVHWM` requests per peer (a subscriber its ``hwm``): what one
    connection can make it hold is about (that + 2) x the hard limit, plus kernel buffers.
    A socket that connects is watched (`recover.watch`): `recover.unwatch` it before closing.
    """
    if conn.kind == "replyer":
        sock = context.socket(zmq.REP if conn.concurrency == 1 else zmq.ROUTER)
        # Requests queued per peer connection (a REQ peer has one in flight; a pipelining
        # peer waits in TCP beyond this): each may hold up to the hard limit in memory.
        sock.setsockopt(zmq.RCVHWM, max(REPLYER_RCVHWM, conn.concurrency))
    else:
        sock = context.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, conn.hwm)
        sock.setsockopt(zmq.SUBSCRIBE, codec.topic_prefix(conn.topic))
    sock.setsockopt(zmq.LINGER, CLOSE_LINGER_MS)
    sock.setsockopt(zmq.MAXMSGSIZE, hard_limit(max_message_size))
    if endpoint.bind:
        return _attach(sock, conn, endpoint)
    recover.watch(sock, endpoint.url, conn.label)  # libzmq never retries after a protocol error
    try:
        return _attach(sock, conn, endpoint)
    except ConfigError:
        recover.unwatch(sock)
        raise


def open_requester(context: zmq.Context[S], conn: Connection, endpoint: Endpoint) -> S:
    """Open a requester's DEALER socket (REQ's wire protocol, see `requesters`)."""
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    return _attach(sock, conn, endpoint)


def open_publisher(
    context: zmq.Context[zmq.Socket[bytes]], conn: Connection, endpoint: Endpoint
) -> zmq.Socket[bytes]:
    """Open a publisher's PUB socket (binds, or connects to a forwarder with ``xpub=True``)."""
    sock = context.socket(zmq.PUB)
    sock.setsockopt(zmq.SNDHWM, conn.hwm)
    sock.setsockopt(zmq.LINGER, CLOSE_LINGER_MS)
    return _attach(sock, conn, endpoint)
