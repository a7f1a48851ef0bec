"""Args, returns and config models: one `Model` type over attrs, dataclasses and dicts.

A model turns wire data (plain msgpack values, with `Decimal`, `UUID` and `set` already
decoded from their markers) into what a handler sees, and a handler's value back into
plain data, validating strictly both ways with the cattrs converters of `convert`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

import attrs
import cattrs
from typing_extensions import NotRequired, TypedDict

from .convert import WrongType, check_map_keys, converter, fast_converter, validation_message
from .errors import ValidationError
from .fastpath import fast_dump, fast_load
from .fields import is_class_record, record_fields

__all__ = ["Model", "ModelSpec", "make_model"]

ModelSpec = Any
"""What `args=`, `returns=` and `config=` accept: None, an attrs class, a dataclass, a dict."""


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
            raise WrongType("map", data)
        return structure(data, cls)

    def dump(value: Any) -> Any:
        if isinstance(value, cls):
            plain = unstructure(value)
            structure(plain, cls)  # attrs does not check types at construction: we do
            return plain
        return unstructure(load(value))

    if conv is fast_converter:  # the per-message path: generated checks for flat classes
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
    """A `Model` whose fast path uses `fast_converter` and whose failures `converter` explains."""
    load, dump = converters(type_, fast_converter)
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
            raise WrongType("map", data)
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
