"""Args, returns and config models: one `Model` type over attrs, dataclasses and dicts.

A model turns wire data (plain msgpack values, with `Decimal`, `UUID` and `set` already
decoded from their markers) into what a handler sees, and a handler's value back into
plain data, validating strictly both ways with one cattrs converter of our own.
"""

from __future__ import annotations

import collections.abc as abc
import datetime as dt
import re
import typing
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal, Union
from uuid import UUID

import attrs
import cattrs
from cattrs.cols import (
    homogenous_tuple_structure_factory,
    list_structure_factory,
    mapping_structure_factory,
)
from cattrs.strategies import configure_union_passthrough
from cattrs.v import format_exception, transform_error
from typing_extensions import NotRequired, TypedDict

from .errors import ValidationError
from .fastpath import fast_dump, fast_load
from .fields import is_class_record, is_record, record_fields

__all__ = ["Model", "ModelSpec", "converter", "make_model", "validation_message"]

ModelSpec = Any
"""What `args=`, `returns=` and `config=` accept: None, an attrs class, a dataclass, a dict."""


class _WrongType(TypeError):
    def __init__(self, expected: str, value: object) -> None:
        super().__init__(f"expected {expected}, got {type(value).__name__}")


def _format(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, _WrongType):
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


# -- the converter --------------------------------------------------------------------------


def _exact(expected: str, *accepted: type) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _: Any) -> Any:
        if isinstance(value, accepted) and not (isinstance(value, bool) and bool not in accepted):
            return value
        raise _WrongType(expected, value)

    return hook


def _structure_float(value: Any, _: Any) -> float:
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # the one widening we allow, as mypy does
    raise _WrongType("float", value)


def _structure_datetime(value: Any, _: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    raise _WrongType("datetime (ISO 8601 string)", value)


def _structure_date(value: Any, _: Any) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        return dt.date.fromisoformat(value)
    raise _WrongType("date (ISO 8601 string)", value)


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
                raise _WrongType(expected, value)
            return inner(value, t)

        return hook

    return factory


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
        hints = typing.get_type_hints(type_)
    else:
        return
    for hint in hints.values():
        check_map_keys(hint, seen)


def _set_factory(type_: Any, conv: cattrs.Converter) -> Any:
    args = typing.get_args(type_)
    elem = args[0] if args else Any
    elem_hook = conv.get_structure_hook(elem)
    out = frozenset if _origin(type_) is frozenset else set

    def hook(value: Any, _: Any) -> Any:
        if not isinstance(value, (set, frozenset)):
            raise _WrongType("set", value)
        return out(elem_hook(item, elem) for item in value)

    return hook


def _tuple_factory(type_: Any, conv: cattrs.Converter) -> Any:
    args = typing.get_args(type_)
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        return _guarded(homogenous_tuple_structure_factory, "array", (list, tuple))(type_, conv)
    hooks = [conv.get_structure_hook(arg) for arg in args]

    def hook(value: Any, _: Any) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)):
            raise _WrongType("array", value)
        if len(value) != len(args):
            raise ValueError(f"expected {len(args)} items, got {len(value)}")
        return tuple(h(item, arg) for h, item, arg in zip(hooks, value, args, strict=False))

    return hook


_LISTS = {list, abc.Sequence, abc.MutableSequence}
_SETS = {set, frozenset, abc.Set, abc.MutableSet}
_DICTS = {dict, abc.Mapping, abc.MutableMapping}


def _make_converter(detailed: bool = True) -> cattrs.Converter:
    # A plain cattrs.Converter rather than cattrs.preconf.msgpack: that preset turns sets into
    # lists and datetimes into timestamps, and our wire keeps sets (as markers) and ISO strings.
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=detailed)
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
    return conv


converter = _make_converter()
"""The converter every model uses; never cattrs' global one. Its errors name every field."""

_fast = _make_converter(detailed=False)
"""The same rules without error bookkeeping: the per-message path tries it first and asks
`converter` only to explain a failure."""


# -- predecessor dict specs -> typing -------------------------------------------------------

_dict_model_count = 0


