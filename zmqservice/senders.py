"""Out-connection senders: ``(args, workflow_id) -> reply or None``, built once per connection.

A requester validates and encodes its args, hands the frame to the `Outbound` and decodes
and checks the reply; a publisher numbers and sends; an external target is called. With
middlewares, each sender runs inside them and sends the envelope keys they set (``trace``);
with none, the senders are the plain ones, decided here once.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from . import codec
from .errors import ConfigError
from .middleware import Middleware, around_send, around_send_async
from .sending import AsyncOutbound, Outbound, raise_for_error

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["Requester", "Sender", "make_sender"]

Sender = Callable[[Any, str], Any]
"""``sender(args, workflow_id)`` -> the reply (requesters), or None."""


class Requester(NamedTuple):
    """A requester's other ways to send: with per-call options, and awaited."""

    request_with: Callable[[Any, str, float | None, int], Any]
    """``(args, workflow_id, timeout, retries)`` -> the reply's args."""
    request_async: Callable[[AsyncOutbound, Any, str, float | None, int], Awaitable[Any]]
    """``await (async_outbound, args, workflow_id, timeout, retries)`` -> the reply's args."""


def make_sender(
    conn: Connection, outbound: Outbound, middlewares: Sequence[Middleware]
) -> tuple[Sender, Requester | None, str | None]:
    """Build `conn`'s sender, its `Requester` forms (requesters only), and a publisher's id.

    Raises:
        ConfigError: an external target that does not import or is not callable.
    """
    if conn.kind == "requester":
        send, requester = _requester(conn, outbound, middlewares)
        return send, requester, None
    if conn.kind == "publisher":
        pub = secrets.token_hex(6)
        return _publisher(conn, outbound, middlewares, pub), None, pub
    return _external(conn, outbound, middlewares), None, None


def _requester(
    conn: Connection, outbound: Outbound, middlewares: Sequence[Middleware]
) -> tuple[Sender, Requester]:
    assert conn.returns is not None
    dump, where = conn.args.dump, f"{conn.label} args"
    check_reply = None if conn.returns.is_any else conn.returns.load
    where_reply = f"{conn.label} reply"
    default_timeout, default_retries = conn.timeout, conn.retries
    encode_request, encode_request_with = codec.encode_request, codec.encode_request_with

    def decode(reply: bytes) -> Any:
        return_args, error = codec.decode_reply(reply)
        if error is not None:
            raise_for_error(error)
        if check_reply is not None:
            check_reply(return_args, where_reply)  # a peer may not validate its reply
        return return_args

    if middlewares:

        def send_with(
            args: Any, workflow_id: str, headers: dict[str, Any], timeout: Any, retries: int
        ) -> Any:
            frame = encode_request_with(dump(args, where), workflow_id, headers)
            return decode(outbound.request(conn, frame, workflow_id, timeout, retries))

        async def send_async(
            args: Any,
            workflow_id: str,
            headers: dict[str, Any],
            async_outbound: AsyncOutbound,
            timeout: float | None,
            retries: int,
        ) -> Any:
            frame = encode_request_with(dump(args, where), workflow_id, headers)
            return decode(await async_outbound.request(conn, frame, workflow_id, timeout, retries))

        observed = around_send(send_with, conn, middlewares)
        observed_async = around_send_async(send_async, conn, middlewares)

        def request(args: Any, workflow_id: str) -> Any:
            return observed(args, workflow_id, default_timeout, default_retries)

        async def request_async(
            async_outbound: AsyncOutbound,
            args: Any,
            workflow_id: str,
            timeout: float | None,
            retries: int,
        ) -> Any:
            return await observed_async(args, workflow_id, async_outbound, timeout, retries)

        return request, Requester(observed, request_async)

    def request_with(args: Any, workflow_id: str, timeout: float | None, retries: int) -> Any:
        frame = encode_request(dump(args, where), workflow_id)
        return decode(outbound.request(conn, frame, workflow_id, timeout, retries))

    async def plain_async(
        async_outbound: AsyncOutbound,
        args: Any,
        workflow_id: str,
        timeout: float | None,
        retries: int,
    ) -> Any:
        frame = encode_request(dump(args, where), workflow_id)
        return decode(await async_outbound.request(conn, frame, workflow_id, timeout, retries))

    def plain(args: Any, workflow_id: str) -> Any:  # request_with, inlined: hot
        frame = encode_request(dump(args, where), workflow_id)
        reply = outbound.request(conn, frame, workflow_id, default_timeout, default_retries)
        return_args, error = codec.decode_reply(reply)
        if error is not None:
            raise_for_error(error)
        if check_reply is not None:
            check_reply(return_args, where_reply)
        return return_args

    return plain, Requester(request_with, plain_async)


def _publisher(
    conn: Connection, outbound: Outbound, middlewares: Sequence[Middleware], pub: str
) -> Sender:
    prefix = codec.topic_prefix(conn.topic)
    encode_published, encode_published_with = codec.encode_published, codec.encode_published_with
    dump, fast_dump, where = conn.args.dump, conn.args.fast_dump, f"{conn.label} args"
    numbers = itertools.count(1)
    # Numbered and sent under one lock, so the numbers go out in order even when several
    # threads publish; it is also what keeps the PUB socket to one thread at a time.
    # acquire/release: half the cost of `with` on this path.
    acquire, release = (lock := threading.Lock()).acquire, lock.release

    if middlewares:

        def publish_with(args: Any, workflow_id: str, headers: dict[str, Any]) -> None:
            try:
                plain = fast_dump(args)
            except Exception:  # not valid: the explaining path says why
                plain = dump(args, where)
            acquire()
            try:
                frame = encode_published_with(plain, workflow_id, pub, next(numbers), headers)
                outbound.publish(conn, prefix + frame)
            finally:
                release()

        return around_send(publish_with, conn, middlewares)

    def publish(args: Any, workflow_id: str) -> None:
        try:
            plain = fast_dump(args)
        except Exception:  # not valid: the explaining path says why
            plain = dump(args, where)
        acquire()
        try:
            frame = encode_published(plain, workflow_id, pub, next(numbers))
            outbound.publish(conn, prefix + frame)
        finally:
            release()

    return publish


def _external(conn: Connection, outbound: Outbound, middlewares: Sequence[Middleware]) -> Sender:
    from .imports import import_string

    assert conn.returns is not None
    target = conn.target
    if isinstance(target, str):
        try:
            target = import_string(target)
        except Exception as exc:
            raise ConfigError(f"{conn.label}: cannot import target {target!r}: {exc}") from None
    if not callable(target):
        raise ConfigError(f"{conn.label}: target {target!r} is not callable")
    func = target
    dump_args, dump_return = conn.args.dump, conn.returns.dump
    where_args, where_return = f"{conn.label} args", f"{conn.label} return value"

    def call_external(args: Any, workflow_id: str, headers: Any = None) -> Any:
        result = outbound.call(conn, func, dump_args(args, where_args))
        return codec.decode(codec.encode(dump_return(result, where_return)))

    if middlewares:
        return around_send(call_external, conn, middlewares)
    return call_external
