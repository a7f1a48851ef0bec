"""The per-message steps of an in-connection, as values: no exceptions cross them.

A driver (`Dispatcher`'s sync or async one) runs them around the handler call::

    accepted = accept(frame)   # an error reply (or drop), or (value, workflow_id, token)
    result = handler(value)    # the driver's own: called, awaited or run in a thread
    finish(result, workflow_id)  # the reply frame; fail(exc, workflow_id) if it raised

`accept` makes the message's workflow id the current one (`WORKFLOW_ID`) before it
validates, so validation warnings carry it; the driver resets `token` when the message is
done. The steps never raise. Everything per connection is bound once when they are built.

A frame over `BULKY_BYTES` is decoded and validated with the cyclic garbage collector
paused (`without_gc`): msgpack makes up to one object per byte, and collections triggered
while a million young lists pile up cost 5-7 times the decoding itself.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from contextvars import Token
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from . import codec
from .errors import DecodeError, ValidationError
from .log import WORKFLOW_ID, peer_text
from .replies import (
    TooLarge,
    handler_failed,
    invalid_args,
    refused,
    rejected,
    too_large,
    unencodable,
)
from .sending import new_workflow_id

if TYPE_CHECKING:
    from .connection import Connection
    from .stats import SubscriberStats

__all__ = [
    "BULKY_BYTES",
    "ReplySteps",
    "SubscriberSteps",
    "reply_steps",
    "subscriber_steps",
    "timed",
    "timed_async",
    "without_gc",
]

LOG = logging.getLogger("zmqservice.dispatch")
NO_SEQ = -(1 << 64)
"""Below any msgpack int: the "last number seen" of a publisher not seen yet."""

BULKY_BYTES = 64 * 1024
"""Frames over this many bytes are decoded and validated with the cyclic GC paused."""


Accepted = tuple[Any, str, Token[str]]
"""The validated args, their workflow id, and the token that resets `WORKFLOW_ID`."""
T = TypeVar("T")

_gc_lock = threading.Lock()
_gc_pauses = [0]
"""How many `without_gc` calls are running (threads of a concurrent replyer overlap)."""


def without_gc(step: Callable[[bytes, bool], T], frame: bytes) -> T:
    """``step(frame, True)`` with the cyclic garbage collector paused; thread-safe.

    The first of overlapping calls disables the collector and the last one enables it again;
    a collector the application disabled itself is left alone.
    """
    with _gc_lock:
        mine = _gc_pauses[0] > 0 or gc.isenabled()
        if mine:
            gc.disable()
            _gc_pauses[0] += 1
    try:
        return step(frame, True)
    finally:
        if mine:
            with _gc_lock:
                _gc_pauses[0] -= 1
                if not _gc_pauses[0]:
                    gc.enable()


class ReplySteps(NamedTuple):
    """A replyer's steps: each returns the reply frame where it ends the message."""

    accept: Callable[[bytes], bytes | Accepted]
    """frame -> an error reply, or the validated args (the describe request is answered)."""
    finish: Callable[[Any, str], bytes]
    """(result, workflow_id) -> the reply, or the error reply if it does not fit `returns`."""
    fail: Callable[[Exception, str], bytes]
    """(exception the handler raised, workflow_id) -> the error reply."""
    workflow_of: Callable[[bytes, bytes], str]
    """(frame, reply) -> the workflow id to log (the reply's)."""


class SubscriberSteps(NamedTuple):
    """A subscriber's steps: each counts what it sees in the connection's `SubscriberStats`."""

    accept: Callable[[bytes], Exception | Accepted]
    """frame -> why it was dropped, or the validated args (sequence numbers accounted)."""
    fail: Callable[[Exception], Exception]
    """exception the handler raised -> itself, counted and logged."""
    workflow_of: Callable[[bytes, Any], str]
    """(frame, result) -> the workflow id to log (the frame's)."""


def reply_steps(conn: Connection, limit: int, describe: Callable[[str], bytes]) -> ReplySteps:
    """Build replyer `conn`'s steps; `describe(workflow_id)` answers a describe request."""
    assert conn.returns is not None
    load, fast_load, dump = conn.args.load, conn.args.fast_load, conn.returns.dump
    where_args, where_return = f"{conn.label} args", f"{conn.label} return value"
    label = conn.label
    encode_reply, decode_request = codec.encode_reply, codec.decode_request
    reset = WORKFLOW_ID.reset
    bulky = min(limit, BULKY_BYTES)

    def accept(frame: bytes, paused: bool = False) -> bytes | Accepted:
        if len(frame) > bulky and not paused:  # rare: refuse it, or take it with the GC paused
            if len(frame) > limit:  # refused unread: the request's workflow_id is unknown
                return refused(label, len(frame), limit)
            return without_gc(accept, frame)
        try:
            args, workflow_id = decode_request(frame)
        except codec.DescribeRequest as request:
            return describe(request.workflow_id)
        except DecodeError as exc:
            return rejected(label, exc)
        workflow_id = workflow_id or new_workflow_id()
        token = WORKFLOW_ID.set(workflow_id)
        try:
            try:
                value = fast_load(args)
            except Exception:  # not valid: the explaining path says why
                value = load(args, where_args)
        except Exception as exc:
            error = invalid_args(where_args, exc, workflow_id)
            reset(token)
            return error
        except BaseException:
            reset(token)
            raise
        return value, workflow_id, token

    def finish(result: Any, workflow_id: str) -> bytes:
        try:
            return encode_reply(dump(result, where_return), workflow_id)
        except Exception as exc:
            return unencodable(label, exc, workflow_id)

    def fail(exc: Exception, workflow_id: str) -> bytes:
        return handler_failed(label, exc, workflow_id)

    return ReplySteps(accept, finish, fail, _reply_workflow_id)


