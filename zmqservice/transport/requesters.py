"""Lazy Pirate requesters: one reply check, one deadline, a sync and an async loop.

A requester is a DEALER socket speaking REQ's wire protocol (an empty delimiter frame,
then the request), so peers cannot tell it from REQ; unlike REQ it can read past a reply
that answers another request (`answers`). A try that gets no reply in time closes its
socket with linger 0, dropping the request if it is still queued, and the next try opens a
fresh one (the ZeroMQ guide's Lazy Pirate client). Three drivers share this:

- `SocketOutbound`: ``to_send`` in the threaded runtime and in sync handlers, a DEALER per
  requester per thread, waiting in `WAKE_MS` slices so signals are handled;
- `AsyncRequesters`: ``await to_send(...)`` on the asyncio runtime;
- `oneshot.request_once`: ``zmqservice call`` / ``describe``, one try on a private context.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import zmq

from .. import peek
from ..errors import RequestTimeout
from ..sending import DEFAULT, Default, call_target
from .sockets import CLOSE_LINGER_MS, WAKE_MS, last_endpoint, open_publisher, open_requester

if TYPE_CHECKING:
    import asyncio

    import zmq.asyncio

    from ..connection import Connection
    from .addresses import Endpoint

__all__ = [
    "AsyncRequesters",
    "Requester",
    "SocketOutbound",
    "answers",
    "left_ms",
    "timed_out",
    "to_ms",
    "unwrap",
]

LOG = logging.getLogger("zmqservice.sockets")
"""The sync requesters' lines (they lived in `sockets` before)."""
ASYNC_LOG = logging.getLogger("zmqservice.aio")
_MORE_NOW = zmq.SNDMORE | zmq.NOBLOCK

# -- the shared core: deadline and reply check ----------------------------------------------


def to_ms(timeout: float | None) -> int:
    """A try's timeout in whole milliseconds (at least 1); -1 for none (wait for ever)."""
    return -1 if timeout is None else max(1, round(timeout * 1000))


def left_ms(started: float, timeout_ms: int) -> int | None:
    """Milliseconds left of a try of `timeout_ms` begun at `started` (`time.monotonic`).

    None when the try has no timeout; 0 or less when it is over.
    """
    if timeout_ms < 0:
        return None
    return timeout_ms - round((time.monotonic() - started) * 1000)


def answers(reply: bytes, workflow_id: str) -> bool:
    """Whether `reply` answers the request sent with `workflow_id` ("": any reply does)."""
    return not workflow_id or peek.is_reply_to(reply, workflow_id)


def unwrap(parts: Sequence[bytes]) -> bytes | None:
    """The reply in REP's envelope (an empty delimiter, then exactly one frame), else None."""
    return parts[1] if len(parts) == 2 and not parts[0] else None


def timed_out(
    conn: Connection, endpoint: Endpoint, timeout: float | None, retries: int
) -> RequestTimeout:
    """The error a requester raises when its last try got no reply."""
    return RequestTimeout(
        f"{conn.label}: no reply from {endpoint.url} within {timeout}s after {retries + 1} tries"
    )


def _discarded(log: logging.Logger, label: str) -> None:
    log.warning("%s: discarded a reply that answers another request", label)


# -- the sync loop --------------------------------------------------------------------------


