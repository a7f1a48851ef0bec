"""The strict cattrs converters every model uses, and their one-line error messages.

`make_converter()` builds a converter and `configure_converter()` installs the wire's
rules on it, as cattrs' preconf modules do. Two are built: `converter`, whose errors name
every field, and `fast_converter`, which stops at the first failure and is tried first on
the per-message path.
"""

from __future__ import annotations

import collections.abc as abc
import datetime as dt
import typing
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal, Union
from uuid import UUID

import cattrs
from cattrs.cols import (
    homogenous_tuple_structure_factory,
    list_structure_factory,
    mapping_structure_factory,
)
from cattrs.strategies import configure_union_passthrough
from cattrs.v import format_exception, transform_error

from .errors import ValidationError
from .fields import is_record

__all__ = [
    "WrongType",
    "check_map_keys",
    "configure_converter",
    "converter",
    "fast_converter",
    "make_converter",
    "validation_message",
]


class WrongType(TypeError):
    """A value of the wrong type: ``expected int, got str``."""

    def __init__(self, expected: str, value: object) -> None:
        super().__init__(f"expected {expected}, got {type(value).__name__}")


def _format(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, WrongType):
        return str(exc)
    if typing.get_origin(type_) is Literal:
        allowed = ", ".join(repr(value) for value in typing.get_args(type_))
        return f"expected one of {allowed}"
    return format_exception(exc, type_)


def validation_message(where: str, exc: BaseException) -> str:
    """Turn a cattrs structuring failure into one line naming `where` and each field."""
    if isinstance(exc, ValidationError):
        return f"{where}: {exc}"
    lines = transform_error(exc, path="$", format_exception=_format)
    return f"{where}: " + "; ".join(lines)


def _exact(expected: str, *accepted: type) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _: Any) -> Any:
        if isinstance(value, accepted) and not (isinstance(value, bool) and bool not in accepted):
            return value
        raise WrongType(expected, value)

    return hook


def _structure_float(value: Any, _: Any) -> float:
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # the one widening we allow, as mypy does
    raise WrongType("float", value)


def _structure_datetime(value: Any, _: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    raise WrongType("datetime (ISO 8601 string)", value)


def _structure_date(value: Any, _: Any) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        return dt.date.fromisoformat(value)
    raise WrongType("date (ISO 8601 string)", value)


_LISTS = {list, abc.Sequence, abc.MutableSequence}
_SETS = {set, frozenset, abc.Set, abc.MutableSet}
_DICTS = {dict, abc.Mapping, abc.MutableMapping}


def _origin(type_: Any) -> Any:
    return typing.get_origin(type_) or type_


def _guarded(
    build: Callable[[Any, cattrs.Converter], Any], expected: str, accepted: tuple[type, ...]
) -> Callable[[Any, cattrs.Converter], Any]:
    """Wrap a cattrs collection factory so it only takes the container types we accept."""

    def factory(type_: Any, conv: cattrs.Converter) -> Any:
        inner = build(type_, conv)

        def hook(value: Any, t: Any) -> Any:
            if not isinstance(value, accepted):
                raise WrongType(expected, value)
            return inner(value, t)

        return hook

    return factory


def _set_factory(type_: Any, conv: cattrs.Converter) -> Any:
    args = typing.get_args(type_)
    elem = args[0] if args else Any
    elem_hook = conv.get_structure_hook(elem)
    out = frozenset if _origin(type_) is frozenset else set

    def hook(value: Any, _: Any) -> Any:
        if not isinstance(value, (set, frozenset)):
            raise WrongType("set", value)
        return out(elem_hook(item, elem) for item in value)

    return hook


def _tuple_factory(type_: Any, conv: cattrs.Converter) -> Any:
    args = typing.get_args(type_)
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        return _guarded(homogenous_tuple_structure_factory, "array", (list, tuple))(type_, conv)
    hooks = [conv.get_structure_hook(arg) for arg in args]

    def hook(value: Any, _: Any) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)):
            raise WrongType("array", value)
        if len(value) != len(args):
            raise ValueError(f"expected {len(args)} items, got {len(value)}")
        return tuple(h(item, arg) for h, item, arg in zip(hooks, value, args, strict=False))

    return hook


def configure_converter(conv: cattrs.Converter) -> None:
    """Install the wire's strict rules on `conv`.

    No coercion (``"1"`` is not an int, ``1`` is not a bool) but for int -> float; ISO 8601
    strings for `datetime` / `date`; `Decimal`, `UUID` and sets arrive already decoded from
    their markers; arrays as lists or tuples, maps as dicts.
    """
    conv.register_structure_hook(str, _exact("str", str))
    conv.register_structure_hook(int, _exact("int", int))
    conv.register_structure_hook(bool, _exact("bool", bool))
    conv.register_structure_hook(bytes, _exact("bytes", bytes))
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(Decimal, _exact("Decimal", Decimal))
    conv.register_structure_hook(UUID, _exact("UUID", UUID))
    conv.register_structure_hook(dt.datetime, _structure_datetime)
    conv.register_structure_hook(dt.date, _structure_date)
    conv.register_unstructure_hook(dt.datetime, dt.datetime.isoformat)
    conv.register_unstructure_hook(dt.date, dt.date.isoformat)
    conv.register_structure_hook_factory(
        lambda t: _origin(t) in _LISTS,
        _guarded(list_structure_factory, "array", (list, tuple)),
    )
    conv.register_structure_hook_factory(lambda t: _origin(t) in _SETS, _set_factory)
    conv.register_structure_hook_factory(lambda t: _origin(t) is tuple, _tuple_factory)
    conv.register_structure_hook_factory(
        lambda t: _origin(t) in _DICTS,
        _guarded(mapping_structure_factory, "map", (dict,)),
    )
    configure_union_passthrough(Union[str, bool, int, float, None, bytes], conv)  # noqa: UP007


def make_converter(detailed_validation: bool = True) -> cattrs.Converter:
    """A new converter with the wire's rules that refuses unknown keys.

    Args:
        detailed_validation: collect every failure with its path (for messages); without
            it the first failure raises, cheaper when only "valid or not" matters.
    """
    # A plain cattrs.Converter rather than cattrs.preconf.msgpack: that preset turns sets into
    # lists and datetimes into timestamps, and our wire keeps sets (as markers) and ISO strings.
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=detailed_validation)
    configure_converter(conv)
    return conv


converter = make_converter()
"""The converter every model uses; never cattrs' global one. Its errors name every field."""

fast_converter = make_converter(detailed_validation=False)
"""The same rules without error bookkeeping: the per-message path tries it first and asks
`converter` only to explain a failure."""


def check_map_keys(type_: Any, seen: set[int] | None = None) -> None:
    """Refuse maps with non-str keys when a model is declared, not when a message fails.

    msgpack peers (the predecessor too) decode only str map keys: other keys would let a
    peer build maps of colliding int hashes, so the wire never carries them.

    Raises:
        TypeError: naming the offending type.
    """
    seen = set() if seen is None else seen
    if id(type_) in seen:
        return
    seen.add(id(type_))
    args = typing.get_args(type_)
    if _origin(type_) in _DICTS and args and args[0] not in (str, Any):
        raise TypeError(f"{type_!r}: map keys must be str on the wire (msgpack rejects others)")
    for arg in args:
        check_map_keys(arg, seen)
    if is_record(type_):
        for hint in typing.get_type_hints(type_).values():
            check_map_keys(hint, seen)
