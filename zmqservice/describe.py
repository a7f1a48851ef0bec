"""What an app says about itself: JSON Schemas of its models, routes, the describe payload.

No IO here: `zmqservice describe`, `routes` and `docs` (and `asyncapi`) render what this
module builds.

JSON Schemas describe the **wire**, draft-07 keywords only (AsyncAPI 3.0 schema objects
are a superset of draft-07), with every nested class inlined:

- ``Decimal``, ``UUID`` and ``set`` are the predecessor's marker maps, because that is
  what travels and what validation accepts (a plain string is rejected). The marker key
  sits in ``patternProperties``: a ``properties`` map holding exactly ``__decimal__`` and
  ``as_str`` *is* a marker, and every msgpack decoder that knows markers (``codec.decode``
  and the predecessor's) would turn the schema itself into a Decimal.
- ``datetime`` / ``date``: strings, ``format: date-time`` / ``date``; ``bytes``: msgpack
  bin, shown as ``type: string, format: binary``.
- ``Enum`` and ``Literal``: ``enum`` of the values; ``Optional[X]``: X or ``null``.
"""

from __future__ import annotations

import collections.abc as abc
import datetime as dt
import enum
import typing
from decimal import Decimal
from types import NoneType, UnionType
from typing import TYPE_CHECKING, Any, Literal, Union
from uuid import UUID

import attrs
from typing_extensions import is_typeddict

from .fields import is_record, record_fields

if TYPE_CHECKING:
    from .app import App
    from .connection import Connection
    from .models import Model

__all__ = [
    "DECIMAL_PATTERN",
    "describe_app",
    "handler_name",
    "json_schema",
    "model_label",
    "route_rows",
    "schema_label",
    "type_label",
    "type_schema",
]

Schema = dict[str, Any]

DECIMAL_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
"""What a Decimal marker's ``as_str`` holds: finite numbers (NaN and Infinity are left out)."""

_SIMPLE: dict[Any, Schema] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    bytes: {"type": "string", "format": "binary"},
    NoneType: {"type": "null"},
    dt.datetime: {"type": "string", "format": "date-time"},
    dt.date: {"type": "string", "format": "date"},
}
_LISTS = {list, abc.Sequence, abc.MutableSequence}
_SETS = {set, frozenset, abc.Set, abc.MutableSet}
_DICTS = {dict, abc.Mapping, abc.MutableMapping}
_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number"}


def _marker(key: str, value_key: str, value: Schema, title: str) -> Schema:
    return {
        "title": title,
        "type": "object",
        "properties": {value_key: value},
        "patternProperties": {f"^{key}$": {"const": True}},
        "required": [key, value_key],
        "additionalProperties": False,
    }


def _is_generated(tp: Any) -> bool:
    """A TypedDict that `models` built from a predecessor dict (its name is internal)."""
    return is_typeddict(tp) and getattr(tp, "__module__", "") == "zmqservice.models"


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _enum_schema(values: list[Any]) -> Schema:
    values = [_plain(v) for v in values]
    schema: Schema = {"const": values[0]} if len(values) == 1 else {"enum": values}
    kinds = {_JSON_TYPES.get(type(v)) for v in values}
    if len(kinds) == 1 and None not in kinds:
        schema["type"] = kinds.pop()
    return schema


def _union(schemas: list[Schema]) -> Schema:
    if all(len(s) == 1 and isinstance(s.get("type"), str) for s in schemas):
        types = list(dict.fromkeys(s["type"] for s in schemas))
        return {"type": types[0] if len(types) == 1 else types}
    return {"anyOf": schemas}


def _description(cls: type) -> str | None:
    doc = cls.__doc__ or ""
    if not doc.strip() or doc.startswith(f"{cls.__name__}("):  # dataclasses' generated doc
        return None
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def _json_default(value: Any) -> tuple[bool, Any]:
    value = _plain(value)
    if value is None or isinstance(value, (str, bool, int, float)):
        return True, value
    return False, None


