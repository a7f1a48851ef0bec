"""``--workers N``: the parent's load balancer, which hands a worker a request only when it is free.

The ZeroMQ guide's load-balancing broker. Per replyer, a ROUTER frontend binds the
replyer's real address; per worker, a DEALER binds a private ``ipc://`` endpoint that the
worker's replyer socket connects to (``bind=False``). A request is read from the frontend
only while some ready worker has a free place (one, or the replyer's ``concurrency``), and
goes to that worker; its reply comes back on that worker's DEALER and goes out of the
frontend to the requester that sent it. Further requests wait in the frontend's queue.

So a worker holds only the requests it is handling: when it dies, those are lost and no
other. libzmq's ROUTER/DEALER proxy, used before, dealt requests round robin onto every
worker's pipe, busy or dead: each crash lost the requests queued behind the one that
killed it (measured: 3 to 4 innocent requests lost for 4 crashes; with ``SNDHWM``/
``RCVHWM`` of 1 and ``ZMQ_IMMEDIATE`` as well, the same).

A worker is told apart by its own DEALER, not by a routing id or a "ready" message: the
supervisor says when a worker is ready (its ``@app.init`` has run: `up`) and when it died
(`down`). Everything here runs in the supervisor's thread.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, cast

import attrs
import zmq

from .pool import split
from .sockets import CLOSE_LINGER_MS, bind_error, last_endpoint

__all__ = ["Balancer", "Route"]

RETRY_MS = 10
"""How soon a request for a worker whose connection is not up yet is sent again."""


# Plain ints: flags made of pyzmq's enums cost more than the calls they are passed to.
_EVENTS, _POLLIN, _NOBLOCK = int(zmq.EVENTS), int(zmq.POLLIN), int(zmq.NOBLOCK)
_MORE, _RCVMORE = int(zmq.SNDMORE), int(zmq.RCVMORE)


def _readable(sock: zmq.Socket[bytes]) -> bool:
    return bool(cast(int, sock.getsockopt(_EVENTS)) & _POLLIN)


def _recv(sock: zmq.Socket[bytes]) -> list[bytes]:
    """`recv_multipart` without a blocking wait, with plain int flags."""
    parts = [sock.recv(_NOBLOCK)]
    while sock.getsockopt(_RCVMORE):
        parts.append(sock.recv(_NOBLOCK))
    return parts


def _send(sock: zmq.Socket[bytes], parts: list[bytes]) -> None:
    """`send_multipart` without a blocking wait (`zmq.Again` before any frame is sent)."""
    for part in parts[:-1]:
        sock.send(part, _MORE | _NOBLOCK)
    sock.send(parts[-1], _NOBLOCK)


@attrs.define(frozen=True)
class Route:
    """One replyer served by the workers."""

    name: str
    label: str
    url: str
    """The replyer's own address: the frontend binds it."""
    capacity: int = 1
    """Requests one worker may hold at once: the replyer's ``concurrency``."""
    max_size: int = -1
    """``ZMQ_MAXMSGSIZE`` of the frontend (-1: none), as the replyer's own socket has."""


class _Served:
    """A route's sockets and how many of its requests each worker holds."""

    def __init__(self, route: Route, frontend: zmq.Socket[bytes], workers: int) -> None:
        self.route = route
        self.frontend = frontend
        self.backends: list[zmq.Socket[bytes]] = []
        self.held = [0] * workers
        self.given = [0] * workers
        """When each worker was last given a request (a count of requests handed out)."""
        self.handed = 0
        self.polled = False
        """Whether the frontend is polled for requests now."""
        self.waiting: list[bytes] | None = None
        """A request read for a worker whose connection was not up yet: sent first."""


