"""Subscriber counters: what arrived, what was dropped, and the gaps sequence numbers show.

Every published message carries its publisher's random id and a number; a subscriber counts
from them what it missed. What PUB/SUB promises and what it does not: docs/reliability.md.

Anyone who can publish can write any id and number, so one number alone never moves the
count far: a jump of more than `MAX_GAP` is counted as a reset, not as missed messages, and
the count follows a new numbering only when two numbers in a row agree on it.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import attrs

from .log import peer_text

__all__ = ["MAX_GAP", "MAX_PUBLISHERS", "MAX_PUBLISHER_ID", "SubscriberStats"]

LOG = logging.getLogger("zmqservice.dispatch")
MAX_PUBLISHERS = 1024
"""Publisher ids a subscriber remembers; the oldest is forgotten when a new one appears."""
MAX_PUBLISHER_ID = 64
"""Characters of a publisher id a subscriber tracks (ours have 12); longer ones are not."""
MAX_GAP = 1_000_000
"""The largest jump in one publisher's numbers counted as missed messages; a bigger one is
a reset (a forged number, or a numbering that started again under the same id)."""
WARN_EVERY_S = 1.0
"""A subscriber logs missed messages (and resets) at most this often (it counts them all)."""


@attrs.define(eq=False)
class SubscriberStats:
    """Counters of one subscriber connection; read them as ``app.stats[name]``.

    Every published message carries its publisher's random id (``pub``) and a number
    (``seq``, 1, 2, 3 ... per publisher socket). A number that skips ahead means messages
    were lost on the way (high-water mark, a reconnect ...): they are counted, not
    recovered. Messages from before the first one seen from a publisher (the slow joiner)
    are not counted. A number more than `MAX_GAP` ahead, or at or below the last one, is
    not believed alone: the count moves to it only when the next number follows it.

    Attributes:
        received: frames that arrived, valid or not.
        dropped: frames the handler never saw: over the size limit, undecodable, or with
            args that do not fit the model.
        failed: messages whose handler raised.
        missed: messages known lost: the sum of the gaps in the publishers' numbers.
        gaps: how many times a gap was seen.
        out_of_order: messages numbered at or below one already seen (duplicates).
        resets: numbers more than `MAX_GAP` ahead of the last one: not counted as missed.
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
    resets: int = 0
    last_seq: dict[str, int] = attrs.field(factory=dict)
    missed_by_publisher: dict[str, int] = attrs.field(factory=dict)
    _warned_at: float = attrs.field(default=-math.inf, repr=False)
    _missed_at_warning: int = attrs.field(default=0, repr=False)
    _doubted: dict[str, int] = attrs.field(factory=dict, repr=False)
    """Publisher id -> the last number not believed alone (see `sequence`)."""
    _reset_warned_at: float = attrs.field(default=-math.inf, repr=False)

    def sequence(self, label: str, pub: str, seq: int) -> None:
        """Account for message `seq` of publisher `pub` when it is not simply the next one."""
        last = self.last_seq.get(pub)
        if last is None:
            if len(pub) > MAX_PUBLISHER_ID:  # not ours: not worth remembering
                return
            if len(self.last_seq) >= MAX_PUBLISHERS:  # bounded, whatever peers send
                forgotten = next(iter(self.last_seq))
                del self.last_seq[forgotten]
                self.missed_by_publisher.pop(forgotten, None)
                self._doubted.pop(forgotten, None)
            self.last_seq[pub] = seq
            return
        if not last < seq <= last + MAX_GAP:
            self._doubt(label, pub, seq, last)
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
                peer_text(pub),
                seq,
                last,
                self.missed - self._missed_at_warning,
                self.missed,
            )
            self._warned_at = now
            self._missed_at_warning = self.missed

    def _doubt(self, label: str, pub: str, seq: int, last: int) -> None:
        """A number not believed alone: counted; it becomes the last when the next follows it."""
        if self._doubted.get(pub) == seq - 1:  # two in a row: a new numbering, follow it
            del self._doubted[pub]
            self.last_seq[pub] = seq
            self._warn_reset(label, "now counts from #%d (was at #%d)", pub, seq, last)
            return
        self._doubted[pub] = seq
        if seq <= last:
            self.out_of_order += 1
            return
        self.resets += 1
        self._warn_reset(label, "sent #%d after #%d: a reset, not missed messages", pub, seq, last)

    def _warn_reset(self, label: str, what: str, pub: str, seq: int, last: int) -> None:
        now = time.monotonic()
        if now - self._reset_warned_at >= WARN_EVERY_S:
            LOG.warning("%s: publisher %s " + what, label, peer_text(pub), seq, last)
            self._reset_warned_at = now

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict (for logs and tests)."""
        return {
            "received": self.received,
            "dropped": self.dropped,
            "failed": self.failed,
            "missed": self.missed,
            "gaps": self.gaps,
            "out_of_order": self.out_of_order,
            "resets": self.resets,
            "publishers": len(self.last_seq),
        }
