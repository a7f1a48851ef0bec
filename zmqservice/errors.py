"""Exceptions raised by zmqservice.

Every exception derives from :class:`ZmqServiceError`; where a builtin fits, it is mixed in
so ``except ValueError`` / ``except TimeoutError`` keep working.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DecodeError",
    "RemoteError",
    "RemoteValidationError",
    "RequestTimeout",
    "ValidationError",
    "ZmqServiceError",
]


class ZmqServiceError(Exception):
    """Base class of every zmqservice error."""


class ConfigError(ZmqServiceError, ValueError):
    """Startup failed: config, addresses or models are wrong. The message names the key."""


class ValidationError(ZmqServiceError, ValueError):
    """Args or a return value do not match their model."""


class DecodeError(ZmqServiceError, ValueError):
    """Bytes that are not a valid zmqservice (or predecessor) message."""


class RemoteError(ZmqServiceError):
    """The other side answered with an error reply.

    Attributes:
        type: the error type the peer reported (``"HandlerError"``, ``"DecodeError"`` ...).
        message: the peer's message.
    """

    def __init__(self, type: str, message: str) -> None:
        super().__init__(f"{type}: {message}")
        self.type = type
        self.message = message


class RemoteValidationError(RemoteError, ValidationError):
    """The peer rejected our args or its own return value (error type ``ValidationError``)."""


class RequestTimeout(ZmqServiceError, TimeoutError):
    """No reply within ``timeout`` after all ``retries``; the requester stays usable."""
