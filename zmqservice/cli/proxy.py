"""``zmqservice proxy pubsub|reqrep``: libzmq's own forwarders, for services on several hosts."""

from __future__ import annotations

import click

from ..connection import DEFAULT_HWM
from ..errors import ConfigError, ZmqServiceError
from ._common import CONTEXT, CliError, ToolError

__all__ = ["proxy"]


@click.group(context_settings=CONTEXT)
def proxy() -> None:
    """Run one of libzmq's own proxies, binding both of its addresses.

    FRONTEND and BACKEND are host:port (binds tcp://*:port) or a ZMQ endpoint; port 0 picks
    a free port, shown in the line printed once both are bound. SIGINT / SIGTERM stop it
    (exit 0); a bad address exits 2, a busy one 1.
    """


def _run_proxy(kind: str, frontend: str, backend: str, hwm: int = DEFAULT_HWM) -> None:
    from ..log import setup_logging
    from ..transport.proxy import Proxy, run_proxy
    from ..transport.sockets import AddressUnavailable

    setup_logging("INFO")
    try:
        forwarder = Proxy(kind, frontend, backend, hwm=hwm)
    except AddressUnavailable as exc:  # may pass: exit 1, which a supervisor restarts
        raise ToolError(str(exc)) from None
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    try:
        run_proxy(forwarder, on_ready=lambda p: click.echo(p.summary))
    except ZmqServiceError as exc:
        raise ToolError(str(exc)) from None


_FRONTEND = click.option("--frontend", required=True, metavar="ADDR", help="Bind address.")
_BACKEND = click.option("--backend", required=True, metavar="ADDR", help="Bind address.")


@proxy.command("pubsub", context_settings=CONTEXT)
@_FRONTEND
@_BACKEND
@click.option(
    "--hwm",
    type=click.IntRange(min=0),
    default=DEFAULT_HWM,
    show_default=True,
    help="High-water mark of both sockets, in messages (0: none).",
)
def proxy_pubsub(frontend: str, backend: str, hwm: int) -> None:
    """XSUB frontend (publishers connect, xpub=True) -> XPUB backend (subscribers connect)."""
    _run_proxy("pubsub", frontend, backend, hwm=hwm)


@proxy.command("reqrep", context_settings=CONTEXT)
@_FRONTEND
@_BACKEND
def proxy_reqrep(frontend: str, backend: str) -> None:
    """ROUTER frontend (requesters connect) -> DEALER backend (replyers connect, bind=False).

    The DEALER hands requests to the connected replyers in turn (round robin).
    """
    _run_proxy("reqrep", frontend, backend)