def _object_schema(tp: Any, seen: tuple[Any, ...]) -> Schema:
    name = getattr(tp, "__name__", "object")
    if tp in seen:
        return {"title": name, "type": "object", "description": f"recursive: a nested {name}"}
    schema: Schema = {} if _is_generated(tp) else {"title": name}
    if not _is_generated(tp) and (description := _description(tp)):
        schema["description"] = description
    properties: Schema = {}
    required: list[str] = []
    for field in record_fields(tp):
        field_schema = _type_schema(field.type, (*seen, tp)) if field.type is not None else {}
        if field.default is not attrs.NOTHING:
            has_default, default = _json_default(field.default)
            if has_default:
                field_schema = {**field_schema, "default": default}
        properties[field.name] = field_schema
        if field.required:
            required.append(field.name)
    schema.update(type="object", properties=properties)
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema


def _type_schema(tp: Any, seen: tuple[Any, ...]) -> Schema:
    if tp is Any or tp is object:
        return {}
    if tp is None:
        tp = NoneType
    if tp in _SIMPLE:
        return dict(_SIMPLE[tp])
    if tp is Decimal:
        return _marker(
            "__decimal__", "as_str", {"type": "string", "pattern": DECIMAL_PATTERN}, "Decimal"
        )
    if tp is UUID:
        return _marker("__uuid__", "as_str", {"type": "string", "format": "uuid"}, "UUID")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"title": tp.__name__, **_enum_schema(list(tp))}
    if is_record(tp):
        return _object_schema(tp, seen)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _type_schema(args[0], seen)
    if origin is Literal:
        return _enum_schema(list(args))
    if origin in (Union, UnionType):
        return _union([_type_schema(arg, seen) for arg in args])
    origin = origin or tp
    if origin in _LISTS or (origin is tuple and (not args or args[-1] is Ellipsis)):
        return (
            {"type": "array", "items": _type_schema(args[0], seen)} if args else {"type": "array"}
        )
    if origin in _SETS:
        items: Schema = {"type": "array", "uniqueItems": True}
        if args:
            items["items"] = _type_schema(args[0], seen)
        return _marker("__set__", "value", items, "set")
    if origin is tuple:
        return {
            "type": "array",
            "items": [_type_schema(arg, seen) for arg in args],
            "minItems": len(args),
            "maxItems": len(args),
            "additionalItems": False,
        }
    if origin in _DICTS:
        schema: Schema = {"type": "object"}
        if len(args) == 2:
            schema["additionalProperties"] = _type_schema(args[1], seen)
        return schema
    return {"description": f"{type_label(tp)} (no JSON Schema for this type)"}


def type_schema(tp: Any) -> Schema:
    """Return the JSON Schema (draft-07 keywords) of the values a type takes on the wire.

    Args:
        tp: a type a model field may have: ``str``, ``list[int]``, an attrs class ...

    Returns:
        The schema; ``{}`` (anything) for ``Any`` and for types it does not know.
    """
    return _type_schema(tp, ())


def json_schema(model: Model | None) -> Schema:
    """Return the JSON Schema of a model's wire data; ``{}`` for the `None` (any) model.

    Example:
        json_schema(app.connections["cancel_order"].args)
        # {"title": "CancelOrder", "type": "object", "properties": {...}, ...}
    """
    if model is None or model.is_any:
        return {}
    return type_schema(model.type)


# -- short labels ---------------------------------------------------------------------------


def type_label(tp: Any) -> str:
    """A short human label for a type: ``str``, ``list[int]``, ``{a: int, b?: str}``."""
    if tp is Any:
        return "any"
    if tp is None or tp is NoneType:
        return "None"
    if _is_generated(tp):
        inner = ", ".join(
            f"{field.name}{'' if field.required else '?'}: {type_label(field.type)}"
            for field in record_fields(tp)
        )
        return "{" + inner + "}"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, UnionType):
        return " | ".join(type_label(arg) for arg in args)
    if origin is Literal:
        return f"Literal[{', '.join(repr(_plain(a)) for a in args)}]"
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        inner = ", ".join("..." if a is Ellipsis else type_label(a) for a in args)
        return f"{name}[{inner}]" if args else name
    return getattr(tp, "__name__", repr(tp))