def _translate(spec: Any, name: str) -> Any:
    """Turn a predecessor type spec (`{str: int}`, `[int]`, `(a, b)`, `{str}`) into typing."""
    if isinstance(spec, dict):
        if len(spec) == 1 and isinstance(next(iter(spec)), type):
            key, value = next(iter(spec.items()))
            return dict[key, _translate(value, name)]  # type: ignore[valid-type,misc]
        return _typed_dict(name, spec, {})
    if isinstance(spec, list):
        return list[_translate(spec[0], name)] if spec else list[Any]  # type: ignore[misc]
    if isinstance(spec, tuple):
        return tuple[tuple(_translate(item, name) for item in spec)]  # type: ignore[misc]
    if isinstance(spec, (set, frozenset)):
        items = list(spec)
        if len(items) == 1 and isinstance(items[0], type):
            return set[items[0]]  # type: ignore[valid-type]
        return set[Literal[tuple(items)]]  # type: ignore[misc]
    return spec


def _typed_dict(name: str, required: dict[str, Any], optional: dict[str, Any]) -> Any:
    global _dict_model_count
    _dict_model_count += 1
    fields: dict[str, Any] = {k: _translate(v, f"{name}_{k}") for k, v in required.items()}
    for key, value in optional.items():
        fields[key] = NotRequired[_translate(value, f"{name}_{key}")]
    for key in fields:
        if not isinstance(key, str):
            raise TypeError(f"{name}: field names must be str, got {key!r}")
    ident = re.sub(r"\W", "_", name)  # cattrs generates code named after the type
    return TypedDict(f"{ident}_{_dict_model_count}", fields)  # type: ignore[operator]


# -- Model ----------------------------------------------------------------------------------


def _identity(value: Any) -> Any:
    return value


@attrs.define(frozen=True)
class Model:
    """A validated args/returns/config shape.

    `load` takes plain data to what a handler sees; `dump` takes a handler's value to
    plain data. Both raise `ValidationError` naming `where`, the field and the type.
    """

    spec: ModelSpec
    type: Any
    required: dict[str, Any]
    optional: dict[str, Any]
    _load: Callable[[Any], Any] = attrs.field(alias="load")
    _dump: Callable[[Any], Any] = attrs.field(alias="dump")
    _explain_load: Callable[[Any], Any] | None = attrs.field(default=None, alias="explain_load")
    _explain_dump: Callable[[Any], Any] | None = attrs.field(default=None, alias="explain_dump")

    @property
    def is_any(self) -> bool:
        """True for the `None` model, which takes anything msgpack can carry."""
        return self.type is None

    def load(self, data: Any, where: str) -> Any:
        """Validate plain data into what a handler receives."""
        try:
            return self._load(data)
        except Exception:  # cattrs raises many kinds; all mean "invalid"
            return _explain(self._explain_load or self._load, data, where)

    def dump(self, value: Any, where: str) -> Any:
        """Validate a handler's value (instance or dict) into plain data for the wire."""
        try:
            return self._dump(value)
        except Exception:
            return _explain(self._explain_dump or self._dump, value, where)

    @property
    def fast_load(self) -> Callable[[Any], Any]:
        """`load` without the error message: raises anything on invalid data. For hot paths
        that call `load` only to explain a failure."""
        return self._load

    @property
    def fast_dump(self) -> Callable[[Any], Any]:
        """`dump` without the error message; see `fast_load`."""
        return self._dump

    def field_type(self, key: str) -> Any:
        """The declared type of a top-level field, or None when unknown."""
        return self.required.get(key, self.optional.get(key))


def _explain(detailed: Callable[[Any], Any], value: Any, where: str) -> Any:
    """Re-run a failed conversion with full error detail and raise `ValidationError`."""
    try:
        return detailed(value)  # the fast path failed, so this raises too
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc}") from None
    except Exception as exc:
        raise ValidationError(validation_message(where, exc)) from None


ANY = Model(spec=None, type=None, required={}, optional={}, load=_identity, dump=_identity)


def _class_fields(cls: type) -> tuple[dict[str, Any], dict[str, Any]]:
    required: dict[str, Any] = {}
    optional: dict[str, Any] = {}
    for field in record_fields(cls):
        (required if field.required else optional)[field.name] = field.type
    return required, optional


