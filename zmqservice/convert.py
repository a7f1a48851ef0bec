"""The strict cattrs converters every model uses, and their one-line error messages.

`make_converter()` builds a converter and `configure_converter()` installs the wire's
rules on it, as cattrs' preconf modules do. Two are built: `converter`, whose errors name
every field, and `fast_converter`, which stops at the first failure and is tried first on
the per-message path.

`converter` only explains a failure, and a peer chooses how many failures there are: an
explanation collects at most `MAX_ERRORS` of them and skips the items of arrays and maps
after that (each failure costs ~10 µs to collect, and 1 MiB of wrong items held 524,000).
"""

from __future__ import annotations

import collections.abc as abc
import datetime as dt
import threading
import typing
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal, Union, cast
from uuid import UUID

import cattrs
from cattrs.cols import (
    homogenous_tuple_structure_factory,
    list_structure_factory,
    mapping_structure_factory,
)
from cattrs.errors import BaseValidationError, IterableValidationError
from cattrs.strategies import configure_union_passthrough
from cattrs.v import format_exception, transform_error

from .errors import ValidationError
from .fields import is_record

__all__ = [
    "MAX_ERRORS",
    "TooManyErrors",
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


MAX_ERRORS = 10
"""Failures the explanation of one value collects; the items of arrays and maps after that
are not checked."""


class TooManyErrors(ValueError):
    """Stands for the items of arrays and maps that were not checked after `MAX_ERRORS`."""

    def __init__(self, skipped: int) -> None:
        super().__init__(f"{skipped} more value(s) not checked after {MAX_ERRORS} errors")


def _format(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, (WrongType, TooManyErrors)):
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


_tally = threading.local()
"""``_tally.now``: [failures, items skipped] of the value being explained in this thread."""


def _counted(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """An item hook that counts failures of single values, and skips items once `MAX_ERRORS`
    have failed."""

    def hook(value: Any, t: Any) -> Any:
        tally = _tally.now
        if tally[0] >= MAX_ERRORS:
            tally[1] += 1
            return None  # not checked: the container raises anyway
        try:
            return handler(value, t)
        except BaseValidationError:  # a nested container or class: its items were counted
            raise
        except Exception:
            tally[0] += 1
            raise

    return hook


class _Counting:
    """A view of a detailed converter that hands cattrs' collection factories `_counted`
    item hooks."""

    def __init__(self, conv: cattrs.Converter) -> None:
        self._conv = conv

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conv, name)

    def get_structure_hook(self, type_: Any, cache_result: bool = True) -> Any:
        return _counted(self._conv.get_structure_hook(type_, cache_result=cache_result))


def _capped(inner: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """A collection hook built on `_Counting`: the outermost one keeps the tally and says
    how many items it skipped."""

    def hook(value: Any, t: Any) -> Any:
        if getattr(_tally, "now", None) is not None:  # nested: the outermost one counts
            return inner(value, t)
        tally = _tally.now = [0, 0]
        try:
            result = inner(value, t)
        except IterableValidationError as exc:
            if not tally[1]:
                raise
            errors = [*exc.exceptions, TooManyErrors(tally[1])]
            raise IterableValidationError(exc.message, errors, exc.cl) from None
        finally:
            _tally.now = None
        if tally[0]:  # never: a failure propagates, so some container raised
            raise ValueError(f"{tally[0]} item(s) failed")
        return result

    return hook


def _guarded(
    build: Callable[[Any, cattrs.Converter], Any], expected: str, accepted: tuple[type, ...]
) -> Callable[[Any, cattrs.Converter], Any]:
    """Wrap a cattrs collection factory so it only takes the container types we accept.

    On a detailed converter, the collection lists at most `MAX_ERRORS` failures.
    """

    def factory(type_: Any, conv: cattrs.Converter) -> Any:
        if conv.detailed_validation:
            view = cast(cattrs.Converter, _Counting(conv))  # duck-typed: the hooks it hands out
            inner = _capped(build(type_, view))
        else:
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
