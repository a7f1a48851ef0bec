"""The sending side: where `to_send` frames go (`Outbound`) and the `to_send` handlers get.

Two small protocols, sync and async, as httpx has for its transports: the ZMQ runtime,
the test client and the inline dispatcher each implement `Outbound`; the asyncio runtime
also implements `AsyncOutbound`. `ToSend` and `AsyncToSend` number a message's onward calls.
"""

from __future__ import annotations

import enum
import itertools
import math
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from .errors import RemoteError, RemoteValidationError

if TYPE_CHECKING:
    from .connection import Connection
    from .dispatch import Dispatcher

__all__ = [
    "DEFAULT",
    "AsyncOutbound",
    "AsyncToSend",
    "Default",
    "Outbound",
    "ToSend",
    "awaited",
    "call_target",
    "new_workflow_id",
    "raise_for_error",
    "request_options",
]


class Default(enum.Enum):
    """The type of `DEFAULT`."""

    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = Default.DEFAULT
"""A per-call option that was not given: the connection's own value applies."""


def request_options(
    conn: Connection,
    timeout: float | Literal[Default.DEFAULT] | None,
    retries: int | Literal[Default.DEFAULT],
) -> tuple[float | None, int]:
    """Apply `conn`'s defaults to per-call ``timeout=`` / ``retries=`` and check them.

    Raises:
        TypeError: `conn` is not a requester.
        ValueError: a timeout that is not a finite number > 0 (or None), retries < 0.
    """
    if conn.kind != "requester":
        raise TypeError(f"{conn.label}: timeout= and retries= apply to requesters only")
    if timeout is DEFAULT:
        timeout = conn.timeout
    elif timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not (math.isfinite(timeout) and timeout > 0)
    ):
        raise ValueError(
            f"{conn.label}: timeout must be a number of seconds > 0 or None, got {timeout!r}"
        )
    if retries is DEFAULT:
        retries = conn.retries
    elif type(retries) is not int or retries < 0:
        raise ValueError(f"{conn.label}: retries must be an int >= 0, got {retries!r}")
    return timeout, retries


def call_target(target: Callable[..., Any], args: Any) -> Any:
    """Call an external target as the predecessor did: ``target(**args)``, else ``target(args)``."""
    return target(**args) if isinstance(args, dict) else target(args)


def new_workflow_id() -> str:
    """A fresh workflow id for work that did not come with one."""
    return str(uuid.uuid4())


def raise_for_error(error: dict[str, str]) -> None:
    """Raise what a requester raises for an error reply."""
    if error["type"] == "ValidationError":
        raise RemoteValidationError(error["type"], error["message"])
    raise RemoteError(error["type"], error["message"])


class Outbound(Protocol):
    """Where `to_send` frames go: sockets, test stubs or in-process services."""

    def request(
        self,
        conn: Connection,
        frame: bytes,
        workflow_id: str = "",
        timeout: float | Default | None = DEFAULT,
        retries: int | Default = DEFAULT,
    ) -> bytes:
        """Deliver a request frame and return the reply frame that answers it.

        `workflow_id` is the request's (a transport that can see stale replies discards
        those naming another id); `timeout` and `retries` default to the connection's.
        """

    def publish(self, conn: Connection, frame: bytes) -> None:
        """Deliver a published frame (topic prefix included)."""

    def call(self, conn: Connection, target: Callable[..., Any], args: Any) -> Any:
        """Call external target `target` with validated plain `args`; return its result.

        Real transports call it (`call_target`); the test client records the call and
        answers from its stub when there is one.
        """


class AsyncOutbound(Protocol):
    """Where `await to_send(...)` request frames go in async code."""

    async def request(
        self,
        conn: Connection,
        frame: bytes,
        workflow_id: str,
        timeout: float | None,
        retries: int,
    ) -> bytes:
        """Deliver a request frame; return the reply frame that answers it."""


class _AwaitedOutbound:
    """A sync `Outbound` behind the async interface: for stubs and in-process transports."""

    def __init__(self, outbound: Outbound) -> None:
        self._outbound = outbound

    async def request(
        self, conn: Connection, frame: bytes, workflow_id: str, timeout: float | None, retries: int
    ) -> bytes:
        return self._outbound.request(conn, frame, workflow_id, timeout, retries)


def awaited(outbound: Outbound) -> AsyncOutbound:
    """`outbound` behind the `AsyncOutbound` interface (its requests block the caller)."""
    return _AwaitedOutbound(outbound)


class ToSend:
    """The `to_send(name, args)` handed to handlers; numbers onward calls X_1, X_2, ..."""

    __slots__ = ("_counter", "_dispatcher", "_senders", "workflow_id")

    def __init__(self, dispatcher: Dispatcher, workflow_id: str) -> None:
        self._dispatcher = dispatcher
        self._senders = dispatcher.senders
        self.workflow_id = workflow_id
        self._counter = itertools.count(1)  # next() is atomic: threads get distinct ids

    def __call__(
        self,
        name: str,
        args: Any,
        *,
        timeout: float | Default | None = DEFAULT,
        retries: int | Default = DEFAULT,
    ) -> Any:
        sender = self._senders.get(name)
        if sender is None:
            return self._dispatcher.send(name, args, "")  # raises, naming the connection
        workflow_id = f"{self.workflow_id}_{next(self._counter)}"
        if timeout is DEFAULT and retries is DEFAULT:
            return sender(args, workflow_id)
        return self._dispatcher.send(name, args, workflow_id, timeout=timeout, retries=retries)


class AsyncToSend:
    """The `to_send` of async handlers and hooks: ``await to_send(name, args)``.

    Requesters wait on the event loop, not in a thread; publishers and external targets
    are called directly. Numbers onward calls X_1, X_2, ... as `ToSend` does.
    """

    __slots__ = ("_counter", "_dispatcher", "workflow_id")

    def __init__(
        self,
        dispatcher: Dispatcher,
        workflow_id: str,
        counter: itertools.count[int] | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self.workflow_id = workflow_id
        self._counter = itertools.count(1) if counter is None else counter

    @classmethod
    def sharing(cls, to_send: ToSend) -> AsyncToSend:
        """An `AsyncToSend` that continues `to_send`'s numbering (one numbering per run)."""
        return cls(to_send._dispatcher, to_send.workflow_id, to_send._counter)

    async def __call__(
        self,
        name: str,
        args: Any,
        *,
        timeout: float | Default | None = DEFAULT,
        retries: int | Default = DEFAULT,
    ) -> Any:
        if name not in self._dispatcher.senders:
            return self._dispatcher.send(name, args, "")  # raises, naming the connection
        workflow_id = f"{self.workflow_id}_{next(self._counter)}"
        return await self._dispatcher.send_async(
            name, args, workflow_id, timeout=timeout, retries=retries
        )
