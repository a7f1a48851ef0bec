"""Middleware: code around every inbound message and every outbound send.

A middleware is a callable that takes a `Message` and returns a context manager, so a
generator under `contextlib.contextmanager` is one::

    @app.middleware
    @contextmanager
    def timing(message):
        yield
        print(message.connection.name, message.outcome, f"{message.duration * 1e6:.0f} µs")

It is entered before the message is handled (or sent) and exited after, when
`Message.outcome` and `Message.duration` are set; the handler's (or the send's) exceptions
never pass through it, so it reads what happened instead of catching it. Middlewares are
entered in the order they were added (the first is the outermost) and exited in reverse.
One that raises is logged and skipped: it never costs a message.

With none registered the frame functions are exactly what they were: whether to observe is
decided once, when they are built (`Dispatcher`), not per message.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import DecodeError, RemoteError, RequestTimeout, ValidationError
from .replies import ErrorReply, TooLarge

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "GLOBAL",
    "Message",
    "Middleware",
    "add_global",
    "outcome_of",
    "remove_global",
]

LOG = logging.getLogger("zmqservice.middleware")
T = TypeVar("T")


class Message:
    """One inbound message or outbound send, as a middleware sees it.

    Attributes:
        connection: the `Connection` (``.name``, ``.kind``, ``.topic`` ...).
        outcome: None while it runs; then, inbound: ``ok``, ``validation_error``,
            ``decode_error``, ``handler_error``, ``too_large``; outbound: ``ok``,
            ``validation_error`` (args that do not fit, or a reply that does not),
            ``remote_error`` (an error reply), ``timeout``, ``decode_error`` (a reply that
            does not decode) or ``error`` (anything else, such as an external target that
            raised).
        error: the failure's type name (``"ZeroDivisionError"``, ``"RequestTimeout"``,
            an error reply's ``"HandlerError"``), None on success.
        duration: seconds from just after the middlewares were entered to just before
            they are exited (the handler, or the send and its reply).
    """

    __slots__ = ("_frame", "_headers", "_workflow_id", "connection", "duration", "error", "outcome")

    def __init__(
        self,
        connection: Connection,
        workflow_id: str | None = None,
        frame: bytes = b"",
        headers: dict[str, Any] | None = None,
    ) -> None:
        self.connection = connection
        self._workflow_id = workflow_id
        self._frame = frame
        self._headers = headers
        self.outcome: str | None = None
        self.error: str | None = None
        self.duration = 0.0

    @property
    def inbound(self) -> bool:
        """True for a message a replyer or subscriber received."""
        return self.connection.side == "in"

    @property
    def workflow_id(self) -> str:
        """The message's workflow id ("" when an inbound one came without a readable one)."""
        if self._workflow_id is None:
            self._read_envelope()
        return self._workflow_id or ""

    @property
    def headers(self) -> dict[str, Any]:
        """The envelope's optional keys (``trace``, ``seq``, ``pub`` ...).

        Inbound: what the sender put there, read from the frame when first asked for (not
        the args). Outbound: put keys here while entered (before the send) and they go out
        in the envelope; ``args`` and ``workflow_id`` are the framework's and cannot be set.
        """
        if self._headers is None:
            self._read_envelope()
        assert self._headers is not None
        return self._headers

    def _read_envelope(self) -> None:
        from .codec import topic_prefix
        from .peek import envelope_headers

        conn = self.connection
        prefix = topic_prefix(conn.topic) if conn.kind == "subscriber" else b""
        self._workflow_id, self._headers = envelope_headers(self._frame, prefix)

    def __repr__(self) -> str:
        return (
            f"<Message {self.connection.label} workflow_id={self.workflow_id!r} "
            f"outcome={self.outcome!r}>"
        )


Middleware = Callable[[Message], AbstractContextManager[Any]]
"""``middleware(message)`` -> a context manager entered around handling or sending it."""

GLOBAL: list[Middleware] = []
"""Middlewares every app gets, after its own (`zmqservice.tracing.instrument` adds one)."""


def add_global(middleware: Middleware) -> None:
    """Give every app built from now on `middleware` (a run picks them up when it starts)."""
    if middleware not in GLOBAL:
        GLOBAL.append(middleware)


def remove_global(middleware: Middleware) -> None:
    """Undo `add_global` (runs already started keep it until they stop)."""
    if middleware in GLOBAL:
        GLOBAL.remove(middleware)


def outcome_of(exc: BaseException) -> str:
    """The outbound outcome an exception from a send stands for."""
    if isinstance(exc, RequestTimeout):
        return "timeout"
    if isinstance(exc, RemoteError):
        return "remote_error"
    if isinstance(exc, ValidationError):
        return "validation_error"
    if isinstance(exc, DecodeError):
        return "decode_error"
    return "error"


