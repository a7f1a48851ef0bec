"""Find an `App` from a target string: ``module:app``, ``module``, ``path/file.py[:app]``."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

from .app import App
from .errors import ConfigError
from .imports import import_file, import_module, split_target, walk
from .predecessor import is_predecessor_module

__all__ = ["app_of_module", "load_app", "load_target"]


def load_app(target: str) -> App:
    """Load the `App` a target names.

    ``"module:app"`` and ``"path/file.py:app"`` name it; ``"module"`` and ``"path/file.py"``
    pick the one `App` in the module.

    Raises:
        ConfigError: the module cannot be imported, or holds no (or several) apps.
    """
    module_part, attr = split_target(target)
    is_file = module_part.endswith(".py") or os.sep in module_part or "/" in module_part
    module = import_file(Path(module_part)) if is_file else import_module(module_part)
    where = f"module {module_part!r}"
    if attr is not None:
        found = walk(module, attr, where)
        if not isinstance(found, App):
            raise ConfigError(f"{target!r} is a {type(found).__name__}, not a zmqservice App")
        return found
    return app_of_module(module, where, target)


def app_of_module(module: ModuleType, where: str | None = None, target: str | None = None) -> App:
    """The one `App` in `module`, or an `App` built from a predecessor-style module."""
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
        return App.from_module(module)
    raise ConfigError(
        f"{where} holds no zmqservice App and no predecessor connection_models or main: "
        "create one with App('name')"
    )


def load_target(target: Any) -> App:
    """An `App` from an `App`, a module (ours or the predecessor's) or a target string."""
    if isinstance(target, App):
        return target
    if isinstance(target, ModuleType):
        return app_of_module(target)
    if isinstance(target, (str, os.PathLike)):
        return load_app(os.fspath(target))
    raise TypeError(f"expected an App, a module or a target string, got {type(target).__name__}")
