"""The IO-free dispatch core: frames in, handlers called, frames out.

The ZMQ runtime, the test client and the inline dispatcher all drive a `Dispatcher`; only
the `Outbound` transport under `to_send` differs. Everything per connection (models,
handler call plans, topic prefixes) is built once here, so the per-message path only
decodes, validates, calls and encodes.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from . import codec
from .errors import ConfigError, DecodeError, RemoteError, RemoteValidationError, ValidationError
from .log import WORKFLOW_ID

if TYPE_CHECKING:
    from .app import App, Connection

__all__ = ["Dispatcher", "Outbound", "ToSend", "new_workflow_id"]

LOG = logging.getLogger("zmqservice.dispatch")
INJECTED = ("to_send", "config", "signum", "frame")

Invoke = Callable[[Any, Callable[[], "ToSend"], Any], Any]


class Outbound(Protocol):
    """Where `to_send` frames go: sockets, test stubs or in-process services."""

    def request(self, conn: Connection, frame: bytes) -> bytes:
        """Deliver a request frame and return the reply frame."""

    def publish(self, conn: Connection, frame: bytes) -> None:
        """Deliver a published frame (topic prefix included)."""


def new_workflow_id() -> str:
    """A fresh workflow id for work that did not come with one."""
    return str(uuid.uuid4())


class ToSend:
    """The `to_send(name, args)` handed to handlers; numbers onward calls X_1, X_2, ..."""

    __slots__ = ("_count", "_dispatcher", "_senders", "workflow_id")

    def __init__(self, dispatcher: Dispatcher, workflow_id: str) -> None:
        self._dispatcher = dispatcher
        self._senders = dispatcher._senders
        self.workflow_id = workflow_id
        self._count = 0

    def __call__(self, name: str, args: Any) -> Any:
        self._count += 1
        sender = self._senders.get(name)
        if sender is None:
            return self._dispatcher.send(name, args, "")  # raises, naming the connection
        return sender(args, f"{self.workflow_id}_{self._count}")


def _call_plan(fn: Callable[..., Any], leading: tuple[str, ...]) -> tuple[bool, set[str], bool]:
    """Decide how to call `fn`: (takes args first, names to inject, pass positionally)."""
    params = list(inspect.signature(fn).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = {p.name for p in params}
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    wanted = {n for n in INJECTED if n in names or has_var_kw}
    takes_args = "args" in leading and bool(positional) and positional[0].name not in INJECTED
    # A predecessor-style handler with other parameter names (`fn(a, b, c)`, or
    # `fn(args, to_send, conf)` where injecting by name would leave `conf` empty) gets
    # everything positionally.
    rest = positional[1:] if takes_args else positional
    unfilled = any(p.default is p.empty and p.name not in wanted for p in rest)
    by_position = len(positional) >= len(leading) > 0 and (unfilled or not wanted & set(leading))
    return takes_args, wanted, by_position


def make_invoker(fn: Callable[..., Any], leading: tuple[str, ...]) -> Callable[..., Any]:
    """Build, once, a caller that injects `leading` values into `fn` by name.

    `leading` lists what the call site offers, in the predecessor's positional order:
    ``("args", "to_send", "config")`` for handlers, ``("to_send", "config")`` for main.
    """
    takes_args, wanted, by_position = _call_plan(fn, leading)
    if by_position:
        return fn
    offered = [n for n in leading if n != "args" and n in wanted]
    if "args" not in leading:

        def call_hook(*values: Any) -> Any:
            return fn(**{n: v for n, v in zip(leading, values, strict=False) if n in offered})

        return call_hook
    send_wanted, config_wanted = "to_send" in offered, "config" in offered

    def call(args: Any, to_send: Any, config: Any) -> Any:
        kwargs: dict[str, Any] = {}
        if send_wanted:
            kwargs["to_send"] = to_send
        if config_wanted:
            kwargs["config"] = config
        return fn(args, **kwargs) if takes_args else fn(**kwargs)

    return call


def handler_call(fn: Callable[..., Any]) -> tuple[Callable[..., Any], bool]:
    """Plan a message handler's call once: `(call, needs_context)`.

    With `needs_context` False, `call(args)` is the handler itself, the cheapest call there
    is; otherwise it is `call(args, to_send, config)`.
    """
    takes_args, wanted, by_position = _call_plan(fn, ("args", "to_send", "config"))
    if not by_position and takes_args and not wanted & {"to_send", "config"}:
        return fn, False
    return make_invoker(fn, ("args", "to_send", "config")), True


def raise_for_error(error: dict[str, str]) -> None:
    """Raise what a requester raises for an error reply."""
    if error["type"] == "ValidationError":
        raise RemoteValidationError(error["type"], error["message"])
    raise RemoteError(error["type"], error["message"])


class Dispatcher:
    """Runs one app's handlers over frames; owns no sockets.

    Args:
        app: the service.
        config: the validated config handlers receive.
        outbound: where requester and publisher frames go.
    """

    def __init__(self, app: App, config: Any, outbound: Outbound) -> None:
        self.app = app
        self.config = config
        self.outbound = outbound
        self._senders: dict[str, Callable[[Any, str], Any]] = {}
        self._description: Any = None
        for conn in app.connections.values():
            if conn.side == "out":
                self._senders[conn.name] = self._make_sender(conn)

    # -- inbound ----------------------------------------------------------------------------

    def replier(self, conn: Connection) -> Callable[[bytes], bytes]:
        """Build the frame -> reply-frame function for a replyer; it never raises."""
        assert conn.handler is not None and conn.returns is not None
        load, dump = conn.args.load, conn.returns.dump
        call, needs_context = handler_call(conn.handler)
        where_args, where_return = f"{conn.label} args", f"{conn.label} return value"
        label, config = conn.label, self.config
        encode_reply, encode_error, decode_request = (
            codec.encode_reply,
            codec.encode_error,
            codec.decode_request,
        )

        def reply(frame: bytes) -> bytes:
            try:
                args, workflow_id = decode_request(frame)
            except DecodeError as exc:
                LOG.warning("%s: rejected a message: %s", label, exc)
                return encode_error("DecodeError", str(exc), "")
            except codec.DescribeRequest as request:
                return self._describe_reply(request.workflow_id)
            workflow_id = workflow_id or new_workflow_id()
            token = WORKFLOW_ID.set(workflow_id)
            try:
                try:
                    value = load(args, where_args)
                except ValidationError as exc:
                    LOG.warning("%s", exc)
                    return encode_error("ValidationError", str(exc), workflow_id)
                try:
                    if needs_context:
                        result = call(value, ToSend(self, workflow_id), config)
                    else:
                        result = call(value)
                except Exception as exc:
                    LOG.exception("%s: handler raised", label)
                    return encode_error("HandlerError", _describe(exc), workflow_id)
                try:
                    return encode_reply(dump(result, where_return), workflow_id)
                except ValidationError as exc:
                    LOG.error("%s", exc)
                    return encode_error("ValidationError", str(exc), workflow_id)
                except (TypeError, ValueError, OverflowError) as exc:
                    LOG.error("%s: cannot encode the return value: %s", label, exc)
                    message = f"{label}: cannot encode the return value: {exc}"
                    return encode_error("HandlerError", message, workflow_id)
            finally:
                WORKFLOW_ID.reset(token)

        return reply

    def receiver(self, conn: Connection) -> Callable[[bytes], Exception | None]:
        """Build the frame -> handler function for a subscriber; returns the error, if any."""
        assert conn.handler is not None
        load = conn.args.load
        call, needs_context = handler_call(conn.handler)
        where_args, label, config = f"{conn.label} args", conn.label, self.config
        prefix = codec.topic_prefix(conn.topic)
        decode_published = codec.decode_published

        def receive(frame: bytes) -> Exception | None:
            try:
                args, workflow_id = decode_published(frame, prefix)
            except DecodeError as exc:
                LOG.warning("%s: dropped a message: %s", label, exc)
                return exc
            workflow_id = workflow_id or new_workflow_id()
            token = WORKFLOW_ID.set(workflow_id)
            try:
                value = load(args, where_args)
                if needs_context:
                    call(value, ToSend(self, workflow_id), config)
                else:
                    call(value)
            except ValidationError as exc:
                LOG.warning("%s", exc)
                return exc
            except Exception as exc:
                LOG.exception("%s: handler raised", label)
                return exc
            finally:
                WORKFLOW_ID.reset(token)
            return None

        return receive

    def _describe_reply(self, workflow_id: str) -> bytes:
        """Answer the built-in describe request: the app's connections and their schemas."""
        if not self.app.describe:
            message = f"App {self.app.name!r} does not answer describe requests (describe=False)"
            return codec.encode_error("DecodeError", message, workflow_id)
        if self._description is None:
            from .describe import describe_app

            self._description = describe_app(self.app)
        return codec.encode_reply(self._description, workflow_id)

    # -- outbound ---------------------------------------------------------------------------

    def send(self, name: str, args: Any, workflow_id: str) -> Any:
        """Validate `args`, send them on out-connection `name`, return the reply (or None)."""
        sender = self._senders.get(name)
        if sender is None:
            known = ", ".join(sorted(self._senders)) or "none"
            raise ValueError(
                f"App {self.app.name!r} has no out-connection named {name!r} "
                f"(out-connections: {known})"
            )
        return sender(args, workflow_id)

    def _make_sender(self, conn: Connection) -> Callable[[Any, str], Any]:
        dump, where = conn.args.dump, f"{conn.label} args"
        outbound = self.outbound
        if conn.kind == "requester":
            assert conn.returns is not None
            returns = conn.returns
            check_reply = None if returns.is_any else returns.load
            where_reply = f"{conn.label} reply"

            def request(args: Any, workflow_id: str) -> Any:
                frame = codec.encode_request(dump(args, where), workflow_id)
                return_args, error = codec.decode_reply(outbound.request(conn, frame))
                if error is not None:
                    raise_for_error(error)
                if check_reply is not None:
                    check_reply(return_args, where_reply)  # a peer may not validate its reply
                return return_args

            return request
        if conn.kind == "publisher":
            prefix = codec.topic_prefix(conn.topic)

            def publish(args: Any, workflow_id: str) -> None:
                outbound.publish(
                    conn, prefix + codec.encode_request(dump(args, where), workflow_id)
                )

            return publish
        return self._make_external(conn)

    def _make_external(self, conn: Connection) -> Callable[[Any, str], Any]:
        from .loading import import_string

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

        def call_external(args: Any, workflow_id: str) -> Any:
            plain = dump_args(args, where_args)
            result = func(**plain) if isinstance(plain, dict) else func(plain)
            return codec.decode(codec.encode(dump_return(result, where_return)))

        return call_external

    # -- hooks ------------------------------------------------------------------------------

    def root_sender(self, workflow_id: str | None = None) -> ToSend:
        """A `to_send` for work that did not arrive as a message (main, init, hooks)."""
        return ToSend(self, workflow_id or new_workflow_id())

    def run_hook(self, hook: str, *extra: Any) -> Any:
        """Call hook `main` / `init` (no extra) or `on_sigint` / `on_sigterm` (signum, frame)."""
        fn = self.app.hooks.get(hook)
        if fn is None:
            return None
        to_send = self.root_sender()
        token = WORKFLOW_ID.set(to_send.workflow_id)
        try:
            if extra:
                call = make_invoker(fn, ("signum", "frame", "to_send", "config"))
                return call(*extra, to_send, self.config)
            return make_invoker(fn, ("to_send", "config"))(to_send, self.config)
        finally:
            WORKFLOW_ID.reset(token)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