class Requester:
    """A DEALER socket of one requester in one thread, its RCVTIMEO, its name in logs."""

    __slots__ = ("label", "sock", "timeout_ms")

    def __init__(self, sock: zmq.Socket[bytes], label: str) -> None:
        self.sock = sock
        self.label = label
        self.timeout_ms = -1

    def ask(self, frame: bytes, workflow_id: str, timeout_ms: int) -> bytes | None:
        """Send `frame` once; the reply that answers it, or None after `timeout_ms`.

        Per message: two sends, a blocking recv of the delimiter and a NOBLOCK recv of the
        reply (REP sends both frames at once); RCVTIMEO is set only when it changes. The
        envelope is read frame by frame, not with RCVMORE checks: a third frame after the
        reply would start the next read and be skipped there as not an envelope. A reply is
        never empty, so an empty one means the "delimiter" was a lone empty frame: only
        then is RCVMORE asked whether this empty frame is the real delimiter.
        """
        sock = self.sock
        slice_ms = WAKE_MS if timeout_ms < 0 else min(timeout_ms, WAKE_MS)
        if self.timeout_ms != slice_ms:  # set only when it changes: a syscall
            sock.setsockopt(zmq.RCVTIMEO, slice_ms)
            self.timeout_ms = slice_ms
        started = time.monotonic()
        try:
            sock.send(b"", _MORE_NOW)
        except zmq.Again:  # no peer to queue for yet: wait for one, within the try
            if not self._send_when_writable(started, timeout_ms):
                return None
        sock.send(frame)  # the rest of a message follows its first frame: never blocks
        while True:
            try:
                delimiter = sock.recv()
            except zmq.Again:  # a slice is over: is the try?
                if not self._wait_more(started, timeout_ms):
                    return None
                continue
            reply = None
            if not delimiter:  # a REP peer answers [b"", reply], both frames at once
                try:
                    reply = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    pass
                else:
                    if not reply:  # a lone empty frame came first: is this REP's delimiter?
                        reply = sock.recv(zmq.NOBLOCK) if sock.getsockopt(zmq.RCVMORE) else None
            if reply is not None and answers(reply, workflow_id):
                return reply
            if reply is None:  # not REP's envelope: skip the whole message
                while sock.getsockopt(zmq.RCVMORE):
                    sock.recv()
            _discarded(LOG, self.label)
            if not self._wait_more(started, timeout_ms):
                return None

    def _send_when_writable(self, started: float, timeout_ms: int) -> bool:
        """Send the delimiter once a peer can take it; False when the try is over first.

        A DEALER has nowhere to queue a message while its connection is not up, or after a
        refused handshake dropped it: a plain send would block past any timeout.
        """
        sock = self.sock
        while True:
            left = left_ms(started, timeout_ms)
            if left is not None and left <= 0:
                return False
            sock.poll(WAKE_MS if left is None else min(left, WAKE_MS), zmq.POLLOUT)
            try:
                sock.send(b"", _MORE_NOW)
                return True
            except zmq.Again:
                continue

    def _wait_more(self, started: float, timeout_ms: int) -> bool:
        """Whether the try begun at `started` has time left; if so, slice what is left."""
        left = left_ms(started, timeout_ms)
        if left is None:
            return True
        if left <= 0:
            return False
        slice_ms = min(left, WAKE_MS)
        if self.timeout_ms != slice_ms:
            self.sock.setsockopt(zmq.RCVTIMEO, slice_ms)
            self.timeout_ms = slice_ms
        return True


class SocketOutbound:
    """`to_send` over ZMQ: the sync `Outbound`, a DEALER per requester per thread, one PUB
    per publisher.

    A requester's socket is made lazily in the thread that uses it, so a requester can be
    called from several threads; the dispatcher serializes each PUB.
    """

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        connections: list[Connection],
        endpoints: Mapping[str, Endpoint],
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
                sock = open_publisher(self._context, conn, self._endpoints[conn.name])
                self._publishers[conn.name] = sock
                self.bound[conn.name] = last_endpoint(sock)

    # -- requesters -------------------------------------------------------------------------

    def _new_requester(self, conn: Connection) -> Requester:
        sock = open_requester(self._context, conn, self._endpoints[conn.name])
        with self._lock:
            # A thread that has ended uses its sockets no more: close them here, so a pool
            # that replaces its threads does not pile up sockets until the app stops.
            for old in [s for s, thread in self._requesters.items() if not thread.is_alive()]:
                del self._requesters[old]
                old.close(linger=0)
            self._requesters[sock] = threading.current_thread()
        requester = self._local.__dict__[conn.name] = Requester(sock, conn.label)
        return requester

    def _discard(self, requester: Requester) -> None:
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
        timeout_ms = to_ms(timeout)
        for _ in range(retries + 1):
            try:
                reply = requester.ask(frame, workflow_id, timeout_ms)
            except zmq.ContextTerminated:  # a forced stop: close it here, in its own thread
                self._local.__dict__.pop(conn.name, None)
                self._discard(requester)
                raise
            if reply is not None:
                return reply
            self._discard(requester)
            requester = self._new_requester(conn)
            LOG.warning("%s: no reply within %ss", conn.label, timeout)
        raise timed_out(conn, self._endpoints[conn.name], timeout, retries)

    # -- external targets and publishers ----------------------------------------------------

    def call(self, conn: Connection, target: Callable[..., Any], args: Any) -> Any:
        """Call an external target in this process; no socket is involved."""
        return call_target(target, args)

    def publish(self, conn: Connection, frame: bytes) -> None:
        """Publish one frame; PUB never blocks (it drops at the high-water mark).

        Not locked here: the dispatcher numbers and sends each publisher's frames under a
        lock of its own, which also keeps the socket to one thread at a time.
        """
        self._publishers[conn.name].send(frame)

    def close(self, keep: Collection[threading.Thread] = ()) -> None:
        """Close every socket this outbound made, with a bounded linger.

        Args:
            keep: threads that may still be inside a call on their requester sockets (stuck
                handlers after a forced stop): theirs are left open, for them to close.
        """
        with self._lock:
            requesters = [s for s, thread in self._requesters.items() if thread not in keep]
            for sock in requesters:
                del self._requesters[sock]
        for sock in requesters:
            sock.close(linger=0)
        for sock in self._publishers.values():
            sock.close(linger=CLOSE_LINGER_MS)
        self._publishers.clear()