class Balancer:
    """The frontends and per-worker backends of every replyer, and who holds what.

    Args:
        context: the parent's context.
        routes: the replyers.
        workers: how many workers.
        directory: a private directory for the ``ipc://`` backends.

    Raises:
        ConfigError: a frontend cannot bind (`sockets.AddressUnavailable` when it is busy).
    """

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        routes: Sequence[Route],
        workers: int,
        directory: str,
    ) -> None:
        self._sockets: list[zmq.Socket[bytes]] = []
        self._up = [False] * workers
        self._taking = True
        self.served: list[_Served] = []
        try:
            for r, route in enumerate(routes):
                front = self._socket(context, zmq.ROUTER, CLOSE_LINGER_MS)
                front.setsockopt(zmq.MAXMSGSIZE, route.max_size)
                try:
                    front.bind(route.url)
                except zmq.ZMQError as exc:
                    raise bind_error(f"cannot bind {route.label} to {route.url}", exc) from None
                served = _Served(route, front, workers)
                for w in range(workers):
                    back = self._socket(context, zmq.DEALER, 0)
                    back.bind(f"ipc://{directory}/{r}-{w}")
                    served.backends.append(back)
                self.served.append(served)
        except BaseException:
            self.close()
            raise
        self._poller = zmq.Poller()
        self._fds: set[int] = set()
        for served in self.served:
            for back in served.backends:
                self._poller.register(back, zmq.POLLIN)

    def _socket(self, context: zmq.Context[zmq.Socket[bytes]], kind: int, linger: int) -> Any:
        sock = context.socket(kind)
        sock.setsockopt(zmq.LINGER, linger)
        self._sockets.append(sock)
        return sock

    @property
    def frontends(self) -> dict[str, str]:
        """Replyer name -> the endpoint its frontend bound."""
        return {s.route.name: last_endpoint(s.frontend) for s in self.served}

    def endpoints(self, worker: int) -> dict[str, str]:
        """Replyer name -> the endpoint worker `worker` connects its replyer to."""
        return {s.route.name: last_endpoint(s.backends[worker]) for s in self.served}

    def up(self, worker: int) -> None:
        """Worker `worker` is ready: it may be given requests."""
        self._up[worker] = True

    def down(self, worker: int) -> int:
        """Worker `worker` has died: forget what it held; return how many requests that was."""
        self._up[worker] = False
        lost = 0
        for served in self.served:
            lost += served.held[worker]
            served.held[worker] = 0
        return lost

    def stop_taking(self) -> None:
        """Read no more requests (a stop): the ones held still get their replies through."""
        self._taking = False

    @property
    def held(self) -> int:
        """Requests the workers hold now."""
        return sum(sum(s.held) for s in self.served)

    def poll(self, timeout_ms: int, fds: Collection[int] = ()) -> set[int]:
        """Forward replies and hand out requests for up to `timeout_ms`; return `fds` ready.

        `fds` are file descriptors to wait on as well (the workers' process sentinels).
        """
        retry = False
        for served in self.served:
            if self._taking and served.waiting is not None:
                self._hand_out(served)
            retry = retry or (self._taking and served.waiting is not None)
            wanted = self._taking and served.waiting is None and self._free(served) is not None
            if wanted != served.polled:
                self._poller.register(served.frontend, _POLLIN if wanted else 0)
                served.polled = wanted
        fds = set(fds)
        for fd in self._fds - fds:
            self._poller.unregister(fd)
        for fd in fds - self._fds:
            self._poller.register(fd, _POLLIN)
        self._fds = fds
        events = dict(self._poller.poll(min(timeout_ms, RETRY_MS) if retry else timeout_ms))
        for served in self.served:
            for worker, back in enumerate(served.backends):
                if back in events:
                    self._replies(served, worker, back)
            self._requests(served)  # a reply may have made room: no need to poll for it
        return {fd for fd in fds if fd in events}

    def _free(self, served: _Served) -> int | None:
        """The ready worker with room that holds fewest of this replyer's requests, and of
        those the one given a request longest ago (the guide's least recently used)."""
        capacity, held, given = served.route.capacity, served.held, served.given
        free = [w for w in range(len(held)) if self._up[w] and held[w] < capacity]
        return min(free, key=lambda w: (held[w], given[w])) if free else None

    def _replies(self, served: _Served, worker: int, back: zmq.Socket[bytes]) -> None:
        while _readable(back):
            reply = _recv(back)
            if served.held[worker]:
                served.held[worker] -= 1
            _send(served.frontend, reply)  # a requester gone: ROUTER drops it

    def _requests(self, served: _Served) -> None:
        front, label = served.frontend, served.route.label
        while self._taking and served.waiting is None and self._free(served) is not None:
            if not _readable(front):
                return
            parts = _recv(front)
            envelope, frame, error = split(parts, label)
            if frame is None:  # a malformed request no worker would answer: answer it here
                _send(front, [*envelope, error or b""])
                continue
            served.waiting = parts
            self._hand_out(served)

    def _hand_out(self, served: _Served) -> None:
        """Send the waiting request to the freest ready worker, unless it cannot take it yet."""
        worker = self._free(served)
        if worker is None or served.waiting is None:
            return
        try:
            _send(served.backends[worker], served.waiting)
        except zmq.Again:  # ready, but its connection is not up yet: try again shortly
            return
        served.waiting = None
        served.held[worker] += 1
        served.handed += 1
        served.given[worker] = served.handed

    def close(self) -> None:
        """Close every socket: frontends with a bounded linger, so last replies go out."""
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
