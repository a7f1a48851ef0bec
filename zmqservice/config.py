"""Config merging. Everything here fails with `ConfigError`.

Config, later wins: model defaults < config file/dict < ``<NAME>_<KEY>`` environment
variables < extra CLI arguments, then ``@app.setup_config``, then validation. Addresses
are resolved by `zmqservice.transport.addresses`, which owns what sockets need.
"""

from __future__ import annotations

import json
import math
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

__all__ = [
    "MAX_DEPTH",
    "MAX_MIN_WAIT",
    "build_config",
    "check_min_wait",
    "load_json",
    "parse_value",
]


MAX_DEPTH = 100
"""How deeply config values and addresses files may nest arrays and objects."""

_MARKERS = {"__decimal__": "Decimal", "__uuid__": "UUID", "__set__": "set"}


class _LongInt(str):
    """An integer literal with more digits than `int()` takes: reported with its key."""


def _parse_int(text: str) -> Any:
    try:
        return int(text)
    except ValueError:  # more digits than sys.get_int_max_str_digits()
        return _LongInt(text)


class _Bad(Exception):
    """A value `_walk` refuses: where (a key path, cut to 40 characters) and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path if len(path) <= 40 else path[:40] + "..."
        self.reason = reason


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _walk(value: Any, path: str, depth: int, markers: bool) -> Any:
    """Decode the wire's markers (with `markers`), refuse deep nesting and long integers.

    Bottom-up, as a JSON ``object_hook`` would; `_Bad` names the key path of a refusal.
    """
    if isinstance(value, _LongInt):
        digits = len(value.lstrip("-"))
        raise _Bad(path, f"an integer of {digits} digits is too long; give it as a string")
    if not isinstance(value, (dict, list)):
        return value
    if depth > MAX_DEPTH:
        raise _Bad(path, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, list):
        return [_walk(v, f"{path}[{i}]", depth + 1, markers) for i, v in enumerate(value)]
    walked = {k: _walk(v, _join(path, k), depth + 1, markers) for k, v in value.items()}
    if not markers or len(walked) != 2:
        return walked
    try:
        return marker_hook(walked)
    except (ValueError, TypeError, ArithmeticError):
        kind = next(name for key, name in _MARKERS.items() if key in walked)
        field = "value" if kind == "set" else "as_str"
        expected = {
            "Decimal": "a number as a string",
            "UUID": "a UUID string",
            "set": "a list of hashable values (strings, numbers ...)",
        }[kind]
        raise _Bad(
            path, f"bad {kind} marker: {field} must be {expected}, got {_short(walked[field])}"
        ) from None


def _checked(value: Any, what: str, markers: bool) -> Any:
    try:
        return _walk(value, "", 1, markers)
    except _Bad as exc:
        where = f"{what}, key {exc.path!r}" if exc.path else what
        raise ConfigError(f"{where}: {exc.reason}") from None


def load_json(source: Mapping[str, Any] | str | Path | None, what: str) -> dict[str, Any]:
    """Read a dict, a JSON file path, or None (empty).

    A file must be UTF-8 JSON holding an object; it may carry the wire's Decimal, UUID and
    set markers, and nest at most `MAX_DEPTH` levels.

    Raises:
        ConfigError: naming the file, and the key where one is to blame.
    """
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    name = f"{what} file {str(path)!r}"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{name} is not UTF-8: byte {exc.start} is {raw[exc.start]:#04x}"
        ) from None
    try:
        data = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{name}: nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name} must hold a JSON object")
    # Config and addresses files may carry the wire's Decimal/UUID/set markers too.
    result: dict[str, Any] = _checked(data, name, markers=True)
    return result


def _takes_str(declared: Any) -> bool:
    if declared is str:
        return True
    return typing.get_origin(declared) in (Union, UnionType) and str in typing.get_args(declared)


def parse_value(raw: str, declared: Any, key: str = "") -> Any:
    """Parse a string from the environment or command line.

    A key declared `str` (or `str | None`) keeps the raw string; `Decimal` and `UUID` keys
    parse it as one; anything else is parsed as JSON, falling back to the raw string.

    Raises:
        ConfigError: naming `key`, for JSON nested deeper than `MAX_DEPTH` levels or an
            integer with more digits than Python converts.
    """
    if _takes_str(declared):
        return raw
    if declared in (Decimal, UUID):
        try:
            return declared(raw)
        except (ValueError, ArithmeticError):
            return raw  # validation names the key and the expected type
    try:
        value = json.loads(raw, parse_int=_parse_int)
    except RecursionError:
        raise ConfigError(f"config key {key!r}: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:
        return raw
    try:
        return _walk(value, key, 1, markers=False)
    except _Bad as exc:
        raise ConfigError(f"config key {exc.path!r}: {exc.reason}") from None


MAX_MIN_WAIT = 60.0
"""The longest `min_wait` (seconds slept after each poll round): a stop waits it out."""


def check_min_wait(min_wait: Any) -> float:
    """`min_wait` as a float, 0 to `MAX_MIN_WAIT` seconds.

    Raises:
        ConfigError: anything else (negative, ``nan``, ``inf``, not a number).
    """
    number = isinstance(min_wait, (int, float)) and not isinstance(min_wait, bool)
    if number and math.isfinite(min_wait) and 0 <= min_wait <= MAX_MIN_WAIT:
        return float(min_wait)
    raise ConfigError(
        f"min_wait: expected seconds from 0 to {MAX_MIN_WAIT:g}, got {_short(min_wait)}"
    )


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
                merged[key] = parse_value(raw, model.field_type(key), key)
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
