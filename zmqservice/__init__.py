"""zmqservice: a Flask-style decorator microframework for ZeroMQ microservices."""

from __future__ import annotations

from ._version import __version__
from .app import App
from .connection import Connection
from .errors import (
    ConfigError,
    DecodeError,
    RemoteError,
    RemoteValidationError,
    RequestTimeout,
    ValidationError,
    ZmqServiceError,
)
from .inline import InlineServices
from .log import get_logger
from .service import Service

__all__ = [
    "App",
    "ConfigError",
    "Connection",
    "DecodeError",
    "InlineServices",
    "RemoteError",
    "RemoteValidationError",
    "RequestTimeout",
    "Service",
    "ValidationError",
    "ZmqServiceError",
    "__version__",
    "get_logger",
]
