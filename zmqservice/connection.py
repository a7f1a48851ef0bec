"""`Connection`: the record every layer reads, its kinds, defaults and byte limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import attrs

from .models import Model

if TYPE_CHECKING:
    from .app import App

__all__ = [
    "DEFAULT_HWM",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "HARD_LIMIT_FACTOR",
    "INBOUND",
    "Connection",
    "Kind",
    "check_size",
    "hard_limit",
    "message_limit",
]

Kind = Literal["replyer", "subscriber", "requester", "publisher", "external_target"]
INBOUND: tuple[Kind, ...] = ("replyer", "subscriber")
DEFAULT_HWM = 100_000
"""High-water mark in messages of publishers, subscribers and pubsub proxies."""
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
"""Bytes an inbound message may have before it is refused unread (1 MiB); see reliability.md."""
HARD_LIMIT_FACTOR = 16
"""Inbound sockets drop a peer whose message is this many times over ``max_message_size``
(``ZMQ_MAXMSGSIZE``); between the limit and that cap, the message gets an error reply.
Holding raw bytes is cheap; decoding them is what costs (up to ~70x the size in objects)."""


@attrs.define(frozen=True)
class Connection:
    """One declared connection, as the runtime, test client and inline dispatcher see it."""

    name: str
    kind: Kind
    args: Model
    returns: Model | None = None
    handler: Callable[..., Any] | None = None
    target: Callable[..., Any] | str | None = None
    topic: str = ""
    bind: bool = False
    xpub: bool = False
    hwm: int = DEFAULT_HWM
    timeout: float | None = None
    retries: int = 0
    address: str | None = None
    max_message_size: int | None = None
    """Inbound connections: the byte limit; None means the app's ``max_message_size``."""
    concurrency: int = 1
    """Replyers: requests served at once (a ROUTER socket and a thread pool when > 1)."""

    @property
    def side(self) -> Literal["in", "out"]:
        """``"in"`` for replyers and subscribers, ``"out"`` for the rest."""
        return "in" if self.kind in INBOUND else "out"

    @property
    def label(self) -> str:
        """How messages name this connection: ``in.cancel_order (replyer)``."""
        return f"{self.side}.{self.name} ({self.kind})"


def check_size(limit: int | None, where: str) -> int | None:
    """Check a ``max_message_size`` value: a positive int or None.

    Raises:
        ValueError: naming `where`.
    """
    if limit is not None and (type(limit) is not int or limit <= 0):
        raise ValueError(f"{where}: max_message_size must be a positive int or None, got {limit!r}")
    return limit


def message_limit(app: App, conn: Connection) -> int | None:
    """The byte limit of in-connection `conn`: its own, else the app's (None: no limit)."""
    if conn.max_message_size is not None:
        return conn.max_message_size
    return app.max_message_size


def hard_limit(limit: int | None) -> int:
    """The ``ZMQ_MAXMSGSIZE`` for a soft `limit` (-1, libzmq's "no limit", for None)."""
    return -1 if limit is None else limit * HARD_LIMIT_FACTOR
