"""Error replies a replyer sends instead of its handler's result: one wording per failure.

Every serving loop (REP, the concurrency pool, asyncio) and the dispatch core answer with
these, so a peer reads the same error whichever path refused its message. Each logs what
it answers; text a peer may have chosen goes through `log.peer_text` on its way to a log
line (`codec.encode_error` does the same for the reply).
"""

from __future__ import annotations

import logging

from . import codec
from .errors import DecodeError, ValidationError
from .log import peer_text

__all__ = [
    "ErrorReply",
    "TooLarge",
    "exception_text",
    "handler_failed",
    "invalid_args",
    "multipart_error",
    "refused",
    "rejected",
    "too_large",
    "unencodable",
]

LOG = logging.getLogger("zmqservice.dispatch")


class ErrorReply(bytes):
    """An error reply frame that says which outcome it reports (middleware reads it).

    It is the frame itself (`bytes`), sent as any reply is; only a middleware looks at
    `outcome` (``decode_error``, ``too_large``, ``validation_error``, ``handler_error``) and
    `error` (the error reply's type, or the handler's exception's).
    """

    outcome: str
    error: str


class TooLarge(DecodeError):
    """Why a subscriber dropped a message over its size limit, unread (middleware reads it)."""


def _error_reply(
    outcome: str, error_type: str, message: str, workflow_id: str, error: str = ""
) -> ErrorReply:
    """`codec.encode_error`'s frame, marked with its outcome and error (`error_type` if none)."""
    reply = ErrorReply(codec.encode_error(error_type, message, workflow_id))
    reply.outcome, reply.error = outcome, error or error_type
    return reply


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
    return _error_reply("decode_error", "DecodeError", message, "")


def refused(label: str, size: int, limit: int) -> bytes:
    """The error reply to a request over the size limit, refused unread (no workflow id)."""
    LOG.warning("%s: refused a message of %d bytes (limit %d)", label, size, limit)
    return _error_reply("too_large", "DecodeError", too_large(label, size, limit), "")


def rejected(label: str, exc: DecodeError) -> bytes:
    """The error reply to a request that does not decode (no workflow id)."""
    LOG.warning("%s: rejected a message: %s", label, peer_text(str(exc)))
    return _error_reply("decode_error", "DecodeError", str(exc), "")


def invalid_args(where_args: str, exc: Exception, workflow_id: str) -> bytes:
    """The error reply to a request whose args do not fit the model."""
    if isinstance(exc, ValidationError):
        LOG.warning("%s", peer_text(str(exc)))
        message = str(exc)
    else:  # e.g. RecursionError on absurdly nested args
        LOG.warning("%s: cannot validate: %s", where_args, peer_text(exception_text(exc)))
        message = f"{where_args}: cannot validate: {exception_text(exc)}"
    return _error_reply("validation_error", "ValidationError", message, workflow_id)


def handler_failed(label: str, exc: Exception, workflow_id: str) -> bytes:
    """The error reply when the handler raised; logs the traceback."""
    LOG.exception("%s: handler raised", label)
    message = exception_text(exc)
    return _error_reply("handler_error", "HandlerError", message, workflow_id, type(exc).__name__)


def unencodable(label: str, exc: Exception, workflow_id: str) -> bytes:
    """The error reply when the handler's result does not fit `returns` or does not encode."""
    if isinstance(exc, ValidationError):
        LOG.error("%s", peer_text(str(exc)))
        error_type, message = "ValidationError", str(exc)
    else:  # TypeError, ValueError, OverflowError, RecursionError
        LOG.error("%s: cannot encode the return value: %s", label, peer_text(exception_text(exc)))
        error_type = "HandlerError"
        message = f"{label}: cannot encode the return value: {exception_text(exc)}"
    return _error_reply("handler_error", error_type, message, workflow_id, type(exc).__name__)


def exception_text(exc: BaseException) -> str:
    """``"Type: message"`` for an error reply; never fails, whatever `str(exc)` does."""
    try:
        text = str(exc)
    except Exception:  # an error reply must not fail on an exception that cannot print
        text = "<str() failed>"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
