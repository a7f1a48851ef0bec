"""Config merging. Everything here fails with `ConfigError`.

Config, later wins: model defaults < config file/dict < ``<NAME>_<KEY>`` environment
variables < extra CLI arguments, then ``@app.setup_config``, then validation. Addresses
are resolved by `zmqservice.transport.addresses`, which owns what sockets need.
"""

from __future__ import annotations

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
from .fields import is_class_record, record_fields

if TYPE_CHECKING:
    from .app import App

__all__ = ["build_config", "load_json", "parse_value"]


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
    if not is_class_record(model_type):
        return {}
    fields = record_fields(model_type)
    return {field.name: field.default for field in fields if field.default is not attrs.NOTHING}


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
