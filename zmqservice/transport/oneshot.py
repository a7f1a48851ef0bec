"""The one-shot sockets behind ``zmqservice call / describe / publish / listen``.

Each function owns a private `zmq.Context` for its lifetime and destroys it on the way
out; every wait is bounded by a timeout or a stop callback polled every 100 ms.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgpack
import zmq

from .. import codec
from ..errors import DecodeError, RequestTimeout

__all__ = [
    "endpoint_url",
    "jsonable",
    "listen",
    "publish",
    "request",
    "split_published",
    "subscription_topic",
]

POLL_MS = 100
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^:/\s]+):(\d{1,5})$")
_URL = re.compile(r"^[a-z]+://\S+$")


def endpoint_url(value: str) -> str:
    """Turn ``host:port`` into ``tcp://host:port``; a full ZMQ endpoint passes unchanged.

    Raises:
        ValueError: for anything else.
    """
    value = value.strip()
    if _URL.match(value):
        return value
    match = _HOST_PORT.match(value)
    if match and int(match[2]) <= 65535:
        return f"tcp://{value}"
    raise ValueError(f"{value!r} is not 'host:port' or a ZMQ endpoint like tcp://host:port")


def jsonable(value: Any) -> Any:
    """Make a decoded wire value JSON-ready.

    ``Decimal`` and ``UUID`` become strings, sets sorted lists, bytes base64 text, tuples
    lists, datetimes ISO 8601 strings.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [jsonable(v) for v in value]
        try:
            return sorted(items)
        except TypeError:  # mixed types: a stable order all the same
            return sorted(items, key=lambda v: (type(v).__name__, repr(v)))
    if isinstance(value, (Decimal, UUID)):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def request(endpoint: str, frame: bytes, timeout: float) -> bytes:
    """Send one request frame over a fresh REQ socket and return the reply frame.

    Raises:
        RequestTimeout: no reply within `timeout` seconds.
    """
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sock = context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send(frame)
        if not sock.poll(int(timeout * 1000), zmq.POLLIN):
            raise RequestTimeout(f"no reply from {endpoint} within {timeout:g}s")
        return sock.recv()
    finally:
        context.destroy(linger=0)


def subscription_topic(prefix: bytes) -> str:
    """How a subscription prefix reads: ``'BTC'``, ``(every topic)`` or its hex bytes."""
    if not prefix:
        return "(every topic)"
    try:
        topic = msgpack.unpackb(prefix, raw=False)
    except Exception:
        return prefix.hex()
    return repr(topic) if isinstance(topic, str) else prefix.hex()


def publish(endpoint: str, frame: bytes, timeout: float) -> None:
    """Publish one frame once a peer at `endpoint` has subscribed to a matching prefix.

    An XPUB socket connects (to a binding subscriber, or a proxy's XSUB frontend) and
    receives the peer's subscriptions; the frame goes out after the first subscription
    it matches, so it is not dropped the way a PUB drops messages nobody asked for yet.

    Raises:
        TimeoutError: no matching subscription within `timeout` seconds; the message
            names the subscriptions seen.
    """
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = context.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        deadline = time.monotonic() + timeout
        seen: list[bytes] = []
        while (left := deadline - time.monotonic()) > 0:
            if not sock.poll(min(POLL_MS, int(left * 1000) + 1), zmq.POLLIN):
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
        heard = ", ".join(subscription_topic(p) for p in seen)
        raise TimeoutError(
            f"no subscriber for this topic at {endpoint} within {timeout:g}s "
            f"(subscriptions seen: {heard}); nothing was published"
        )
    finally:
        sock.close()
        context.term()


def split_published(frame: bytes, prefix: bytes = b"") -> tuple[str, Any, str]:
    """Split a pub/sub frame into ``(topic, args, workflow_id)``.

    Raises:
        DecodeError: not a published envelope (with or without a leading topic).
    """
    if prefix:
        if not frame.startswith(prefix):
            raise DecodeError("published frame does not start with the subscribed topic")
        args, workflow_id = codec.decode_request(frame[len(prefix) :])
        return msgpack.unpackb(prefix, raw=False), args, workflow_id
    try:
        args, workflow_id = codec.decode_request(frame)
        return "", args, workflow_id
    except DecodeError:
        try:
            msgpack.unpackb(frame, raw=False)
        except msgpack.ExtraData as extra:
            if isinstance(extra.unpacked, str):
                args, workflow_id = codec.decode_request(extra.extra)
                return extra.unpacked, args, workflow_id
        except Exception:
            pass
        raise


def listen(
    endpoint: str, prefix: bytes, stop: Callable[[], bool], timeout: float | None = None
) -> Iterator[bytes]:
    """Yield each frame a SUB socket connected to `endpoint` receives.

    Stops when `stop()` turns true or after `timeout` seconds (None: no limit); the caller
    stops early by closing the generator.
    """
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sock = context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, prefix)
        sock.connect(endpoint)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not stop():
            wait = POLL_MS
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                wait = min(wait, int(left * 1000) + 1)
            if sock.poll(wait, zmq.POLLIN):
                yield sock.recv()
    finally:
        context.destroy(linger=0)
