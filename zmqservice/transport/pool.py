"""Replyers with ``concurrency=K``: a ROUTER socket and a pool of K handler threads.

The serving thread owns the ROUTER socket: it reads a request, hands its frame to a worker
thread (the same ``Dispatcher.replier(conn)`` frame function a REP replyer runs), and
sends the reply when the worker passes it back over an inproc PUSH -> PULL pair that the
serving loop polls next to the ROUTER. With K requests in flight the ROUTER is not read
at all: further requests wait in libzmq's queue (back-pressure) until a worker is free.

Only used when some replyer asks for ``concurrency > 1``; ``concurrency=1`` keeps the REP
socket. `serve.serve_polled` polls each ROUTER and PULL socket next to the plain ones.

The K handler threads are daemon threads of our own, not a ``ThreadPoolExecutor``'s: the
interpreter joins an executor's threads at exit, so a handler still running after the
bounded drain would hold the process until it returned. A daemon thread is abandoned when
the process exits; its reply is lost, and logged as lost.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import cast

import zmq

from .. import codec
from ..replies import multipart_error
from .sockets import GRACE_S, WAKE_MS, discard_rest

__all__ = ["HEAD_FRAMES", "ConcurrentReplyer", "drain", "head", "split"]

LOG = logging.getLogger("zmqservice.concurrency")
_ids = itertools.count()


def _readable(sock: zmq.Socket[bytes]) -> bool:
    return bool(cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN)


HEAD_FRAMES = 32
"""Frames of one ROUTER message kept: the routing frames, the delimiter and the request.
The frames after these are dropped as they are read (`discard_rest`), never listed."""


def head(router: zmq.Socket[bytes]) -> tuple[list[bytes], int]:
    """Read the message in hand: its first `HEAD_FRAMES` frames, and how many more it had."""
    recv, option, rcvmore = router.recv, router.getsockopt, zmq.RCVMORE
    parts = [recv(zmq.NOBLOCK)]
    while option(rcvmore):
        if len(parts) == HEAD_FRAMES:
            return parts, discard_rest(router)
        parts.append(recv())
    return parts, 0


def split(
    parts: list[bytes], label: str, dropped: int = 0
) -> tuple[list[bytes], bytes | None, bytes | None]:
    """Split a ROUTER message into (envelope, request frame, error reply).

    The envelope is every routing frame up to and including the first empty delimiter
    (several when the request came through a proxy), as REP keeps it. A message without a
    delimiter, or with more than one frame after it, gets an error reply instead.
    `dropped` counts frames of the message that `head` read past and did not keep.
    """
    try:
        at = parts.index(b"", 1)
    except ValueError:
        message = f"{label}: a request needs an empty delimiter frame"
        LOG.warning("%s", message)
        return [parts[0], b""], None, codec.encode_error("DecodeError", message, "")
    envelope, body = parts[: at + 1], parts[at + 1 :]
    if len(body) + dropped != 1:
        return envelope, None, multipart_error(label, len(body) + dropped)
    return envelope, body[0], None


class ConcurrentReplyer:
    """One replyer's ROUTER socket, its handler threads and the pipe replies come back on.

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
        self._jobs: queue.SimpleQueue[tuple[list[bytes], bytes] | None] = queue.SimpleQueue()
        self._handling: set[threading.Thread] = set()
        """Handler threads inside a handler now (under the lock)."""
        self.idle = threading.Event()
        """Set while no handler thread is inside a handler."""
        self.idle.set()
        self._threads: list[threading.Thread] = []

    @property
    def full(self) -> bool:
        """Whether K requests are in flight: the ROUTER must not be read now."""
        return self.in_flight >= self.concurrency

    def take(self) -> None:
        """Read requests from the ROUTER while it has some and a worker is free."""
        router = self.router
        while not self.full and _readable(router):
            parts, dropped = head(router)
            envelope, frame, error = split(parts, self.label, dropped)
            if frame is None:
                router.send_multipart([*envelope, error or b""])
                continue
            self.in_flight += 1
            if len(self._threads) < min(self.in_flight, self.concurrency):
                self._start_thread()
            self._jobs.put((envelope, frame))

    def _start_thread(self) -> None:
        name = f"zmqservice-{self.label}-{len(self._threads)}"
        thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    @property
    def handling(self) -> set[threading.Thread]:
        """The handler threads inside a handler now (still running after a stop: stuck)."""
        with self._lock:
            return set(self._handling)

    def _run(self) -> None:
        me = threading.current_thread()
        while (job := self._jobs.get()) is not None:
            with self._lock:
                if self._closed:
                    return
                self._handling.add(me)
                self.idle.clear()
            try:
                self._work(*job)
            finally:
                with self._lock:
                    self._handling.discard(me)
                    if not self._handling:
                        self.idle.set()

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
        """Stop the reply pipe and the handler threads; the runtime closes the ROUTER.

        Requests not started are dropped; a handler still running is left to finish in
        its daemon thread, its reply lost (see `handling`). Idempotent; never waits.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._push.close(linger=0)
        self.pull.close(linger=0)
        for _ in self._threads:
            self._jobs.put(None)


def drain(replyers: Sequence[ConcurrentReplyer]) -> None:
    """After a stop: give requests in flight up to `GRACE_S` to finish and send replies.

    The ROUTERs are not read any more; the caller closes every socket afterwards.
    """
    busy = sum(r.in_flight for r in replyers)
    if not busy:
        return
    LOG.info("stopping: waiting up to %ss for %d request(s) in flight", GRACE_S, busy)
    poller = zmq.Poller()
    for replyer in replyers:
        poller.register(replyer.pull, zmq.POLLIN)
    deadline = time.monotonic() + GRACE_S
    while any(r.in_flight for r in replyers):
        left_ms = round((deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            LOG.warning(
                "stopping: %d request(s) still in flight: their replies are lost",
                sum(r.in_flight for r in replyers),
            )
            return
        poller.poll(min(left_ms, WAKE_MS))
        for replyer in replyers:
            replyer.give()
