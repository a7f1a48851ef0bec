"""The Dispatcher: one app's handlers over frames, driven sync or async; owns no socket.

The ZMQ runtime, the test client and the inline dispatcher all drive a `Dispatcher`; only
the `Outbound` under `to_send` differs. The per-message steps (decode, validate, encode,
error replies) are `inbound`'s and return values; the two drivers here call the handler
between them and differ only where the async one awaits, as httpx's `Client.send` and
`AsyncClient.send` do. Everything per connection (steps, call plans, senders) is built
once, so the per-message path only decodes, validates, calls and encodes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import codec, dispatch_async
from .connection import message_limit
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
from .middleware import GLOBAL, Middleware, around_inbound, around_inbound_async
from .replies import exception_text
from .senders import Requester, Sender, make_sender
from .sending import (
    DEFAULT,
    AsyncOutbound,
    Default,
    Outbound,
    ToSend,
    awaited,
    new_workflow_id,
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
        async_outbound: where awaited requests go (default: `outbound`, blocking).
        middlewares: the runtime's own, run after the app's (`App.middleware`).
    """

    def __init__(
        self,
        app: App,
        config: Any,
        outbound: Outbound,
        *,
        async_outbound: AsyncOutbound | None = None,
        middlewares: Sequence[Middleware] = (),
    ) -> None:
        self.app = app
        self.config = config
        self.outbound = outbound
        self.middlewares: tuple[Middleware, ...] = (*app.middlewares, *middlewares, *GLOBAL)
        """The app's middlewares, then the runtime's (metrics), then the global ones."""
        self._senders: dict[str, Sender] = {}
        self._requesters: dict[str, Requester] = {}
        self._description: Any = None
        self.stats: dict[str, SubscriberStats] = {}
        """Subscriber name -> its counters (messages received, missed ...)."""
        self.publisher_ids: dict[str, str] = {}
        """Publisher name -> the random ``pub`` id its messages carry in this run."""
        self._root: ToSend | None = None
        self.async_outbound: AsyncOutbound = async_outbound or awaited(outbound)
        """Where `await to_send(...)` requests go: the asyncio runtime's, or `outbound`."""
        for conn in app.connections.values():
            if conn.side == "out":
                send, requester, pub = make_sender(conn, outbound, self.middlewares)
                self._senders[conn.name] = send
                if requester is not None:
                    self._requesters[conn.name] = requester
                if pub is not None:
                    self.publisher_ids[conn.name] = pub

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

        return timed(
            around_inbound(reply, conn, self.middlewares, self._limit(conn)),
            conn.label,
            workflow_of,
        )

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

        return timed(
            around_inbound(receive, conn, self.middlewares, self._limit(conn)),
            conn.label,
            workflow_of,
        )

    # -- inbound: the async driver (`dispatch_async`), the same but for `await` -------------

    def replier_async(self, conn: Connection) -> Callable[[bytes], Awaitable[bytes]]:
        """Build the async frame -> reply-frame function for a replyer; it never raises.

        An ``async def`` handler is awaited with an `AsyncToSend`; a sync one runs in a
        worker thread (`asyncio.to_thread`) with a sync `ToSend`, so it never blocks the loop.
        """
        assert conn.handler is not None
        steps = self._reply_steps(conn)
        reply = dispatch_async.replier(steps, dispatch_async.runner(self, conn.handler))
        reply = around_inbound_async(reply, conn, self.middlewares, self._limit(conn))
        return timed_async(reply, conn.label, steps.workflow_of)

    def receiver_async(self, conn: Connection) -> Callable[[bytes], Awaitable[Exception | None]]:
        """Build the async frame -> handler function for a subscriber (see `replier_async`)."""
        assert conn.handler is not None
        steps = self._subscriber_steps(conn)
        receive = dispatch_async.receiver(steps, dispatch_async.runner(self, conn.handler))
        receive = around_inbound_async(receive, conn, self.middlewares, self._limit(conn))
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
        return self._requesters[name].request_with(args, workflow_id, timeout, retries)

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
        requester = self._requesters.get(name)
        if requester is None:
            return self.send(name, args, workflow_id, timeout=timeout, retries=retries)
        options = request_options(self.app.connections[name], timeout, retries)
        return await requester.request_async(self.async_outbound, args, workflow_id, *options)

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
