"""Import a module, a file or an attribute from a string: ``pkg.mod:attr.sub``, ``path/x.py``.

Knows nothing of `App`: `loading` finds apps in what this imports; external targets use
`import_string`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import ConfigError

__all__ = ["import_file", "import_module", "import_string", "split_target", "walk"]


def split_target(target: str) -> tuple[str, str | None]:
    """Split ``module:attr`` without tripping on a Windows drive (``C:\\x.py``)."""
    head, sep, tail = target.rpartition(":")
    if not sep or (len(head) == 1 and head.isalpha() and tail.startswith(("\\", "/"))):
        return target, None
    if "/" in tail or "\\" in tail or not tail:
        return target, None
    return head, tail


def walk(obj: Any, dotted: str, where: str) -> Any:
    for part in dotted.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{where} has no attribute {dotted!r}") from None
    return obj


def import_module(name: str) -> ModuleType:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # as `python -m` does
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigError(f"could not import {name!r}: no such module") from None
        raise ConfigError(f"could not import {name!r}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise ConfigError(f"could not import {name!r}: {type(exc).__name__}: {exc}") from exc


def import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ConfigError(f"could not import {str(path)!r}: no such file")
    path = path.resolve()
    name = path.stem
    parent = str(path.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)  # sibling imports work, as when running the file
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"could not import {str(path)!r}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(f"could not import {str(path)!r}: {type(exc).__name__}: {exc}") from exc
    return module


def import_string(target: str) -> Any:
    """Import ``"package.module:attr.method"`` (or ``"package.module.attr"``)."""
    module_name, attr = split_target(target)
    if attr is not None:
        return walk(import_module(module_name), attr, f"module {module_name!r}")
    parts = target.split(".")
    # No colon: the longest importable prefix is the module, the rest attributes.
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        return walk(module, ".".join(parts[cut:]), f"module {module_name!r}")
    raise ConfigError(f"could not import {target!r}: expected 'module:attribute'")
