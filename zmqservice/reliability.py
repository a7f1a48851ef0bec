"""Reliability parts of the IO-free core: per-call request options, message size limits,
and the sequence numbers that let a subscriber count what it missed.

What the sockets promise and what they do not is in ``docs/reliability.md``.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

if TYPE_CHECKING:
    from .app import App, Connection

__all__ = [
    "DEFAULT",
    "HARD_LIMIT_FACTOR",
    "MAX_PUBLISHERS",
    "Default",
    "SubscriberStats",
    "hard_limit",
    "message_limit",
    "request_options",
]

LOG = logging.getLogger("zmqservice.dispatch")

HARD_LIMIT_FACTOR = 16
"""Inbound sockets drop a peer whose message is this many times over ``max_message_size``
(``ZMQ_MAXMSGSIZE``); between the limit and that cap, the message gets an error reply.
Holding raw bytes is cheap; decoding them is what costs (up to ~70x the size in objects)."""
MAX_PUBLISHERS = 1024
"""Publisher ids a subscriber remembers; the oldest is forgotten when a new one appears."""
WARN_EVERY_S = 1.0
"""A subscriber logs missed messages at most this often (it counts them all)."""


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


def message_limit(app: App, conn: Connection) -> int | None:
    """The byte limit of in-connection `conn`: its own, else the app's (None: no limit)."""
    if conn.max_message_size is not None:
        return conn.max_message_size
    return app.max_message_size


def hard_limit(limit: int | None) -> int:
    """The ``ZMQ_MAXMSGSIZE`` for a soft `limit` (-1, libzmq's "no limit", for None)."""
    return -1 if limit is None else limit * HARD_LIMIT_FACTOR


def too_large(label: str, size: int, limit: int) -> str:
    """The error message for a message over the limit."""
    return (
        f"{label}: a message of {size} bytes is over the limit of {limit} bytes "
        "(max_message_size); it was not read"
    )


@attrs.define(eq=False)
class SubscriberStats:
    """Counters of one subscriber connection; read them as ``app.stats[name]``.

    Every published message carries its publisher's random id (``pub``) and a number
    (``seq``, 1, 2, 3 ... per publisher socket). A number that skips ahead means messages
    were lost on the way (high-water mark, a reconnect ...): they are counted, not
    recovered. Messages from before the first one seen from a publisher (the slow joiner)
    are not counted.

    Attributes:
        received: frames that arrived, valid or not.
        dropped: frames the handler never saw: over the size limit, undecodable, or with
            args that do not fit the model.
        failed: messages whose handler raised.
        missed: messages known lost: the sum of the gaps in the publishers' numbers.
        gaps: how many times a gap was seen.
        out_of_order: messages numbered at or below one already seen (duplicates).
        last_seq: publisher id -> the last number seen from it (the newest
            `MAX_PUBLISHERS` publishers).
        missed_by_publisher: publisher id -> messages missed from it.
    """

    received: int = 0
    dropped: int = 0
    failed: int = 0
    missed: int = 0
    gaps: int = 0
    out_of_order: int = 0
    last_seq: dict[str, int] = attrs.field(factory=dict)
    missed_by_publisher: dict[str, int] = attrs.field(factory=dict)
    _warned_at: float = attrs.field(default=-math.inf, repr=False)
    _missed_at_warning: int = attrs.field(default=0, repr=False)

    def sequence(self, label: str, pub: str, seq: int) -> None:
        """Account for message `seq` of publisher `pub` when it is not simply the next one."""
        last = self.last_seq.get(pub)
        if last is None:
            if len(self.last_seq) >= MAX_PUBLISHERS:  # bounded, whatever peers send
                forgotten = next(iter(self.last_seq))
                del self.last_seq[forgotten]
                self.missed_by_publisher.pop(forgotten, None)
            self.last_seq[pub] = seq
            return
        if seq <= last:
            self.out_of_order += 1
            return
        lost = seq - last - 1
        self.last_seq[pub] = seq
        if lost == 0:
            return
        self.missed += lost
        self.gaps += 1
        self.missed_by_publisher[pub] = self.missed_by_publisher.get(pub, 0) + lost
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            LOG.warning(
                "%s: missed %d message(s) from publisher %s (got #%d after #%d); "
                "%d missed since the last warning, %d in all",
                label,
                lost,
                pub,
                seq,
                last,
                self.missed - self._missed_at_warning,
                self.missed,
            )
            self._warned_at = now
            self._missed_at_warning = self.missed

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict (for logs and tests)."""
        return {
            "received": self.received,
            "dropped": self.dropped,
            "failed": self.failed,
            "missed": self.missed,
            "gaps": self.gaps,
            "out_of_order": self.out_of_order,
            "publishers": len(self.last_seq),
        }
