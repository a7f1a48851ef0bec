"""The one-shot sockets behind ``zmqservice call / describe / publish / listen``.

Each function owns a private `zmq.Context` for its lifetime and destroys it on the way
out; every wait is bounded by a timeout or a stop callback polled every `WAKE_MS`.
``call`` and ``describe`` send through the requesters' Lazy Pirate core (one try).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import zmq

from .. import codec
from ..errors import ConfigError, RequestTimeout
from .requesters import Requester, to_ms
from .sockets import WAKE_MS

__all__ = ["listen", "publish", "request_once"]


def _connect(sock: zmq.Socket[bytes], endpoint: str) -> None:
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as exc:  # a transport libzmq lacks, an ipc path too long ...
        reason = zmq.strerror(exc.errno) if exc.errno is not None else str(exc)
        raise ConfigError(f"cannot connect to {endpoint}: {reason}") from None


def publish(endpoint: str, frame: bytes, timeout: float) -> None:
    """Publish one frame once a peer at `endpoint` has subscribed to a matching prefix.

    An XPUB socket connects (to a binding subscriber, or a proxy's XSUB frontend) and
    receives the peer's subscriptions; the frame goes out after the first subscription
    it matches, so it is not dropped the way a PUB drops messages nobody asked for yet.

    Raises:
        ConfigError: libzmq cannot connect to `endpoint` at all.
        TimeoutError: no matching subscription within `timeout` seconds; the message
            names the subscriptions seen.
    """
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = context.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        _connect(sock, endpoint)
        deadline = time.monotonic() + timeout
        seen: list[bytes] = []
        while (left := deadline - time.monotonic()) > 0:
            if not sock.poll(min(WAKE_MS, int(left * 1000) + 1), zmq.POLLIN):
                continue
            event = sock.recv()
            if not event or event[0] != 1:  # 0 = unsubscribe
                continue
            prefix = event[1:]
            if frame.startswith(prefix):
                sock.send(frame)
                # Let the frame leave before the context goes, bounded by what is left.
                sock.setsockopt(zmq.LINGER, max(int((deadline - time.monotonic()) * 1000), 100))
                return
            seen.append(prefix)
        if not seen:
            raise TimeoutError(
                f"no subscriber at {endpoint} within {timeout:g}s (is a subscriber with "
                "bind=True or a proxy frontend there?); nothing was published"
            )
        heard = ", ".join(codec.topic_label(p) for p in seen)
        raise TimeoutError(
            f"no subscriber for this topic at {endpoint} within {timeout:g}s "
            f"(subscriptions seen: {heard}); nothing was published"
        )
    finally:
        sock.close()
        context.term()


def listen(
    endpoint: str,
    prefix: bytes,
    stop: Callable[[], bool],
    timeout: float | None = None,
    on_connected: Callable[[], object] | None = None,
) -> Iterator[bytes]:
    """Yield each frame a SUB socket connected to `endpoint` receives.

    Stops when `stop()` turns true or after `timeout` seconds (None: no limit); the caller
    stops early by closing the generator. `on_connected` is called once the socket is
    connected; `ConfigError` is raised instead when libzmq cannot connect to `endpoint`.
    """
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sock = context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, prefix)
        _connect(sock, endpoint)
        if on_connected is not None:
            on_connected()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not stop():
            wait = WAKE_MS
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                wait = min(wait, int(left * 1000) + 1)
            if sock.poll(wait, zmq.POLLIN):
                yield sock.recv()
    finally:
        context.destroy(linger=0)


def request_once(endpoint: str, frame: bytes, timeout: float, workflow_id: str = "") -> bytes:
    """Send one request frame to `endpoint` and return the reply frame.

    A DEALER speaking REQ's framing on a context of its own, destroyed on the way out.

    Raises:
        ConfigError: libzmq cannot connect to `endpoint` at all.
        RequestTimeout: no reply within `timeout` seconds.
    """
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        _connect(sock, endpoint)
        reply = Requester(sock, endpoint).ask(frame, workflow_id, to_ms(timeout))
        if reply is None:
            raise RequestTimeout(f"no reply from {endpoint} within {timeout:g}s")
        return reply
    finally:
        context.destroy(linger=0)
