"""What `to_send` takes besides name and args: per-call request options and their default."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["DEFAULT", "Default", "call_target", "request_options"]


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