# -- the async loop -------------------------------------------------------------------------


class AsyncRequesters:
    """`await to_send(...)` over ZMQ: one DEALER per requester, one request at a time.

    Same framing, reply check, deadline and retries as `SocketOutbound`; tasks that call
    the same requester at once queue on a lock, as a REQ socket would make them.
    """

    def __init__(self, context: zmq.asyncio.Context, endpoints: Mapping[str, Endpoint]) -> None:
        self._context = context
        self._endpoints = endpoints
        self._sockets: dict[str, zmq.asyncio.Socket] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def request(
        self, conn: Connection, frame: bytes, workflow_id: str, timeout: float | None, retries: int
    ) -> bytes:
        """Send one request and return the reply that answers it.

        Raises:
            RequestTimeout: no reply after the last try; the next call starts afresh.
        """
        import asyncio  # here, not above: a sync app imports this module, never asyncio

        lock = self._locks.setdefault(conn.name, asyncio.Lock())
        timeout_ms = to_ms(timeout)
        async with lock:
            for _ in range(retries + 1):
                sock = self._sockets.get(conn.name) or self._open(conn)
                reply = await self.ask(sock, frame, workflow_id, timeout_ms, conn.label)
                if reply is not None:
                    return reply
                self._discard(conn.name)  # with the request, if it is still queued
                ASYNC_LOG.warning("%s: no reply within %ss", conn.label, timeout)
        raise timed_out(conn, self._endpoints[conn.name], timeout, retries)

    def _open(self, conn: Connection) -> zmq.asyncio.Socket:
        sock = open_requester(self._context, conn, self._endpoints[conn.name])
        self._sockets[conn.name] = sock
        return sock

    def _discard(self, name: str) -> None:
        sock = self._sockets.pop(name, None)
        if sock is not None:
            sock.close(linger=0)

    @staticmethod
    async def ask(
        sock: zmq.asyncio.Socket, frame: bytes, workflow_id: str, timeout_ms: int, label: str
    ) -> bytes | None:
        import asyncio

        started = time.monotonic()
        try:
            await sock.send_multipart([b"", frame], flags=zmq.NOBLOCK)
        except zmq.Again:  # no peer to queue for yet: wait for one, within the try
            left = left_ms(started, timeout_ms)
            try:
                await asyncio.wait_for(
                    sock.send_multipart([b"", frame]), None if left is None else left / 1000
                )
            except asyncio.TimeoutError:
                return None
        while True:
            left = left_ms(started, timeout_ms)
            if left is not None and left <= 0:
                return None
            try:
                parts = await asyncio.wait_for(
                    sock.recv_multipart(), None if left is None else left / 1000
                )
            except asyncio.TimeoutError:
                return None
            reply = unwrap(parts)
            if reply is not None and answers(reply, workflow_id):
                return reply
            _discarded(ASYNC_LOG, label)

    def close(self) -> None:
        """Close every requester socket (linger 0: a request nobody waits for is dropped)."""
        for name in list(self._sockets):
            self._discard(name)