def subscriber_steps(conn: Connection, limit: int, stats: SubscriberStats) -> SubscriberSteps:
    """Build subscriber `conn`'s steps, counting into `stats`."""
    load, fast_load = conn.args.load, conn.args.fast_load
    where_args, label = f"{conn.label} args", conn.label
    prefix = codec.topic_prefix(conn.topic)
    decode_publication = codec.decode_publication
    last_seq = stats.last_seq
    reset = WORKFLOW_ID.reset
    bulky = min(limit, BULKY_BYTES)

    def too_big(size: int) -> Exception:
        stats.received += 1
        stats.dropped += 1
        LOG.warning("%s: dropped a message of %d bytes (limit %d)", label, size, limit)
        return TooLarge(too_large(label, size, limit))

    def accept(frame: bytes, paused: bool = False) -> Exception | Accepted:
        if len(frame) > bulky and not paused:  # rare: drop it, or take it with the GC paused
            if len(frame) > limit:
                return too_big(len(frame))
            return without_gc(accept, frame)
        stats.received += 1
        try:
            args, workflow_id, pub, seq = decode_publication(frame, prefix)
        except DecodeError as exc:
            stats.dropped += 1
            LOG.warning("%s: dropped a message: %s", label, peer_text(str(exc)))
            return exc
        if seq.__class__ is int and pub.__class__ is str:
            if last_seq.get(pub, NO_SEQ) + 1 == seq:
                last_seq[pub] = seq
            else:  # the first from this publisher, or a gap
                stats.sequence(label, pub, seq)
        workflow_id = workflow_id or new_workflow_id()
        token = WORKFLOW_ID.set(workflow_id)
        try:
            try:
                value = fast_load(args)
            except Exception:  # not valid: the explaining path says why
                value = load(args, where_args)
        except Exception as exc:
            error = fail(exc)
            reset(token)
            return error
        except BaseException:
            reset(token)
            raise
        return value, workflow_id, token

    def fail(exc: Exception) -> Exception:
        # A ValidationError counts as a drop wherever it comes from, as it always has.
        if isinstance(exc, ValidationError):
            stats.dropped += 1
            LOG.warning("%s", peer_text(str(exc)))
        else:
            stats.failed += 1
            LOG.exception("%s: handler raised", label)
        return exc

    def workflow_of(frame: bytes, result: Any) -> str:
        try:
            return codec.decode_published(frame, prefix)[1]
        except DecodeError:
            return ""  # a message that came without one shows as "-"

    return SubscriberSteps(accept, fail, workflow_of)


def timed(
    handle: Callable[[bytes], T], label: str, workflow_of: Callable[[bytes, Any], str]
) -> Callable[[bytes], T]:
    """`handle`, logging one DEBUG line per message (connection, workflow_id, µs) if DEBUG is on.

    Decided once, now: with DEBUG off, `handle` itself is returned and costs nothing more.
    """
    if not LOG.isEnabledFor(logging.DEBUG):
        return handle
    clock = time.perf_counter_ns

    def timed(frame: bytes) -> T:
        start = clock()
        result = handle(frame)
        _handled(label, workflow_of(frame, result), (clock() - start) / 1000)
        return result

    return timed


def timed_async(
    handle: Callable[[bytes], Awaitable[T]], label: str, workflow_of: Callable[[bytes, Any], str]
) -> Callable[[bytes], Awaitable[T]]:
    """`timed` for an async frame function: the µs include the awaited handler."""
    if not LOG.isEnabledFor(logging.DEBUG):
        return handle
    clock = time.perf_counter_ns

    async def timed(frame: bytes) -> T:
        start = clock()
        result = await handle(frame)
        _handled(label, workflow_of(frame, result), (clock() - start) / 1000)
        return result

    return timed


def _handled(label: str, workflow_id: str, micros: float) -> None:
    LOG.debug(
        "%s: workflow_id %s handled in %.1f µs",
        label,
        peer_text(workflow_id) or "-",
        micros,
        extra={"workflow_id": workflow_id},
    )


def _reply_workflow_id(frame: bytes, reply: bytes) -> str:
    try:
        envelope = codec.decode(reply)
    except DecodeError:
        return ""
    workflow_id = envelope.get("workflow_id") if isinstance(envelope, dict) else None
    return workflow_id if isinstance(workflow_id, str) else ""
