"""Where sockets bind and connect: endpoints, addresses files, CURVE entries.

The predecessor's ``{"in": {name: {kind: address}}, "out": {...}}`` over the decorators'
``address=`` defaults, then ``@app.setup_addresses``. An entry may add ``"curve": {...}``
key files next to its kind, and the file a top-level ``"curve"`` default (see
docs/security.md); key files are loaded and checked here, before any socket opens.
Everything here fails with `ConfigError`, naming the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ..config import load_json
from ..errors import ConfigError
from .curve import MISSING, check_default, load_curve

if TYPE_CHECKING:
    from ..app import App
    from ..connection import Connection
    from .curve import CurveKeys

__all__ = ["Endpoint", "parse_endpoint", "resolve_addresses"]

SCHEMES = ("tcp", "ipc", "inproc", "pgm", "epgm", "ws", "wss", "vmci", "udp")
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[^:/\s]+):(?P<port>\d{1,5})$")
_ENDPOINT = re.compile(r"^(?P<scheme>[a-z]+)://(?P<rest>\S+)$")


@attrs.define(frozen=True)
class Endpoint:
    """Where one connection's socket binds or connects, and its CURVE keys if secured."""

    url: str
    bind: bool
    curve: CurveKeys | None = None


def parse_endpoint(value: Any, key: str, *, bind: bool) -> str:
    """Turn an address into the ZMQ endpoint a socket binds or connects to.

    ``host:port`` binds ``tcp://*:port`` (as the predecessor did) and connects to
    ``tcp://host:port``; a full endpoint (``tcp://``, ``ipc://`` ...) says exactly where.

    Args:
        value: the address as given.
        key: where it was given (``addresses.in.x.replyer``, ``--frontend``), for messages.
        bind: whether the socket binds.

    Raises:
        ConfigError: one line naming `key`, for anything that is not an address.
    """
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: expected 'host:port' or a ZMQ endpoint, got {value!r}")
    text: str = value.strip()
    if "\0" in text:  # libzmq would cut the endpoint there and bind or connect the rest
        raise ConfigError(f"{key}: {text!r} holds a NUL character")
    match = _ENDPOINT.match(text)
    if match:
        scheme = match["scheme"]
        if scheme not in SCHEMES:
            raise ConfigError(f"{key}: unknown transport {scheme!r} in {text!r}")
        if scheme == "tcp":
            host_port = _HOST_PORT.match(match["rest"])
            if not host_port or int(host_port["port"]) > 65535:
                raise ConfigError(f"{key}: {text!r} is not tcp://host:port")
            if not bind and host_port["host"] == "*":
                raise ConfigError(f"{key}: {text!r}: '*' binds every interface; connect to a host")
        return text
    host_port = _HOST_PORT.match(text)
    if not host_port or int(host_port["port"]) > 65535:
        raise ConfigError(f"{key}: {text!r} is not 'host:port' or a ZMQ endpoint like tcp://...")
    port = host_port["port"]
    if not bind and host_port["host"] == "*":
        raise ConfigError(f"{key}: {text!r}: '*' binds every interface; connect to a host")
    # The predecessor bound every interface for host:port; full endpoints say exactly where.
    return f"tcp://*:{port}" if bind else f"tcp://{host_port['host']}:{port}"


def _endpoint(conn: Connection, value: Any, key: str) -> Endpoint:
    return Endpoint(parse_endpoint(value, key, bind=conn.bind), conn.bind)


def resolve_addresses(
    app: App, addresses: Mapping[str, Any] | str | Path | None, config: Any
) -> dict[str, Endpoint]:
    """Resolve every socket connection's endpoint; `ConfigError` names the first bad key."""
    given = load_json(addresses, "addresses")
    hook = app.hooks.get("setup_addresses")
    if hook is not None:
        changed = hook(given, config)
        if changed is not None:
            if not isinstance(changed, Mapping):
                raise ConfigError("setup_addresses must return an addresses dict")
            given = dict(changed)
    for side, entries in given.items():
        if side == "curve":
            continue
        if side not in ("in", "out") or not isinstance(entries, Mapping):
            raise ConfigError(f"addresses.{side}: expected 'in' or 'out' mapping names to kinds")
        for name in entries:
            conn = app.connections.get(name)
            if conn is None or conn.side != side or conn.kind == "external_target":
                known = ", ".join(
                    n
                    for n, c in app.connections.items()
                    if c.side == side and c.kind != "external_target"
                )
                raise ConfigError(
                    f"addresses.{side}.{name}: App {app.name!r} has no such {side}-connection "
                    f"(known: {known or 'none'})"
                )
    curve_default = check_default(given.get("curve"))
    base = Path(addresses).parent if isinstance(addresses, (str, Path)) else Path()
    endpoints: dict[str, Endpoint] = {}
    for conn in app.connections.values():
        if conn.kind == "external_target":
            continue
        key = f"addresses.{conn.side}.{conn.name}.{conn.kind}"
        entry = given.get(conn.side, {}).get(conn.name)
        value: Any = conn.address
        curve: Any = MISSING
        if entry is not None:
            if not isinstance(entry, Mapping) or conn.kind not in entry:
                raise ConfigError(f"{key}: missing (the inner key is the connection kind)")
            unknown = [k for k in entry if k not in (conn.kind, "curve")]
            if unknown:
                raise ConfigError(
                    f"addresses.{conn.side}.{conn.name}.{unknown[0]}: unknown key; an entry "
                    f"holds its kind ({conn.kind!r}) and optionally 'curve'"
                )
            value = entry[conn.kind]
            curve = entry.get("curve", MISSING)
        if value is None:
            raise ConfigError(
                f"{key}: no address for {conn.label}; give address= or an addresses file"
            )
        endpoint = _endpoint(conn, value, key)
        keys = load_curve(
            curve,
            curve_default,
            bind=endpoint.bind,
            url=endpoint.url,
            domain=f"{conn.side}.{conn.name}",
            key=f"addresses.{conn.side}.{conn.name}.curve",
            base=base,
        )
        endpoints[conn.name] = attrs.evolve(endpoint, curve=keys) if keys else endpoint
    return endpoints
