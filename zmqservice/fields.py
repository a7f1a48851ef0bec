"""The one walk over a record type's fields: attrs classes, dataclasses and TypedDicts.

Models, the generated fast path, config defaults and JSON Schemas all read fields from
here, so they agree on what a field is called on the wire, whether it is required and
what its default is.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import attrs
from typing_extensions import get_type_hints, is_typeddict

__all__ = ["Field", "is_class_record", "is_record", "record_fields"]


@attrs.define(frozen=True)
class Field:
    """One field of a record type, as the wire sees it."""

    name: str
    """The wire key and the attribute name: cattrs keys private attrs fields by name."""
    alias: str
    """The `__init__` argument (attrs strips a leading underscore; may be set by hand)."""
    type: Any
    """The resolved type hint, or None when the class does not say."""
    required: bool
    """The wire must carry it: no default, no factory (TypedDicts: a required key)."""
    default: Any
    """The plain default, or `attrs.NOTHING` (none, or made by a factory)."""
    factory: bool
    """The default is made by a factory (attrs `Factory`, dataclass `default_factory`)."""
    init: bool
    """`__init__` takes it."""


def is_class_record(tp: Any) -> bool:
    """True for an attrs class or a dataclass (the class, not an instance)."""
    return isinstance(tp, type) and (attrs.has(tp) or dataclasses.is_dataclass(tp))


def is_record(tp: Any) -> bool:
    """True for what `record_fields` walks: an attrs class, a dataclass or a TypedDict."""
    return is_class_record(tp) or is_typeddict(tp)


def record_fields(tp: Any) -> tuple[Field, ...]:
    """Walk the fields of an attrs class, a dataclass or a TypedDict, in declaration order.

    Type hints are resolved once, with forward references evaluated and `Annotated`,
    `Required` and `NotRequired` stripped.

    Raises:
        TypeError: for anything else.
        NameError: for a forward reference that does not resolve.
    """
    if not is_record(tp):
        raise TypeError(f"{tp!r} is not an attrs class, a dataclass or a TypedDict")
    hints = get_type_hints(tp)
    if is_typeddict(tp):
        required_keys = getattr(tp, "__required_keys__", frozenset(hints))
        return tuple(
            _typeddict_field(key, hint, key in required_keys) for key, hint in hints.items()
        )
    if attrs.has(tp):
        return tuple(_attrs_field(field, hints) for field in attrs.fields(tp))
    return tuple(_dataclass_field(field, hints) for field in dataclasses.fields(tp))


def _attrs_field(field: attrs.Attribute[Any], hints: dict[str, Any]) -> Field:
    factory = isinstance(field.default, attrs.Factory)  # type: ignore[arg-type]
    return Field(
        name=field.name,
        alias=field.alias or field.name,
        type=hints.get(field.name, field.type),
        required=field.default is attrs.NOTHING,
        default=attrs.NOTHING if factory else field.default,
        factory=factory,
        init=field.init,
    )


def _dataclass_field(field: dataclasses.Field[Any], hints: dict[str, Any]) -> Field:
    default = field.default
    factory = field.default_factory is not dataclasses.MISSING
    return Field(
        name=field.name,
        alias=field.name,
        type=hints.get(field.name),
        required=default is dataclasses.MISSING and not factory,
        default=attrs.NOTHING if default is dataclasses.MISSING else default,
        factory=factory,
        init=field.init,
    )


def _typeddict_field(key: str, hint: Any, required: bool) -> Field:
    return Field(
        name=key,
        alias=key,
        type=hint,
        required=required,
        default=attrs.NOTHING,
        factory=False,
        init=True,
    )
