"""zmqservice: a Flask-style decorator microframework for ZeroMQ microservices."""

from __future__ import annotations

from .app import App, Connection
from .errors import (
    ConfigError,
    DecodeError,
    RemoteError,
    RemoteValidationError,
    RequestTimeout,
    ValidationError,
    ZmqServiceError,
)
from .log import get_logger

__version__ = "0.1.0"

__all__ = [
    "App",
    "ConfigError",
    "Connection",
    "DecodeError",
    "RemoteError",
    "RemoteValidationError",
    "RequestTimeout",
    "ValidationError",
    "ZmqServiceError",
    "__version__",
    "get_logger",
]
