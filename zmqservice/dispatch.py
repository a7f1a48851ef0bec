"""The IO-free dispatch core: frames in, handlers called, frames out.

The ZMQ runtime, the test client and the inline dispatcher all drive a `Dispatcher`; only
the `Outbound` transport under `to_send` differs. Everything per connection (models,
handler call plans, topic prefixes) is built once here, so the per-message path only
decodes, validates, calls and encodes.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import secrets
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import codec
from .connection import message_limit
from .errors import ConfigError, DecodeError, ValidationError
from .invoke import handler_call, hook_invoker
from .log import WORKFLOW_ID
from .replies import (
    exception_text,
    handler_failed,
    invalid_args,
    refused,
    rejected,
    too_large,
    unencodable,
)
from .sending import (
    DEFAULT,
    AsyncOutbound,
    AsyncToSend,
    Default,
    Outbound,
    ToSend,
    awaited,
    new_workflow_id,
    raise_for_error,
    request_options,
)
from .stats import SubscriberStats

if TYPE_CHECKING:
    from .app import App
    from .connection import Connection

__all__ = ["Dispatcher"]

LOG = logging.getLogger("zmqservice.dispatch")
NO_SEQ = -(1 << 64)
"""Below any msgpack int: the "last number seen" of a publisher not seen yet."""


class Dispatcher:
    """Runs one app's handlers over frames; owns no sockets.

    Args:
        app: the service.
        config: the validated config handlers receive.
        outbound: where requester and publisher frames go.
    """

    def __init__(
        self,
        app: App,
        config: Any,
        outbound: Outbound,
        *,
        async_outbound: AsyncOutbound | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self.outbound = outbound
        self._senders: dict[str, Callable[[Any, str], Any]] = {}
        self._requesters: dict[str, Callable[[Any, str, float | None, int], Any]] = {}
        self._description: Any = None
        self.stats: dict[str, SubscriberStats] = {}
        """Subscriber name -> its counters (messages received, missed ...)."""
        self.publisher_ids: dict[str, str] = {}
        """Publisher name -> the random ``pub`` id its messages carry in this run."""
        self._root: ToSend | None = None
        self.async_outbound: AsyncOutbound = async_outbound or awaited(outbound)
        """Where `await to_send(...)` requests go: the asyncio runtime's, or `outbound`."""
        self._request_codecs: dict[str, tuple[Callable[..., bytes], Callable[[bytes], Any]]] = {}
        for conn in app.connections.values():
            if conn.side == "out":
                self._senders[conn.name] = self._make_sender(conn)

    @property
    def senders(self) -> Mapping[str, Callable[[Any, str], Any]]:
        """Out-connection name -> its sender ``(args, workflow_id) -> reply or None``."""
        return self._senders

    # -- inbound ----------------------------------------------------------------------------

    def replier(self, conn: Connection) -> Callable[[bytes], bytes]:
        """Build the frame -> reply-frame function for a replyer; it never raises."""
        assert conn.handler is not None
        return self._replier(conn, *handler_call(conn.handler))

    def replier_async(self, conn: Connection) -> Callable[[bytes], Awaitable[bytes]]:
        """Build the async frame -> reply-frame function for a replyer; it never raises.

        Decoding and validation are the sync replier's own (run up to the handler call);
        an ``async def`` handler is awaited with an `AsyncToSend`, a sync one runs in a
        worker thread (`asyncio.to_thread`) with a sync `ToSend`, so it never blocks the loop.
        """
        assert conn.handler is not None and conn.returns is not None
        prepare = self._replier(conn, _capture, True, timed=False)
        run = self._async_call(conn.handler)
        dump, where_return, label = conn.returns.dump, f"{conn.label} return value", conn.label

        async def reply(frame: bytes) -> bytes:
            try:
                return prepare(frame)  # an error reply: the handler is not reached
            except _Captured as captured:
                value, workflow_id = captured.value, captured.workflow_id
            token = WORKFLOW_ID.set(workflow_id)
            try:
                try:
                    result = await run(value, workflow_id)
                except Exception as exc:
                    return handler_failed(label, exc, workflow_id)
                try:
                    return codec.encode_reply(dump(result, where_return), workflow_id)
                except Exception as exc:
                    return unencodable(label, exc, workflow_id)
            finally:
                WORKFLOW_ID.reset(token)

        return reply

    def receiver_async(self, conn: Connection) -> Callable[[bytes], Awaitable[Exception | None]]:
        """Build the async frame -> handler function for a subscriber (see `replier_async`)."""
        assert conn.handler is not None
        prepare = self._receiver(conn, _capture, True, timed=False)
        run = self._async_call(conn.handler)
        stats, label = self.stats[conn.name], conn.label

        async def receive(frame: bytes) -> Exception | None:
            try:
                return prepare(frame)  # dropped: the handler is not reached
            except _Captured as captured:
                value, workflow_id = captured.value, captured.workflow_id
            token = WORKFLOW_ID.set(workflow_id)
            try:
                await run(value, workflow_id)
            except Exception as exc:
                stats.failed += 1
                LOG.exception("%s: handler raised", label)
                return exc
            finally:
                WORKFLOW_ID.reset(token)
            return None

        return receive

    def _async_call(self, fn: Callable[..., Any]) -> Callable[[Any, str], Awaitable[Any]]:
        """Plan an async-mode handler call: awaited on the loop, or a sync one in a thread."""
        import asyncio  # async apps only: `import zmqservice` stays free of asyncio

        call, needs_context = handler_call(fn)
        config = self.config
        if inspect.iscoroutinefunction(fn):

            async def run_coroutine(value: Any, workflow_id: str) -> Any:
                if needs_context:
                    return await call(value, AsyncToSend(self, workflow_id), config)
                return await call(value)

            return run_coroutine

        async def run_in_thread(value: Any, workflow_id: str) -> Any:
            if needs_context:
                return await asyncio.to_thread(call, value, ToSend(self, workflow_id), config)
            return await asyncio.to_thread(call, value)

        return run_in_thread

    def _replier(
        self, conn: Connection, call: Callable[..., Any], needs_context: bool, *, timed: bool = True
    ) -> Callable[[bytes], bytes]:
        assert conn.returns is not None
        load, dump = conn.args.load, conn.returns.dump
        fast_load = conn.args.fast_load
        where_args, where_return = f"{conn.label} args", f"{conn.label} return value"
        label, config = conn.label, self.config
        encode_reply, decode_request = codec.encode_reply, codec.decode_request
        limit = message_limit(self.app, conn) or sys.maxsize

        def reply(frame: bytes) -> bytes:
            if len(frame) > limit:  # refused unread: the request's workflow_id is unknown
                return refused(label, len(frame), limit)
            try:
                args, workflow_id = decode_request(frame)
            except codec.DescribeRequest as request:
                return self._describe_reply(request.workflow_id)
            except DecodeError as exc:
                return rejected(label, exc)
            workflow_id = workflow_id or new_workflow_id()
            token = WORKFLOW_ID.set(workflow_id)
            try:
                try:
                    try:
                        value = fast_load(args)
                    except Exception:  # not valid: the explaining path says why
                        value = load(args, where_args)
                except Exception as exc:
                    return invalid_args(where_args, exc, workflow_id)
                try:
                    if needs_context:
                        result = call(value, ToSend(self, workflow_id), config)
                    else:
                        result = call(value)
                except Exception as exc:
                    return handler_failed(label, exc, workflow_id)
                try:
                    return encode_reply(dump(result, where_return), workflow_id)
                except Exception as exc:
                    return unencodable(label, exc, workflow_id)
            finally:
                WORKFLOW_ID.reset(token)

        if timed and LOG.isEnabledFor(logging.DEBUG):  # decided once: no cost when off
            return _timed(reply, label, _reply_workflow_id)
        return reply

    def receiver(self, conn: Connection) -> Callable[[bytes], Exception | None]:
        """Build the frame -> handler function for a subscriber; returns the error, if any."""
        assert conn.handler is not None
        return self._receiver(conn, *handler_call(conn.handler))

    def _receiver(
        self, conn: Connection, call: Callable[..., Any], needs_context: bool, *, timed: bool = True
    ) -> Callable[[bytes], Exception | None]:
        load, fast_load = conn.args.load, conn.args.fast_load
        where_args, label, config = f"{conn.label} args", conn.label, self.config
        prefix = codec.topic_prefix(conn.topic)
        decode_publication = codec.decode_publication
        limit = message_limit(self.app, conn) or sys.maxsize
        stats = self.stats.setdefault(conn.name, SubscriberStats())
        last_seq = stats.last_seq

        def receive(frame: bytes) -> Exception | None:
            stats.received += 1
            if len(frame) > limit:
                stats.dropped += 1
                LOG.warning(
                    "%s: dropped a message of %d bytes (limit %d)", label, len(frame), limit
                )
                return DecodeError(too_large(label, len(frame), limit))
            try:
                args, workflow_id, pub, seq = decode_publication(frame, prefix)
            except DecodeError as exc:
                stats.dropped += 1
                LOG.warning("%s: dropped a message: %s", label, exc)
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
                if needs_context:
                    call(value, ToSend(self, workflow_id), config)
                else:
                    call(value)
            except ValidationError as exc:
                stats.dropped += 1
                LOG.warning("%s", exc)
                return exc
            except Exception as exc:
                stats.failed += 1
                LOG.exception("%s: handler raised", label)
                return exc
            finally:
                WORKFLOW_ID.reset(token)
            return None

        if timed and LOG.isEnabledFor(logging.DEBUG):
            return _timed(receive, label, _published_workflow_id(prefix))
        return receive

    def _describe_reply(self, workflow_id: str) -> bytes:
        """Answer the built-in describe request: the app's connections and their schemas."""
        if not self.app.describe:
            message = f"App {self.app.name!r} does not answer describe requests (describe=False)"
            return codec.encode_error("DecodeError", message, workflow_id)
        try:
            if self._description is None:
                from .describe import describe_app

                self._description = describe_app(self.app)
            return codec.encode_reply(self._description, workflow_id)
        except Exception as exc:  # a replyer never raises
            LOG.exception("cannot describe App %r", self.app.name)
            return codec.encode_error("HandlerError", exception_text(exc), workflow_id)

    # -- outbound ---------------------------------------------------------------------------

    def send(
        self,
        name: str,
        args: Any,
        workflow_id: str,
        *,
        timeout: float | Default | None = DEFAULT,
        retries: int | Default = DEFAULT,
    ) -> Any:
        """Validate `args`, send them on out-connection `name`, return the reply (or None).

        `timeout` and `retries` override a requester's own for this call.

        Raises:
            ValueError: no such out-connection, or a bad `timeout` / `retries`.
            TypeError: `timeout` or `retries` given for a connection that is no requester.
        """
        sender = self._senders.get(name)
        if sender is None:
            known = ", ".join(sorted(self._senders)) or "none"
            raise ValueError(
                f"App {self.app.name!r} has no out-connection named {name!r} "
                f"(out-connections: {known})"
            )
        if timeout is DEFAULT and retries is DEFAULT:
            return sender(args, workflow_id)
        timeout, retries = request_options(self.app.connections[name], timeout, retries)
        return self._requesters[name](args, workflow_id, timeout, retries)

    async def send_async(
        self,
        name: str,
        args: Any,
        workflow_id: str,
        *,
        timeout: float | Default | None = DEFAULT,
        retries: int | Default = DEFAULT,
    ) -> Any:
        """`send` for async code: a requester's reply is awaited on `async_outbound`.

        Publishers and external targets are called as `send` calls them.
        """
        codecs = self._request_codecs.get(name)
        if codecs is None:
            return self.send(name, args, workflow_id, timeout=timeout, retries=retries)
        conn = self.app.connections[name]
        options = request_options(conn, timeout, retries)
        encode, decode = codecs
        frame = encode(args, workflow_id)
        return decode(await self.async_outbound.request(conn, frame, workflow_id, *options))

    def _make_sender(self, conn: Connection) -> Callable[[Any, str], Any]:
        dump, where = conn.args.dump, f"{conn.label} args"
        outbound = self.outbound
        if conn.kind == "requester":
            assert conn.returns is not None
            returns = conn.returns
            check_reply = None if returns.is_any else returns.load
            where_reply = f"{conn.label} reply"

            default_timeout, default_retries = conn.timeout, conn.retries

            def encode(args: Any, workflow_id: str) -> bytes:
                return codec.encode_request(dump(args, where), workflow_id)

            def decode(reply: bytes) -> Any:
                return_args, error = codec.decode_reply(reply)
                if error is not None:
                    raise_for_error(error)
                if check_reply is not None:
                    check_reply(return_args, where_reply)  # a peer may not validate its reply
                return return_args

            def request_with(
                args: Any, workflow_id: str, timeout: float | None, retries: int
            ) -> Any:
                frame = encode(args, workflow_id)
                return decode(outbound.request(conn, frame, workflow_id, timeout, retries))

            self._request_codecs[conn.name] = (encode, decode)

            def request(args: Any, workflow_id: str) -> Any:  # request_with, inlined: hot
                frame = codec.encode_request(dump(args, where), workflow_id)
                reply = outbound.request(conn, frame, workflow_id, default_timeout, default_retries)
                return_args, error = codec.decode_reply(reply)
                if error is not None:
                    raise_for_error(error)
                if check_reply is not None:
                    check_reply(return_args, where_reply)
                return return_args

            self._requesters[conn.name] = request_with
            return request
        if conn.kind == "publisher":
            prefix = codec.topic_prefix(conn.topic)
            encode_published = codec.encode_published
            pub, numbers = secrets.token_hex(6), itertools.count(1)
            self.publisher_ids[conn.name] = pub
            # Numbered and sent under one lock, so the numbers go out in order even when
            # several threads publish; it is also what keeps the PUB socket to one thread at
            # a time. acquire/release: half the cost of `with` on this path.
            acquire, release = (lock := threading.Lock()).acquire, lock.release

            fast_dump = conn.args.fast_dump

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
        return self._make_external(conn)

    def _make_external(self, conn: Connection) -> Callable[[Any, str], Any]:
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

        outbound = self.outbound

        def call_external(args: Any, workflow_id: str) -> Any:
            result = outbound.call(conn, func, dump_args(args, where_args))
            return codec.decode(codec.encode(dump_return(result, where_return)))

        return call_external

    # -- hooks ------------------------------------------------------------------------------

    @property
    def root_sender(self) -> ToSend:
        """The run's `to_send` for work that did not arrive as a message.

        `main`, `init`, the signal hooks and `app.send` share it: one fresh workflow id X
        per run, their calls numbered X_1, X_2, ...
        """
        if self._root is None:
            self._root = ToSend(self, new_workflow_id())
        return self._root

    def run_hook(self, hook: str, *extra: Any) -> Any:
        """Call hook `main` / `init` (no extra) or `on_sigint` / `on_sigterm` (signum, frame)."""
        fn = self.app.hooks.get(hook)
        if fn is None:
            return None
        to_send = self.root_sender
        token = WORKFLOW_ID.set(to_send.workflow_id)
        try:
            return hook_invoker(fn, extra)(*extra, to_send, self.config)
        finally:
            WORKFLOW_ID.reset(token)

    async def run_hook_async(self, hook: str, *extra: Any) -> Any:
        """`run_hook` for async mode: an ``async def`` hook is awaited with an `AsyncToSend`.

        A sync hook runs in a worker thread (`asyncio.to_thread`), like sync handlers.
        """
        fn = self.app.hooks.get(hook)
        if fn is None:
            return None
        if not inspect.iscoroutinefunction(fn):
            import asyncio

            return await asyncio.to_thread(self.run_hook, hook, *extra)
        to_send = AsyncToSend.sharing(self.root_sender)  # one numbering per run
        token = WORKFLOW_ID.set(to_send.workflow_id)
        try:
            return await hook_invoker(fn, extra)(*extra, to_send, self.config)
        finally:
            WORKFLOW_ID.reset(token)