def _enter(middlewares: Sequence[Middleware], message: Message) -> list[Any]:
    entered = []
    for middleware in middlewares:
        try:
            manager = middleware(message)
            manager.__enter__()
        except Exception:
            LOG.exception("middleware %r failed on %s; skipped", middleware, message)
            continue
        entered.append(manager)
    return entered


def _exit(entered: list[Any], message: Message) -> None:
    for manager in reversed(entered):
        try:
            manager.__exit__(None, None, None)
        except Exception:
            LOG.exception("middleware %r failed on %s; skipped", manager, message)


def _inbound_outcome(result: Any) -> tuple[str, str | None]:
    """A frame function's result -> (outcome, error): a reply frame or a subscriber's error."""
    if result is None:
        return "ok", None
    if isinstance(result, bytes):
        if isinstance(result, ErrorReply):
            return result.outcome, result.error
        return "ok", None
    if isinstance(result, TooLarge):
        outcome = "too_large"
    elif isinstance(result, ValidationError):
        outcome = "validation_error"
    elif isinstance(result, DecodeError):
        outcome = "decode_error"
    else:
        outcome = "handler_error"
    return outcome, type(result).__name__


def around_inbound(
    handle: Callable[[bytes], T],
    conn: Connection,
    middlewares: Sequence[Middleware],
    limit: int = sys.maxsize,
) -> Callable[[bytes], T]:
    """`handle` (a replyer's or subscriber's frame function) inside `middlewares`.

    A frame over `limit` bytes (the connection's ``max_message_size``) is refused unread,
    so its `Message` has no workflow id or headers either.
    """
    if not middlewares:
        return handle
    clock = time.perf_counter

    def observed(frame: bytes) -> T:
        message = Message(conn, frame=frame if len(frame) <= limit else b"")
        entered = _enter(middlewares, message)
        start = clock()
        try:
            result = handle(frame)
        finally:
            message.duration = clock() - start
        message.outcome, message.error = _inbound_outcome(result)
        _exit(entered, message)
        return result

    return observed


def around_inbound_async(
    handle: Callable[[bytes], Awaitable[T]],
    conn: Connection,
    middlewares: Sequence[Middleware],
    limit: int = sys.maxsize,
) -> Callable[[bytes], Awaitable[T]]:
    """`around_inbound` for an async frame function (the awaited handler is inside)."""
    if not middlewares:
        return handle
    clock = time.perf_counter

    async def observed(frame: bytes) -> T:
        message = Message(conn, frame=frame if len(frame) <= limit else b"")
        entered = _enter(middlewares, message)
        start = clock()
        try:
            result = await handle(frame)
        finally:
            message.duration = clock() - start
        message.outcome, message.error = _inbound_outcome(result)
        _exit(entered, message)
        return result

    return observed


def around_send(
    send: Callable[..., T], conn: Connection, middlewares: Sequence[Middleware]
) -> Callable[..., T]:
    """``(args, workflow_id, *options)`` -> `send` ``(args, workflow_id, headers, *options)``
    inside `middlewares`; the headers they set go out in the envelope."""
    clock = time.perf_counter

    def observed(args: Any, workflow_id: str, *options: Any) -> T:
        message = Message(conn, workflow_id, headers={})
        entered = _enter(middlewares, message)
        start = clock()
        try:
            result = send(args, workflow_id, message._headers, *options)
        except BaseException as exc:
            message.duration = clock() - start
            message.outcome, message.error = outcome_of(exc), type(exc).__name__
            _exit(entered, message)
            raise
        message.duration = clock() - start
        message.outcome = "ok"
        _exit(entered, message)
        return result

    return observed


def around_send_async(
    send: Callable[..., Awaitable[T]], conn: Connection, middlewares: Sequence[Middleware]
) -> Callable[..., Awaitable[T]]:
    """`around_send` for an awaited send (an async requester)."""
    clock = time.perf_counter

    async def observed(args: Any, workflow_id: str, *options: Any) -> T:
        message = Message(conn, workflow_id, headers={})
        entered = _enter(middlewares, message)
        start = clock()
        try:
            result = await send(args, workflow_id, message._headers, *options)
        except BaseException as exc:
            message.duration = clock() - start
            message.outcome, message.error = outcome_of(exc), type(exc).__name__
            _exit(entered, message)
            raise
        message.duration = clock() - start
        message.outcome = "ok"
        _exit(entered, message)
        return result

    return observed
