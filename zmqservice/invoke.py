"""Call plans: what a handler or hook is given, decided once from its signature.

Handlers and hooks take what they name (``args``, ``to_send``, ``config``, ``signum``,
``frame``); a predecessor-style function with other parameter names gets everything
positionally. The plan is made once per function, so a call costs nothing extra.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import App

__all__ = ["INJECTED", "handler_call", "hook_invoker", "is_async_app", "make_invoker"]

INJECTED = ("to_send", "config", "signum", "frame")
"""The names a handler or hook may ask for besides its args."""


def is_async_app(app: App) -> bool:
    """Whether any handler or hook of `app` is an ``async def``: it then runs on asyncio."""
    fns = [conn.handler for conn in app.connections.values() if conn.handler is not None]
    return any(inspect.iscoroutinefunction(fn) for fn in [*fns, *app.hooks.values()])


def _call_plan(fn: Callable[..., Any], leading: tuple[str, ...]) -> tuple[bool, set[str], bool]:
    """Decide how to call `fn`: (takes args first, names to inject, pass positionally)."""
    params = list(inspect.signature(fn).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = {p.name for p in params}
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    wanted = {n for n in INJECTED if n in names or has_var_kw}
    takes_args = "args" in leading and bool(positional) and positional[0].name not in INJECTED
    # A predecessor-style handler with other parameter names (`fn(a, b, c)`, or
    # `fn(args, to_send, conf)` where injecting by name would leave `conf` empty) gets
    # everything positionally.
    rest = positional[1:] if takes_args else positional
    unfilled = any(p.default is p.empty and p.name not in wanted for p in rest)
    by_position = len(positional) >= len(leading) > 0 and (unfilled or not wanted & set(leading))
    return takes_args, wanted, by_position


def make_invoker(fn: Callable[..., Any], leading: tuple[str, ...]) -> Callable[..., Any]:
    """Build, once, a caller that injects `leading` values into `fn` by name.

    `leading` lists what the call site offers, in the predecessor's positional order:
    ``("args", "to_send", "config")`` for handlers, ``("to_send", "config")`` for main.
    """
    takes_args, wanted, by_position = _call_plan(fn, leading)
    if by_position:
        return fn
    offered = [n for n in leading if n != "args" and n in wanted]
    if "args" not in leading:

        def call_hook(*values: Any) -> Any:
            return fn(**{n: v for n, v in zip(leading, values, strict=False) if n in offered})

        return call_hook
    send_wanted, config_wanted = "to_send" in offered, "config" in offered

    def call(args: Any, to_send: Any, config: Any) -> Any:
        kwargs: dict[str, Any] = {}
        if send_wanted:
            kwargs["to_send"] = to_send
        if config_wanted:
            kwargs["config"] = config
        return fn(args, **kwargs) if takes_args else fn(**kwargs)

    return call


def handler_call(fn: Callable[..., Any]) -> tuple[Callable[..., Any], bool]:
    """Plan a message handler's call once: `(call, needs_context)`.

    With `needs_context` False, `call(args)` is the handler itself, the cheapest call there
    is; otherwise it is `call(args, to_send, config)`.
    """
    takes_args, wanted, by_position = _call_plan(fn, ("args", "to_send", "config"))
    if not by_position and takes_args and not wanted & {"to_send", "config"}:
        return fn, False
    return make_invoker(fn, ("args", "to_send", "config")), True


def hook_invoker(fn: Callable[..., Any], extra: tuple[Any, ...]) -> Callable[..., Any]:
    """Plan a hook's call: ``(*extra, to_send, config)``, with `extra` (signum, frame) or none."""
    if extra:
        return make_invoker(fn, ("signum", "frame", "to_send", "config"))
    return make_invoker(fn, ("to_send", "config"))
