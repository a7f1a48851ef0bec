"""Config merging and address resolution. Everything here fails with `ConfigError`.

Config, later wins: model defaults < config file/dict < ``<NAME>_<KEY>`` environment
variables < extra CLI arguments, then ``@app.setup_config``, then validation.
Addresses: the predecessor's ``{"in": {name: {kind: address}}, "out": {...}}`` over the
decorators' ``address=`` defaults, then ``@app.setup_addresses``. An entry may add
``"curve": {...}`` key files next to its kind, and the file a top-level ``"curve"`` default
(see docs/security.md); key files are loaded and checked here, before any socket opens.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, Union
from uuid import UUID

import attrs

from .codec import marker_hook
from .errors import ConfigError, ValidationError

if TYPE_CHECKING:
    from .app import App, Connection
    from .security import CurveKeys

__all__ = [
    "Endpoint",
    "build_config",
    "load_json",
    "parse_endpoint",
    "parse_value",
    "resolve_addresses",
]

SCHEMES = ("tcp", "ipc", "inproc", "pgm", "epgm", "ws", "wss", "vmci", "udp")
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[^:/\s]+):(?P<port>\d{1,5})$")
_ENDPOINT = re.compile(r"^(?P<scheme>[a-z]+)://(?P<rest>\S+)$")


def load_json(source: Mapping[str, Any] | str | Path | None, what: str) -> dict[str, Any]:
    """Read a dict, a JSON file path, or None (empty)."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    try:
        # Config and addresses files may carry the wire's Decimal/UUID/set markers too.
        data = json.loads(path.read_text(encoding="utf-8"), object_hook=marker_hook)
    except OSError as exc:
        raise ConfigError(f"{what} file {str(path)!r}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file {str(path)!r} must hold a JSON object")
    return data


def _takes_str(declared: Any) -> bool:
    if declared is str:
        return True
    return typing.get_origin(declared) in (Union, UnionType) and str in typing.get_args(declared)


def parse_value(raw: str, declared: Any) -> Any:
    """Parse a string from the environment or command line.

    A key declared `str` (or `str | None`) keeps the raw string; `Decimal` and `UUID` keys
    parse it as one; anything else is parsed as JSON, falling back to the raw string.
    """
    if _takes_str(declared):
        return raw
    if declared in (Decimal, UUID):
        try:
            return declared(raw)
        except (ValueError, ArithmeticError):
            return raw  # validation names the key and the expected type
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _defaults(app: App) -> dict[str, Any]:
    """Plain default values of a class config model, so `setup_config` sees them."""
    model_type = app.config.type
    out: dict[str, Any] = {}
    if model_type is not None and attrs.has(model_type):
        for field in attrs.fields(model_type):
            if field.default is not attrs.NOTHING and not isinstance(
                field.default,
                attrs.Factory,  # type: ignore[arg-type]
            ):
                out[field.name] = field.default
    elif model_type is not None and dataclasses.is_dataclass(model_type):
        for dc_field in dataclasses.fields(model_type):
            if dc_field.default is not dataclasses.MISSING:
                out[dc_field.name] = dc_field.default
    return out


def build_config(
    app: App,
    source: Mapping[str, Any] | str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """Merge, run ``setup_config``, validate; return what handlers see as `config`.

    Args:
        app: the service.
        source: a config dict or JSON file path.
        environ: where ``<NAME>_<KEY>`` variables are looked up (usually `os.environ`).
        extra: extra CLI arguments, already split into keys and values.

    Raises:
        ConfigError: naming each missing or mistyped key.
    """
    merged = _defaults(app)
    merged.update(load_json(source, "config"))
    model = app.config
    if environ is not None:
        prefix = re.sub(r"\W", "_", app.name).upper() + "_"
        for key in [*model.required, *model.optional]:
            raw = environ.get(prefix + key.upper())
            if raw is not None:
                merged[key] = parse_value(raw, model.field_type(key))
    merged.update(extra or {})
    hook = app.hooks.get("setup_config")
    if hook is not None:
        changed = hook(dict(merged))
        if changed is not None:
            if not isinstance(changed, Mapping):
                raise ConfigError("setup_config must return a dict of config keys")
            merged.update(changed)
    if model.is_any:
        return merged
    try:
        return model.load(merged, "config")
    except ValidationError as exc:
        raise ConfigError(_config_message(str(exc))) from None


def _config_message(message: str) -> str:
    # "config: required field missing @ $.symbol" -> "config key 'symbol': required field missing"
    parts = []
    for part in message.removeprefix("config: ").split("; "):
        text, _, path = part.rpartition(" @ ")
        key = path.removeprefix("$").lstrip(".")
        parts.append(f"config key {key!r}: {text}" if key else f"config: {text}")
    return "; ".join(parts)


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
    match = _ENDPOINT.match(text)
    if match:
        scheme = match["scheme"]
        if scheme not in SCHEMES:
            raise ConfigError(f"{key}: unknown transport {scheme!r} in {text!r}")
        if scheme == "tcp":
            host_port = _HOST_PORT.match(match["rest"])
            if not host_port or int(host_port["port"]) > 65535:
                raise ConfigError(f"{key}: {text!r} is not tcp://host:port")
        return text
    host_port = _HOST_PORT.match(text)
    if not host_port or int(host_port["port"]) > 65535:
        raise ConfigError(f"{key}: {text!r} is not 'host:port' or a ZMQ endpoint like tcp://...")
    port = host_port["port"]
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
    from . import security

    curve_default = security.check_default(given.get("curve"))
    base = Path(addresses).parent if isinstance(addresses, (str, Path)) else Path()
    endpoints: dict[str, Endpoint] = {}
    for conn in app.connections.values():
        if conn.kind == "external_target":
            continue
        key = f"addresses.{conn.side}.{conn.name}.{conn.kind}"
        entry = given.get(conn.side, {}).get(conn.name)
        value: Any = conn.address
        curve: Any = security.MISSING
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
            curve = entry.get("curve", security.MISSING)
        if value is None:
            raise ConfigError(
                f"{key}: no address for {conn.label}; give address= or an addresses file"
            )
        endpoint = _endpoint(conn, value, key)
        keys = security.load_curve(
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
