"""Run modules written for `service-framework` 0.0.20 unchanged: `App.from_module`.

Such a module holds module-level ``connection_models``, ``config_model``, ``main``,
``init_function``, ``setup_config``, ``setup_addresses``, ``sigint_handler`` and
``sigterm_handler``; this turns them into the equivalent `App`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .app import App
    from .connection import Connection

__all__ = ["app_config", "connection_model", "is_predecessor_module", "register_module"]

HOOK_NAMES = {
    "main": "main",
    "init_function": "init",
    "setup_config": "setup_config",
    "setup_addresses": "setup_addresses",
    "sigint_handler": "on_sigint",
    "sigterm_handler": "on_sigterm",
}
KINDS = {
    "in": ("replyer", "subscriber"),
    "out": ("requester", "publisher", "external_target", "external_request"),
}


def is_predecessor_module(module: ModuleType) -> bool:
    """True when a module looks like a predecessor service (models or a main, no App)."""
    return hasattr(module, "connection_models") or callable(getattr(module, "main", None))


def _spec(model: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = model.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a dict of field -> type, got {type(value).__name__}")
    return dict(value)


def _add(app: App, side: str, name: str, model: Mapping[str, Any]) -> None:
    where = f"connection_models.{side}.{name}"
    if not isinstance(model, Mapping):
        raise ConfigError(f"{where}: expected a dict, got {type(model).__name__}")
    kind = model.get("connection_type")
    if kind not in KINDS[side]:
        raise ConfigError(f"{where}.connection_type: {kind!r} is not one of {KINDS[side]}")
    creation = dict(model.get("required_creation_arguments") or {})
    creation.update(model.get("optional_creation_arguments") or {})
    args = _spec(model, "required_arguments") or {}
    optional_args = _spec(model, "optional_arguments")
    returns = _spec(model, "required_return_arguments")
    optional_returns = _spec(model, "optional_return_arguments")
    if returns is None and optional_returns:
        returns = {}
    topic = str(creation.get("topic", ""))
    if kind in ("replyer", "subscriber"):
        handler = creation.get("connection_function") or creation.get("on_new_message")
        if not callable(handler):
            raise ConfigError(f"{where}.required_creation_arguments.connection_function: missing")
        if kind == "replyer":
            app.replyer(
                name,
                args=args,
                optional_args=optional_args,
                returns=returns,
                optional_returns=optional_returns,
            )(handler)
        else:
            app.subscriber(
                name,
                args=args,
                optional_args=optional_args,
                topic=topic,
                bind=bool(creation.get("is_binder", False)),
            )(handler)
    elif kind == "requester":
        app.requester(
            name,
            args=args,
            optional_args=optional_args,
            returns=returns,
            optional_returns=optional_returns,
        )
    elif kind == "publisher":
        app.publisher(
            name,
            args=args,
            optional_args=optional_args,
            topic=topic,
            xpub=bool(creation.get("is_x_pub", False)),
        )
    else:
        target = creation.get("target") or creation.get("func_to_call")
        if target is None:
            raise ConfigError(f"{where}.required_creation_arguments.target: missing")
        app.external_target(
            name,
            target,
            args=args,
            optional_args=optional_args,
            returns=returns,
            optional_returns=optional_returns,
        )


def app_config(module: ModuleType) -> dict[str, dict[str, Any]] | None:
    """The `App` config model of a predecessor module: its ``config_model``, checked.

    Raises:
        ConfigError: ``config_model`` is not ``{'required': {...}, 'optional': {...}}``.
    """
    config_model = getattr(module, "config_model", None)
    if config_model is not None and not isinstance(config_model, Mapping):
        raise ConfigError("config_model must be {'required': {...}, 'optional': {...}}")
    if not config_model:
        return None
    return {
        "required": dict(config_model.get("required") or {}),
        "optional": dict(config_model.get("optional") or {}),
    }


def register_module(app: App, module: ModuleType) -> None:
    """Register a predecessor module's connections and hooks onto `app`.

    Raises:
        ConfigError: a model in the module is malformed; the message names it.
    """
    models = getattr(module, "connection_models", None) or {}
    if not isinstance(models, Mapping):
        raise ConfigError("connection_models must be {'in': {...}, 'out': {...}}")
    for side in ("in", "out"):
        for conn_name, model in (models.get(side) or {}).items():
            try:
                _add(app, side, conn_name, model)
            except (TypeError, ValueError) as exc:
                if isinstance(exc, ConfigError):
                    raise
                raise ConfigError(f"connection_models.{side}.{conn_name}: {exc}") from None
    for attr, hook in HOOK_NAMES.items():
        fn = getattr(module, attr, None)
        if callable(fn):
            app.add_hook(hook, fn)


def connection_model(conn: Connection) -> dict[str, Any]:
    """The predecessor-shaped connection model of `conn`, as `App.connection_models` shows it."""
    model: dict[str, Any] = {
        "connection_type": conn.kind,
        "required_creation_arguments": {},
        "optional_creation_arguments": {},
        "required_arguments": dict(conn.args.required),
        "optional_arguments": dict(conn.args.optional),
    }
    if conn.handler is not None:
        model["required_creation_arguments"]["connection_function"] = conn.handler
    if conn.target is not None:
        model["required_creation_arguments"]["target"] = conn.target
    creation = model["optional_creation_arguments"]
    if conn.topic:
        creation["topic"] = conn.topic
    if conn.kind == "subscriber" and conn.bind:
        creation["is_binder"] = True
    if conn.kind == "publisher" and conn.xpub:
        creation["is_x_pub"] = True
    if conn.returns is not None:
        model["required_return_arguments"] = dict(conn.returns.required)
        model["optional_return_arguments"] = dict(conn.returns.optional)
    return model