def model_label(model: Model | None) -> str:
    """``-`` for no model, ``any`` for the `None` model, else the type's label."""
    if model is None:
        return "-"
    return "any" if model.is_any else type_label(model.type)


def schema_label(schema: Schema) -> str:
    """A short label for a JSON Schema this module made: ``str``, ``Decimal``, ``list[int]``."""
    if not schema:
        return "any"
    if "title" in schema and schema.get("type") == "object" and "patternProperties" in schema:
        if schema["title"] == "set":
            return f"set[{schema_label(schema['properties']['value'].get('items', {}))}]"
        return str(schema["title"])
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        return schema.get("title") or f"Literal[{', '.join(repr(v) for v in values)}]"
    if "anyOf" in schema:
        return " | ".join(schema_label(s) for s in schema["anyOf"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(schema_label({"type": k}) for k in kind)
    if kind == "string":
        return {"date-time": "datetime", "date": "date", "binary": "bytes"}.get(
            schema.get("format", ""), "str"
        )
    if kind == "array":
        items = schema.get("items")
        if isinstance(items, list):
            return f"tuple[{', '.join(schema_label(i) for i in items)}]"
        return f"list[{schema_label(items or {})}]"
    if kind == "object":
        if "title" in schema:
            return str(schema["title"])
        if "properties" in schema:
            required = set(schema.get("required", []))
            inner = ", ".join(
                f"{key}{'' if key in required else '?'}: {schema_label(sub)}"
                for key, sub in schema["properties"].items()
            )
            return "{" + inner + "}"
        return f"dict[str, {schema_label(schema.get('additionalProperties') or {})}]"
    names = {"integer": "int", "number": "float", "boolean": "bool", "null": "None"}
    return names.get(str(kind), str(kind or "any"))


# -- routes and the describe payload --------------------------------------------------------


def handler_name(conn: Connection) -> str:
    """``module:function`` of a connection's handler (or external target), else ``-``."""
    fn = conn.handler or conn.target
    if fn is None:
        return "-"
    if isinstance(fn, str):
        return fn
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}:{getattr(fn, '__qualname__', repr(fn))}"


def route_rows(app: App) -> list[dict[str, Any]]:
    """One row per connection, as ``zmqservice routes`` shows it (``--json`` prints these)."""
    return [
        {
            "name": conn.name,
            "kind": conn.kind,
            "address": conn.address or "-",
            "topic": conn.topic,
            "args": model_label(conn.args),
            "returns": model_label(conn.returns),
            "handler": handler_name(conn),
        }
        for conn in app.connections.values()
    ]


def _safe_schema(model: Model | None) -> Schema:
    # Describe runs inside a replyer: nothing about a model may stop the service.
    try:
        return json_schema(model)
    except Exception as exc:
        return {"description": f"no schema: {type(exc).__name__}: {exc}"}


def _connection(conn: Connection) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": conn.name, "kind": conn.kind, "topic": conn.topic}
    if conn.kind in ("replyer", "subscriber", "publisher"):
        entry["bind"] = conn.bind
    if conn.kind == "publisher":
        entry["xpub"] = conn.xpub
    entry["args"] = _safe_schema(conn.args)
    if conn.returns is not None:
        entry["returns"] = _safe_schema(conn.returns)
    return entry


def describe_app(app: App) -> dict[str, Any]:
    """Describe `app`: what the built-in describe request answers with.

    Returns:
        ``{"app": name, "zmqservice": version, "connections": [...]}``, each connection with
        ``name``, ``kind``, ``topic``, ``bind`` (replyers, subscribers, publishers),
        ``xpub`` (publishers), and the JSON Schemas ``args`` and ``returns`` (replyers,
        requesters, external targets).
    """
    from ._version import __version__

    return {
        "app": app.name,
        "zmqservice": __version__,
        "connections": [_connection(conn) for conn in app.connections.values()],
    }
