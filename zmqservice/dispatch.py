"""The Dispatcher: one app's handlers over frames, driven sync or async; owns no socket.

The ZMQ runtime, the test client and the inline dispatcher all drive a `Dispatcher`; only
the `Outbound` under `to_send` differs. The per-message steps (decode, validate, encode,
error replies) are `inbound`'s and return values; the two drivers here call the handler
between them and differ only where the async one awaits, as httpx's `Client.send` and
`AsyncClient.send` do. Everything per connection (steps, call plans, senders) is built
once, so the per-message path only decodes, validates, calls and encodes.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import codec, dispatch_async
from .connection import message_limit
from .errors import ConfigError
from .inbound import (
    ReplySteps,
    SubscriberSteps,
    reply_steps,
    subscriber_steps,
    timed,
    timed_async,
)
from .invoke import handler_call, hook_invoker
from .log import WORKFLOW_ID
from .replies import exception_text
from .sending import (
    DEFAULT,
    AsyncOutbound,
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

    # -- inbound: the sync driver ----------------------------------------------------------

    def replier(self, conn: Connection) -> Callable[[bytes], bytes]:
        """Build the frame -> reply-frame function for a replyer; it never raises."""
        assert conn.handler is not None
        accept, finish, fail, workflow_of = self._reply_steps(conn)
        call, needs_context = handler_call(conn.handler)
        config, reset = self.config, WORKFLOW_ID.reset

        def reply(frame: bytes) -> bytes:
            accepted = accept(frame)
            if isinstance(accepted, bytes):
                return accepted  # an error reply: the handler is not reached
            value, workflow_id, token = accepted
            try:
                try:
                    if needs_context:
                        result = call(value, ToSend(self, workflow_id), config)
                    else:
                        result = call(value)
                except Exception as exc:
                    return fail(exc, workflow_id)
                return finish(result, workflow_id)
            finally:
                reset(token)

        return timed(reply, conn.label, workflow_of)

    def receiver(self, conn: Connection) -> Callable[[bytes], Exception | None]:
        """Build the frame -> handler function for a subscriber; returns the error, if any."""
        assert conn.handler is not None
        accept, fail, workflow_of = self._subscriber_steps(conn)
        call, needs_context = handler_call(conn.handler)
        config, reset = self.config, WORKFLOW_ID.reset

        def receive(frame: bytes) -> Exception | None:
            accepted = accept(frame)
            if isinstance(accepted, Exception):
                return accepted  # dropped: the handler is not reached
            value, workflow_id, token = accepted
            try:
                if needs_context:
                    call(value, ToSend(self, workflow_id), config)
                else:
                    call(value)
            except Exception as exc:
                return fail(exc)
            finally:
                reset(token)
            return None

        return timed(receive, conn.label, workflow_of)

    # -- inbound: the async driver (`dispatch_async`), the same but for `await` -------------

    def replier_async(self, conn: Connection) -> Callable[[bytes], Awaitable[bytes]]:
        """Build the async frame -> reply-frame function for a replyer; it never raises.

        An ``async def`` handler is awaited with an `AsyncToSend`; a sync one runs in a
        worker thread (`asyncio.to_thread`) with a sync `ToSend`, so it never blocks the loop.
        """
        assert conn.handler is not None
        steps = self._reply_steps(conn)
        reply = dispatch_async.replier(steps, dispatch_async.runner(self, conn.handler))
        return timed_async(reply, conn.label, steps.workflow_of)

    def receiver_async(self, conn: Connection) -> Callable[[bytes], Awaitable[Exception | None]]:
        """Build the async frame -> handler function for a subscriber (see `replier_async`)."""
        assert conn.handler is not None
        steps = self._subscriber_steps(conn)
        receive = dispatch_async.receiver(steps, dispatch_async.runner(self, conn.handler))
        return timed_async(receive, conn.label, steps.workflow_of)

    def _reply_steps(self, conn: Connection) -> ReplySteps:
        return reply_steps(conn, self._limit(conn), self._describe_reply)

    def _subscriber_steps(self, conn: Connection) -> SubscriberSteps:
        stats = self.stats.setdefault(conn.name, SubscriberStats())
        return subscriber_steps(conn, self._limit(conn), stats)

    def _limit(self, conn: Connection) -> int:
        return message_limit(self.app, conn) or sys.maxsize

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
        return await dispatch_async.run_hook(self, hook, *extra)
