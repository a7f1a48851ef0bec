"""Find an `App` from a target string: ``module:app``, ``module``, ``path/file.py[:app]``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .app import App

__all__ = ["app_of_module", "import_string", "load_app", "load_target"]


def _split(target: str) -> tuple[str, str | None]:
    """Split ``module:attr`` without tripping on a Windows drive (``C:\\x.py``)."""
    head, sep, tail = target.rpartition(":")
    if not sep or (len(head) == 1 and head.isalpha() and tail.startswith(("\\", "/"))):
        return target, None
    if "/" in tail or "\\" in tail or not tail:
        return target, None
    return head, tail


def _walk(obj: Any, dotted: str, where: str) -> Any:
    for part in dotted.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{where} has no attribute {dotted!r}") from None
    return obj


def _import_module(name: str) -> ModuleType:
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


def _import_file(path: Path) -> ModuleType:
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
    module_name, attr = _split(target)
    if attr is not None:
        return _walk(_import_module(module_name), attr, f"module {module_name!r}")
    parts = target.split(".")
    # No colon: the longest importable prefix is the module, the rest attributes.
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        return _walk(module, ".".join(parts[cut:]), f"module {module_name!r}")
    raise ConfigError(f"could not import {target!r}: expected 'module:attribute'")


def load_app(target: str) -> App:
    """Load the `App` a target names.

    ``"module:app"`` and ``"path/file.py:app"`` name it; ``"module"`` and ``"path/file.py"``
    pick the one `App` in the module.

    Raises:
        ConfigError: the module cannot be imported, or holds no (or several) apps.
    """
    from .app import App

    module_part, attr = _split(target)
    is_file = module_part.endswith(".py") or os.sep in module_part or "/" in module_part
    module = _import_file(Path(module_part)) if is_file else _import_module(module_part)
    where = f"module {module_part!r}"
    if attr is not None:
        found = _walk(module, attr, where)
        if not isinstance(found, App):
            raise ConfigError(f"{target!r} is a {type(found).__name__}, not a zmqservice App")
        return found
    return app_of_module(module, where, target)


def app_of_module(module: ModuleType, where: str | None = None, target: str | None = None) -> App:
    """The one `App` in `module`, or an `App` built from a predecessor-style module."""
    from .app import App
    from .predecessor import app_from_module, is_predecessor_module

    where = where or f"module {module.__name__!r}"
    apps = {name: value for name, value in vars(module).items() if isinstance(value, App)}
    if len(apps) == 1:
        return next(iter(apps.values()))
    if len(apps) > 1:
        names = ", ".join(sorted(apps))
        raise ConfigError(
            f"{where} holds several apps ({names}): name one as '{target or where}:NAME'"
        )
    if is_predecessor_module(module):
        return app_from_module(module)
    raise ConfigError(
        f"{where} holds no zmqservice App and no predecessor connection_models or main: "
        "create one with App('name')"
    )


def load_target(target: Any) -> App:
    """An `App` from an `App`, a module (ours or the predecessor's) or a target string."""
    from .app import App

    if isinstance(target, App):
        return target
    if isinstance(target, ModuleType):
        return app_of_module(target)
    if isinstance(target, (str, os.PathLike)):
        return load_app(os.fspath(target))
    raise TypeError(f"expected an App, a module or a target string, got {type(target).__name__}")