class _Captured(BaseException):
    """Carries validated args out of a sync frame function to the async handler call.

    A BaseException, so the frame function's ``except Exception`` clauses let it through.
    """

    def __init__(self, value: Any, workflow_id: str) -> None:
        self.value, self.workflow_id = value, workflow_id


def _capture(value: Any, to_send: ToSend, config: Any) -> Any:
    raise _Captured(value, to_send.workflow_id)


def _timed(
    handle: Callable[[bytes], Any], label: str, workflow_of: Callable[[bytes, Any], str]
) -> Callable[[bytes], Any]:
    """Wrap a frame handler to log one DEBUG line per message: connection, workflow_id, µs."""
    clock = time.perf_counter_ns

    def timed(frame: bytes) -> Any:
        start = clock()
        result = handle(frame)
        micros = (clock() - start) / 1000
        workflow_id = workflow_of(frame, result)
        LOG.debug(
            "%s: workflow_id %s handled in %.1f µs",
            label,
            workflow_id or "-",
            micros,
            extra={"workflow_id": workflow_id},
        )
        return result

    return timed


def _reply_workflow_id(frame: bytes, reply: bytes) -> str:
    try:
        envelope = codec.decode(reply)
    except DecodeError:
        return ""
    workflow_id = envelope.get("workflow_id") if isinstance(envelope, dict) else None
    return workflow_id if isinstance(workflow_id, str) else ""


def _published_workflow_id(prefix: bytes) -> Callable[[bytes, Any], str]:
    def workflow_of(frame: bytes, result: Any) -> str:
        try:
            return codec.decode_published(frame, prefix)[1]
        except DecodeError:
            return ""  # a message that came without one shows as "-"

    return workflow_of
