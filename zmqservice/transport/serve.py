"""The serving loops: a fast path for one in-connection, one poller loop for the rest.

Every loop answers a multipart request with `replies.multipart_error` and checks for a
stop after each message, so a stop waits for the message in hand and no longer.

- `serve_one`: a single REP or SUB socket, no ``min_wait``: a blocking recv bounded by
  RCVTIMEO, no poller at all (the hot path the benchmark measures).
- `serve_polled`: several sockets, ``min_wait``, or replyers with ``concurrency`` > 1
  (`pool.ConcurrentReplyer`): one `zmq.Poller` over all of them.
- `serve_async`: one task per in-connection on the asyncio runtime.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import zmq

from ..replies import multipart_error
from .pool import ConcurrentReplyer, drain
from .recover import watched
from .sockets import WAKE_MS, discard_rest

if TYPE_CHECKING:
    import zmq.asyncio

    from ..connection import Connection
    from ..dispatch import Dispatcher

__all__ = [
    "DRAIN_LIMIT",
    "Entry",
    "Handlers",
    "entries",
    "serve_async",
    "serve_one",
    "serve_polled",
]

DRAIN_LIMIT = 1000
"""Messages taken from one socket per poll round before the others get a turn."""

Entry = tuple[bool, Callable[[bytes], Any], str]
"""Per plain inbound socket: (is a replyer, its frame handler, its label)."""
Handlers = dict[zmq.Socket[bytes], Entry]


def entries(
    dispatcher: Dispatcher,
    context: zmq.Context[zmq.Socket[bytes]],
    opened: Sequence[tuple[zmq.Socket[bytes], Connection]],
    pools: list[ConcurrentReplyer],
) -> Handlers:
    """Pair each opened plain in-socket with its frame handler.

    A replyer with ``concurrency`` > 1 becomes a `ConcurrentReplyer`, appended to `pools`
    as soon as it exists (it owns sockets the caller must close).
    """
    handlers: Handlers = {}
    for sock, conn in opened:
        if conn.kind == "replyer" and conn.concurrency > 1:
            handle = dispatcher.replier(conn)
            pools.append(ConcurrentReplyer(context, sock, handle, conn.label, conn.concurrency))
        elif conn.kind == "replyer":
            handlers[sock] = (True, dispatcher.replier(conn), conn.label)
        else:
            handlers[sock] = (False, dispatcher.receiver(conn), conn.label)
    return handlers


def refuse_multipart(sock: zmq.Socket[bytes], label: str) -> bytes:
    """A request is one frame: drop the rest of a multipart one; the error reply to send."""
    return multipart_error(label, 1 + discard_rest(sock))


def _nothing() -> None:
    pass


def serve_one(sock: zmq.Socket[bytes], entry: Entry, stopping: threading.Event) -> None:
    """One in-connection: a blocking recv bounded by RCVTIMEO needs no poller at all.

    A socket that connects is checked (`recover`) whenever a wait for a message times out.
    """
    replies, handle, label = entry
    sock.setsockopt(zmq.RCVTIMEO, WAKE_MS)
    stopped, recv, send, again = stopping.is_set, sock.recv, sock.send, zmq.Again
    more, rcvmore = sock.getsockopt, zmq.RCVMORE
    watch = watched(sock)
    idle = _nothing if watch is None else watch.check
    while not stopped():
        try:
            frame = recv()
        except again:
            idle()
            continue
        if replies:
            # A request is one frame; a multipart one never reaches the handler.
            send(refuse_multipart(sock, label) if more(rcvmore) else handle(frame))
        else:
            handle(frame)


def serve_polled(
    plain: Handlers,
    pools: Sequence[ConcurrentReplyer],
    stopping: threading.Event,
    min_wait: float = 0.0,
) -> None:
    """Serve plain sockets and concurrent replyers from one poller until `stopping`.

    Each ready plain socket is drained (up to `DRAIN_LIMIT` messages) per round; sockets
    that connect are checked (`recover`) once per round. Once stopped, requests in flight
    in `pools` get their bounded drain; the caller closes the sockets.
    """
    by_router = {r.router: r for r in pools}
    by_pull = {r.pull: r for r in pools}
    watches = [w for s in [*plain, *by_router] if (w := watched(s)) is not None]
    poller = zmq.Poller()
    for sock in [*plain, *by_router, *by_pull]:
        poller.register(sock, zmq.POLLIN)
    stopped, poll = stopping.is_set, poller.poll
    while not stopped():
        for sock, _ in poll(WAKE_MS):
            entry = plain.get(sock)
            if entry is not None:
                if _take(sock, entry, stopped):
                    break
                continue
            replyer = by_router.get(sock) or by_pull[sock]
            replyer.give()
            replyer.take()
            # Back-pressure: a full replyer's ROUTER leaves the poller until a slot frees.
            poller.register(replyer.router, 0 if replyer.full else zmq.POLLIN)
        for watch in watches:
            watch.check()
        if min_wait and not stopped():
            time.sleep(min_wait)
    drain(pools)


def _take(sock: zmq.Socket[bytes], entry: Entry, stopped: Callable[[], bool]) -> bool:
    """Handle what a ready socket holds, up to `DRAIN_LIMIT`; True once a stop is asked."""
    replies, handle, label = entry
    recv, send = sock.recv, sock.send
    option: Callable[[int], Any] = sock.getsockopt  # EVENTS and RCVMORE give ints
    noblock, events, pollin, rcvmore = zmq.NOBLOCK, zmq.EVENTS, zmq.POLLIN, zmq.RCVMORE
    taken = 0
    # Checking EVENTS is far cheaper than letting recv(NOBLOCK) raise zmq.Again.
    while taken < DRAIN_LIMIT and option(events) & pollin:
        frame = recv(noblock)
        if replies:
            send(refuse_multipart(sock, label) if option(rcvmore) else handle(frame))
        else:
            handle(frame)
        taken += 1
        if stopped():
            return True
    return False


async def serve_async(
    sock: zmq.asyncio.Socket,
    conn: Connection,
    dispatcher: Dispatcher,
    stopping: threading.Event,
) -> None:
    """One in-connection on asyncio: poll (bounded, so a stop is seen), take one, handle it.

    A socket that connects is checked (`recover`) whenever a poll times out.
    """
    stopped = stopping.is_set
    watch = watched(sock)
    idle = _nothing if watch is None else watch.check
    if conn.kind == "replyer":
        reply, label = dispatcher.replier_async(conn), conn.label
        plain: zmq.Socket[bytes] = zmq.Socket.shadow(sock.underlying)  # to drop frames
        while not stopped():
            if await sock.poll(WAKE_MS):
                frame = await sock.recv()
                if sock.getsockopt(zmq.RCVMORE):
                    await sock.send(refuse_multipart(plain, label))
                else:
                    await sock.send(await reply(frame))
            else:
                idle()
    else:
        receive = dispatcher.receiver_async(conn)
        while not stopped():
            if await sock.poll(WAKE_MS):
                await receive(await sock.recv())
            else:
                idle()
