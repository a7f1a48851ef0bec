"""Error replies a replyer sends instead of calling its handler: one wording per failure.

Every serving loop (REP, the concurrency pool, asyncio) and the dispatch core answer with
these, so a peer reads the same error whichever path refused its message.
"""

from __future__ import annotations

import logging

from . import codec

__all__ = ["multipart_error", "too_large"]

LOG = logging.getLogger("zmqservice.dispatch")


def too_large(label: str, size: int, limit: int) -> str:
    """The error message for a message over the limit."""
    return (
        f"{label}: a message of {size} bytes is over the limit of {limit} bytes "
        "(max_message_size); it was not read"
    )


def multipart_error(label: str, parts: int) -> bytes:
    """The error reply to a request of several frames (a request is one frame); logged."""
    message = f"{label}: a request is one frame, got a multipart message of {parts} frames"
    LOG.warning("%s", message)
    return codec.encode_error("DecodeError", message, "")
