"""Replyers with ``concurrency=K``: a ROUTER socket and a pool of K handler threads.

The serving thread owns the ROUTER socket: it reads a request, hands its frame to a worker
thread (the same ``Dispatcher.replier(conn)`` frame function a REP replyer runs), and
sends the reply when the worker passes it back over an inproc PUSH -> PULL pair that the
serving loop polls next to the ROUTER. With K requests in flight the ROUTER is not read
at all: further requests wait in libzmq's queue (back-pressure) until a worker is free.

Only used when some replyer asks for ``concurrency > 1``; ``concurrency=1`` keeps the REP
socket and the runtime's own loops.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import zmq

from .. import codec

__all__ = ["DRAIN_S", "ConcurrentReplyer", "serve"]

LOG = logging.getLogger("zmqservice.concurrency")
DRAIN_S = 5.0
"""On stop: how long requests already in flight get to finish and send their replies."""
DRAIN_LIMIT = 1000
"""Messages taken from one plain socket per poll round before the others get a turn."""
_ids = itertools.count()

Entry = tuple[bool, Callable[[bytes], Any], str]
"""A plain in-socket, as the runtime describes it: (is a replyer, frame handler, label)."""


def _readable(sock: zmq.Socket[bytes]) -> bool:
    return bool(cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN)


def _refuse(label: str, message: str) -> bytes:
    LOG.warning("%s: %s", label, message)
    return codec.encode_error("DecodeError", f"{label}: {message}", "")


def split(parts: list[bytes], label: str) -> tuple[list[bytes], bytes | None, bytes | None]:
    """Split a ROUTER message into (envelope, request frame, error reply).

    The envelope is every routing frame up to and including the first empty delimiter
    (several when the request came through a proxy), as REP keeps it. A message without a
    delimiter, or with more than one frame after it, gets an error reply instead.
    """
    try:
        at = parts.index(b"", 1)
    except ValueError:
        return [parts[0], b""], None, _refuse(label, "a request needs an empty delimiter frame")
    envelope, body = parts[: at + 1], parts[at + 1 :]
    if len(body) != 1:
        message = f"a request is one frame, got a multipart message of {len(body)} frames"
        return envelope, None, _refuse(label, message)
    return envelope, body[0], None


class ConcurrentReplyer:
    """One replyer's ROUTER socket, its worker pool and the pipe replies come back on.

    Every socket here but the PUSH end is used by the serving thread only; workers send
    on the PUSH end one at a time, under a lock.
    """

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        router: zmq.Socket[bytes],
        handle: Callable[[bytes], bytes],
        label: str,
        concurrency: int,
    ) -> None:
        self.router = router
        self.handle = handle
        self.label = label
        self.concurrency = concurrency
        self.in_flight = 0
        url = f"inproc://zmqservice-concurrency-{id(self)}-{next(_ids)}"
        self.pull = context.socket(zmq.PULL)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.bind(url)
        self._push = context.socket(zmq.PUSH)
        self._push.setsockopt(zmq.LINGER, 0)
        self._push.connect(url)
        self._lock = threading.Lock()
        self._closed = False
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"zmqservice-{label}")

    @property
    def full(self) -> bool:
        """Whether K requests are in flight: the ROUTER must not be read now."""
        return self.in_flight >= self.concurrency

    def take(self) -> None:
        """Read requests from the ROUTER while it has some and a worker is free."""
        router = self.router
        while not self.full and _readable(router):
            parts = router.recv_multipart(zmq.NOBLOCK)
            envelope, frame, error = split(parts, self.label)
            if frame is None:
                router.send_multipart([*envelope, error or b""])
                continue
            self.in_flight += 1
            self._pool.submit(self._work, envelope, frame)

    def _work(self, envelope: list[bytes], frame: bytes) -> None:
        try:
            reply = self.handle(frame)  # never raises, but a lost reply would leak a slot
        except BaseException as exc:
            LOG.exception("%s: the frame handler raised", self.label)
            reply = codec.encode_error("HandlerError", repr(exc), "")
        with self._lock:
            if self._closed:
                LOG.warning("%s: finished after the stop: its reply is lost", self.label)
                return
            self._push.send_multipart([*envelope, reply])

    def give(self) -> None:
        """Send every reply the workers have finished to its caller."""
        pull, router = self.pull, self.router
        while _readable(pull):
            router.send_multipart(pull.recv_multipart(zmq.NOBLOCK))
            self.in_flight -= 1

    def close(self) -> None:
        """Stop the workers' pipe and pool; the runtime closes the ROUTER. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._push.close(linger=0)
        self.pull.close(linger=0)
        self._pool.shutdown(wait=False, cancel_futures=True)


def _take_plain(sock: zmq.Socket[bytes], entry: Entry) -> None:
    replies, handle, label = entry
    taken = 0
    while taken < DRAIN_LIMIT and _readable(sock):
        frame = sock.recv(zmq.NOBLOCK)
        if not replies:
            handle(frame)
        elif sock.getsockopt(zmq.RCVMORE):
            parts = 1
            while sock.getsockopt(zmq.RCVMORE):
                sock.recv()
                parts += 1
            sock.send(_refuse(label, f"a request is one frame, got {parts} frames"))
        else:
            sock.send(handle(frame))
        taken += 1


def serve(
    plain: dict[zmq.Socket[bytes], Entry],
    replyers: Iterable[ConcurrentReplyer],
    stopping: threading.Event,
    poll_ms: int,
    min_wait: float = 0.0,
) -> None:
    """Serve plain in-sockets and concurrent replyers from one poller until `stopping`.

    Then stop reading, give requests in flight up to `DRAIN_S` to finish and send their
    replies, and return; the caller closes the sockets.
    """
    by_router = {r.router: r for r in replyers}
    by_pull = {r.pull: r for r in by_router.values()}
    poller = zmq.Poller()
    for sock in [*plain, *by_router, *by_pull]:
        poller.register(sock, zmq.POLLIN)
    while not stopping.is_set():
        for sock, _ in poller.poll(poll_ms):
            if sock in plain:
                _take_plain(sock, plain[sock])
                continue
            replyer = by_router[sock] if sock in by_router else by_pull[sock]
            replyer.give()
            replyer.take()
            # Back-pressure: a full replyer's ROUTER leaves the poller until a slot frees.
            poller.register(replyer.router, 0 if replyer.full else zmq.POLLIN)
        if min_wait:
            time.sleep(min_wait)
    _drain(list(by_pull.values()), list(by_pull), poll_ms)


def _drain(replyers: list[ConcurrentReplyer], pulls: list[zmq.Socket[bytes]], poll_ms: int) -> None:
    busy = sum(r.in_flight for r in replyers)
    if not busy:
        return
    LOG.info("stopping: waiting up to %ss for %d request(s) in flight", DRAIN_S, busy)
    poller = zmq.Poller()
    for pull in pulls:
        poller.register(pull, zmq.POLLIN)
    deadline = time.monotonic() + DRAIN_S
    while any(r.in_flight for r in replyers):
        left_ms = round((deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            LOG.warning(
                "stopping: %d request(s) still in flight: their replies are lost",
                sum(r.in_flight for r in replyers),
            )
            return
        poller.poll(min(left_ms, poll_ms))
        for replyer in replyers:
            replyer.give()