def _class_converters(cls: type, conv: cattrs.Converter) -> tuple[Any, Any]:
    structure = conv.get_structure_hook(cls)
    unstructure = conv.get_unstructure_hook(cls)

    def load(data: Any) -> Any:
        if not isinstance(data, dict):
            raise _WrongType("map", data)
        return structure(data, cls)

    def dump(value: Any) -> Any:
        if isinstance(value, cls):
            plain = unstructure(value)
            structure(plain, cls)  # attrs does not check types at construction: we do
            return plain
        return unstructure(load(value))

    if conv is _fast:  # the per-message path: generated checks for flat classes
        return fast_load(cls, load) or load, fast_dump(cls, unstructure, dump) or dump
    return load, dump


Converters = Callable[[Any, cattrs.Converter], tuple[Any, Any]]


def _build(
    spec: ModelSpec,
    type_: Any,
    required: dict[str, Any],
    optional: dict[str, Any],
    converters: Converters,
) -> Model:
    """A `Model` whose fast path uses `_fast` and whose failures `converter` explains."""
    load, dump = converters(type_, _fast)
    explain_load, explain_dump = converters(type_, converter)
    return Model(
        spec=spec,
        type=type_,
        required=required,
        optional=optional,
        load=load,
        dump=dump,
        explain_load=explain_load,
        explain_dump=explain_dump,
    )


def _class_model(cls: type) -> Model:
    required, optional = _class_fields(cls)
    return _build(cls, cls, required, optional, _class_converters)


def _dict_converters(typed: Any, conv: cattrs.Converter) -> tuple[Any, Any]:
    structure = conv.get_structure_hook(typed)
    unstructure = conv.get_unstructure_hook(typed)

    def load(data: Any) -> Any:
        if not isinstance(data, dict):
            raise _WrongType("map", data)
        return structure(data, typed)

    def dump(value: Any) -> Any:
        return unstructure(load(value))

    return load, dump


def _dict_model(spec: dict[str, Any], optional: dict[str, Any], name: str) -> Model:
    typed = _typed_dict(name, spec, optional)
    return _build(spec, typed, dict(spec), dict(optional), _dict_converters)


def _is_shorthand(spec: Any) -> bool:
    """A whole-model shorthand: ``{str: int}``, ``[int]``, ``(int, str)``, ``{str}``."""
    if isinstance(spec, dict):
        return len(spec) == 1 and isinstance(next(iter(spec)), type)
    return True


def _type_converters(type_: Any, conv: cattrs.Converter) -> tuple[Any, Any]:
    structure = conv.get_structure_hook(type_)
    unstructure = conv.get_unstructure_hook(type_)

    def load(data: Any) -> Any:
        return structure(data, type_)

    def dump(value: Any) -> Any:
        return unstructure(structure(value, type_))

    return load, dump


def _type_model(spec: Any, name: str) -> Model:
    """A model that is one type, not a record: the predecessor's ``{str: int}`` as args."""
    type_ = _translate(spec, name)
    check_map_keys(type_)
    return _build(spec, type_, {}, {}, _type_converters)


def make_model(
    spec: ModelSpec, optional: dict[str, Any] | None = None, name: str = "Model"
) -> Model:
    """Build a `Model` from `None`, an attrs class, a dataclass or a predecessor dict.

    Args:
        spec: the `args=` / `returns=` value.
        optional: `optional_args=` / `optional_returns=`, only with a dict (or `None`) spec.
        name: used to name generated types; the connection name reads best.

    Raises:
        TypeError: for a spec that is none of the above.
    """
    if is_class_record(spec):
        if optional:
            raise TypeError(f"{name}: optional fields go on the class itself, not optional_*")
        try:
            check_map_keys(spec)
        except TypeError as exc:
            raise TypeError(f"{name}: {exc}") from None
        return _class_model(spec)
    if spec is None and not optional:
        return ANY
    if (
        isinstance(spec, (dict, list, tuple, set, frozenset))
        and _is_shorthand(spec)
        and not optional
    ):
        return _type_model(spec, name)
    if spec is None or isinstance(spec, dict):
        model = _dict_model(dict(spec or {}), dict(optional or {}), name)
        try:
            check_map_keys(model.type)
        except TypeError as exc:
            raise TypeError(f"{name}: {exc}") from None
        return model
    raise TypeError(
        f"{name}: a model must be None, an attrs class, a dataclass or a dict, got {spec!r}"
    )
