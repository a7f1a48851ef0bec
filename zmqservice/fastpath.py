"""Generated validators for the common message shape: a flat attrs class of plain fields.

cattrs calls one hook per field; for a class whose fields are all `str`, `int`, `float`,
`bool`, `bytes`, `Decimal` or `UUID` (or `Optional` of those), one generated function
checks every field inline and builds the instance, which is about twice as fast. Anything
it does not accept goes to the cattrs path, which applies the same rules and explains
failures, so the two can never disagree on what is valid, only on how fast.

The generated source is registered in `linecache`, as attrs and cattrs do with theirs, so
a traceback through a generated function shows its lines.
"""

from __future__ import annotations

import linecache
import typing
from collections.abc import Callable
from decimal import Decimal
from types import NoneType, UnionType
from typing import Any, Union
from uuid import UUID

import attrs

from .fields import Field, record_fields

__all__ = ["fast_dump", "fast_load"]

_CHECKS = {
    str: "{x}.__class__ is str",
    int: "({x}.__class__ is int or (isinstance({x}, int) and {x}.__class__ is not bool))",
    bool: "{x}.__class__ is bool",
    float: "({x}.__class__ is float or {x}.__class__ is int)",
    bytes: "{x}.__class__ is bytes",
    Decimal: "isinstance({x}, Decimal)",
    UUID: "isinstance({x}, UUID)",
}


def _check(type_: Any, x: str) -> str | None:
    """Python source that is true when `x` is valid for `type_`, or None if not simple."""
    if type_ in _CHECKS:
        return _CHECKS[type_].format(x=x)
    if typing.get_origin(type_) in (Union, UnionType):
        args = typing.get_args(type_)
        rest = [a for a in args if a is not NoneType]
        if len(rest) == 1 and len(args) == 2 and rest[0] in _CHECKS:
            return f"({x} is None or {_CHECKS[rest[0]].format(x=x)})"
    return None


def _fields(cls: type) -> tuple[Field, ...] | None:
    """The fields of `cls` when every one is simple, else None."""
    if not attrs.has(cls):
        return None
    fields = record_fields(cls)
    for field in fields:
        if not field.init or field.factory:
            return None
        if field.alias != field.name:  # cattrs keys private fields by name
            return None
        if _check(field.type, "x") is None:
            return None
    return fields


def _filename(name: str, cls: type, source: str) -> str:
    """Register `source` in `linecache` under a unique name, so tracebacks show its lines."""
    base = f"<zmqservice generated {name} {cls.__module__}.{cls.__qualname__}"
    entry = (len(source), None, source.splitlines(keepends=True), base + ">")
    filename, count = base + ">", 1
    # The same source for the same class reuses its entry; other source gets a new name.
    while linecache.cache.setdefault(filename, entry) != entry:
        count += 1
        filename = f"{base}-{count}>"
        entry = (*entry[:3], filename)
    return filename


def _compile(name: str, cls: type, source: str, env: dict[str, Any]) -> Callable[..., Any]:
    namespace: dict[str, Any] = {"Decimal": Decimal, "UUID": UUID, **env}
    exec(compile(source, _filename(name, cls, source), "exec"), namespace)
    return namespace[name]  # type: ignore[no-any-return]


def fast_load(cls: type, fallback: Callable[[Any], Any]) -> Callable[[Any], Any] | None:
    """A loader for `cls` from a wire dict, or None when `cls` is not a flat simple class."""
    fields = _fields(cls)
    if fields is None:
        return None
    all_required = all(field.required for field in fields)
    # No optional fields: the right size and every key found means no unknown keys either.
    keys_ok = f"len(d) == {len(fields)}" if all_required else "d.keys() <= KEYS"
    lines = ["def load(d):", f"    if d.__class__ is not dict or not {keys_ok}:"]
    lines.append("        return fallback(d)")
    checks: list[str] = []
    kwargs: list[str] = []
    env: dict[str, Any] = {"KEYS": frozenset(field.name for field in fields)}
    for i, field in enumerate(fields):
        var = f"v{i}"
        if field.required:
            lines.append(f"    {var} = d.get({field.name!r}, MISSING)")
            checks.append(f"{var} is not MISSING")
        else:
            env[f"D{i}"] = field.default
            lines.append(f"    {var} = d.get({field.name!r}, D{i})")
        checks.append(_check(field.type, var) or "False")
        value = (
            f"({var} if {var}.__class__ is not int else float({var}))"
            if field.type is float
            else var
        )
        kwargs.append(f"{field.alias}={value}")
    lines += [
        f"    if {' and '.join(checks)}:",
        f"        return cls({', '.join(kwargs)})",
        "    return fallback(d)",
    ]
    env.update(cls=cls, fallback=fallback, MISSING=object())
    return _compile("load", cls, "\n".join(lines), env)


def fast_dump(
    cls: type, unstructure: Callable[[Any], Any], fallback: Callable[[Any], Any]
) -> Callable[[Any], Any] | None:
    """A dumper that type-checks an instance of `cls` inline; None when not applicable."""
    fields = _fields(cls)
    if fields is None:
        return None
    checks = [_check(field.type, f"v.{field.name}") for field in fields]
    source = "\n".join(
        [
            "def dump(v):",
            f"    if v.__class__ is cls and {' and '.join(c or 'False' for c in checks)}:",
            "        return unstructure(v)",
            "    return fallback(v)",
        ]
    )
    env = {"cls": cls, "unstructure": unstructure, "fallback": fallback}
    return _compile("dump", cls, source, env)
