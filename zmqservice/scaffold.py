"""`Scaffold`: registration. Decorators collect connections and hooks into frozen records.

`App` adds what a service is besides its declarations (config, limits, running); this half
never does IO and never imports the transport (Flask's ``sansio/scaffold.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from .connection import DEFAULT_HWM, Connection, check_size
from .middleware import Middleware
from .models import ModelSpec, make_model

__all__ = ["HOOKS", "Scaffold"]

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound="Middleware")
HOOKS = ("main", "init", "setup_config", "setup_addresses", "on_sigint", "on_sigterm")


def _setupmethod(method: F) -> F:
    """Flask's ``setupmethod``: registering on an App that has started raises.

    The first argument names what is registered: a `Connection` (its name) or a hook name.
    """

    @functools.wraps(method)
    def guarded(self: Scaffold, what: Any, *args: Any, **kwargs: Any) -> Any:
        if self._started:
            raise RuntimeError(
                f"cannot register {getattr(what, 'name', what)!r}: App {self.name!r} is "
                "already running; declare every connection and hook before app.run()"
            )
        return method(self, what, *args, **kwargs)

    return cast(F, guarded)


class Scaffold:
    """The registration half of `App`: connections and hooks by name, and the setup guard.

    Args:
        name: the service name, used in messages.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.connections: dict[str, Connection] = {}
        self.hooks: dict[str, Callable[..., Any]] = {}
        self.middlewares: list[Middleware] = []
        """Run around every message and send, in this order (`middleware`)."""
        self._started = False

    def finish_setup(self) -> None:
        """Close registration: a transport calls this before it opens any socket."""
        self._started = True

    @_setupmethod
    def add_connection(self, conn: Connection) -> Connection:
        """Register a connection record; the decorators and methods below call this."""
        existing = self.connections.get(conn.name)
        if existing is not None:
            raise ValueError(
                f"connection {conn.name!r} is declared twice: "
                f"as {existing.kind} {_describe(existing)} and as {conn.kind} {_describe(conn)}"
            )
        self.connections[conn.name] = conn
        return conn

    @_setupmethod
    def add_hook(self, hook: str, fn: Callable[..., Any]) -> None:
        """Register a lifecycle hook (`main`, `init`, `setup_config` ...)."""
        if hook not in HOOKS:
            raise ValueError(f"unknown hook {hook!r}; hooks are {', '.join(HOOKS)}")
        if hook in self.hooks:
            raise ValueError(
                f"hook {hook!r} is set twice: {_qualname(self.hooks[hook])} and {_qualname(fn)}"
            )
        self.hooks[hook] = fn

    @_setupmethod
    def middleware(self, middleware: M) -> M:
        """Run `middleware` around every inbound message and outbound send of this app.

        ``middleware(message)`` returns a context manager (a `contextlib.contextmanager`
        generator is one); it sees a `zmqservice.middleware.Message`. Usable as a decorator;
        the first added is the outermost. See docs/operations.md.
        """
        if not callable(middleware):
            raise TypeError(f"a middleware must be callable, got {middleware!r}")
        self.middlewares.append(middleware)
        return middleware

    def replyer(
        self,
        name: str,
        *,
        args: ModelSpec = None,
        returns: ModelSpec = None,
        optional_args: dict[str, Any] | None = None,
        optional_returns: dict[str, Any] | None = None,
        bind: bool = True,
        address: str | None = None,
        max_message_size: int | None = None,
        concurrency: int = 1,
    ) -> Callable[[F], F]:
        """Answer requests on `name` (a REP socket, bound unless ``bind=False``).

        A request over `max_message_size` bytes (default: the app's) gets a ``DecodeError``
        reply and never reaches the handler. With ``concurrency=K`` (K > 1) up to K requests
        are handled at once, each in a thread of a pool of K, over a ROUTER socket (same
        wire as REP); the test client ignores it.

        Raises:
            ValueError: `concurrency` is not an int >= 1.

        Example:
            ```python
            @app.replyer("add", args={"a": int, "b": int}, returns={"sum": int})
            def add(args):
                return {"sum": args["a"] + args["b"]}
            ```
        """

        args_model = make_model(args, optional_args, f"{name}_args")
        returns_model = make_model(returns, optional_returns, f"{name}_returns")
        limit = check_size(max_message_size, f"replyer {name!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(
                f"replyer {name!r}: concurrency must be an int >= 1, got {concurrency!r}"
            )

        def decorator(fn: F) -> F:
            self.add_connection(
                Connection(
                    name=name,
                    kind="replyer",
                    args=args_model,
                    returns=returns_model,
                    handler=fn,
                    bind=bind,
                    address=address,
                    max_message_size=limit,
                    concurrency=concurrency,
                )
            )
            return fn

        return decorator

    def subscriber(
        self,
        name: str,
        *,
        args: ModelSpec = None,
        optional_args: dict[str, Any] | None = None,
        topic: str = "",
        bind: bool = False,
        hwm: int = DEFAULT_HWM,
        address: str | None = None,
        max_message_size: int | None = None,
    ) -> Callable[[F], F]:
        """Handle published messages on `name` (a SUB socket, connecting unless ``bind=True``).

        A message over `max_message_size` bytes (default: the app's) is dropped unread.
        Counters (received, missed ...) are in ``app.stats[name]``.

        Example:
            ```python
            @app.subscriber("prices", args=Price, topic="BTC")
            def on_price(args, to_send):
                LOG.info("price %s", args.price)
            ```
        """

        args_model = make_model(args, optional_args, f"{name}_args")
        limit = check_size(max_message_size, f"subscriber {name!r}")

        def decorator(fn: F) -> F:
            self.add_connection(
                Connection(
                    name=name,
                    kind="subscriber",
                    args=args_model,
                    handler=fn,
                    topic=topic,
                    bind=bind,
                    hwm=hwm,
                    address=address,
                    max_message_size=limit,
                )
            )
            return fn

        return decorator

    def requester(
        self,
        name: str,
        *,
        args: ModelSpec = None,
        returns: ModelSpec = None,
        optional_args: dict[str, Any] | None = None,
        optional_returns: dict[str, Any] | None = None,
        timeout: float | None = None,
        retries: int = 0,
        address: str | None = None,
    ) -> None:
        """Declare an outbound request connection; ``to_send(name, args)`` returns the reply.

        Example:
            ```python
            app.requester("place_order", args=Order, returns=Ack, timeout=2.0)
            ```
        """
        if timeout is not None and timeout <= 0:
            raise ValueError(f"requester {name!r}: timeout must be > 0 seconds, got {timeout}")
        if retries < 0:
            raise ValueError(f"requester {name!r}: retries must be >= 0, got {retries}")
        self.add_connection(
            Connection(
                name=name,
                kind="requester",
                args=make_model(args, optional_args, f"{name}_args"),
                returns=make_model(returns, optional_returns, f"{name}_returns"),
                timeout=timeout,
                retries=retries,
                address=address,
            )
        )

    def publisher(
        self,
        name: str,
        *,
        args: ModelSpec = None,
        optional_args: dict[str, Any] | None = None,
        topic: str = "",
        xpub: bool = False,
        hwm: int = DEFAULT_HWM,
        address: str | None = None,
    ) -> None:
        """Declare an outbound PUB connection (binds; connects to a forwarder if ``xpub=True``).

        Example:
            ```python
            app.publisher("fills", args={"order_id": str, "qty": int}, topic="fills")
            ```
        """
        self.add_connection(
            Connection(
                name=name,
                kind="publisher",
                args=make_model(args, optional_args, f"{name}_args"),
                topic=topic,
                bind=not xpub,
                xpub=xpub,
                hwm=hwm,
                address=address,
            )
        )

    def external_target(
        self,
        name: str,
        target: Callable[..., Any] | str | None = None,
        *,
        args: ModelSpec = None,
        returns: ModelSpec = None,
        optional_args: dict[str, Any] | None = None,
        optional_returns: dict[str, Any] | None = None,
    ) -> Any:
        """Make ``to_send(name, args)`` call `target(**args)` in-process, validated both ways.

        `target` is a callable or an import string ``"package.module:attr"``; without it,
        this is a decorator for the function to call.

        Example:
            ```python
            @app.external_target("fetch_rate", args={"pair": str}, returns={"rate": float})
            def fetch_rate(pair):
                return {"rate": 1.0}
            ```
        """

        args_model = make_model(args, optional_args, f"{name}_args")
        returns_model = make_model(returns, optional_returns, f"{name}_returns")

        def register(fn: Callable[..., Any] | str) -> None:
            self.add_connection(
                Connection(
                    name=name,
                    kind="external_target",
                    args=args_model,
                    returns=returns_model,
                    target=fn,
                )
            )

        if target is not None:
            register(target)
            return None

        def decorator(fn: F) -> F:
            register(fn)
            return fn

        return decorator

    def main(self, fn: F) -> F:
        """Run `fn(to_send, config)` as the whole program in main mode.

        Example:
            ```python
            @app.main
            def main(to_send, config):
                to_send("prices", {"symbol": "BTC", "price": 1.5})
            ```
        """
        self.add_hook("main", fn)
        return fn

    def init(self, fn: F) -> F:
        """Run `fn(to_send, config)` once connections are up, before main or serving."""
        self.add_hook("init", fn)
        return fn

    def setup_config(self, fn: F) -> F:
        """Run `fn(config) -> dict` on the merged config before validation; returned keys win."""
        self.add_hook("setup_config", fn)
        return fn

    def setup_addresses(self, fn: F) -> F:
        """Run `fn(addresses, config) -> dict` before any socket is made."""
        self.add_hook("setup_addresses", fn)
        return fn

    def on_sigint(self, fn: F) -> F:
        """Run `fn(signum, frame, to_send, config)` on SIGINT, before graceful shutdown."""
        self.add_hook("on_sigint", fn)
        return fn

    def on_sigterm(self, fn: F) -> F:
        """Run `fn(signum, frame, to_send, config)` on SIGTERM, before graceful shutdown."""
        self.add_hook("on_sigterm", fn)
        return fn


def _qualname(fn: Any) -> str:
    module = getattr(fn, "__module__", "?")
    return f"{module}:{getattr(fn, '__qualname__', repr(fn))}"


def _describe(conn: Connection) -> str:
    fn = conn.handler or conn.target
    return f"({_qualname(fn)})" if fn is not None and not isinstance(fn, str) else ""
