"""`App`: decorators collect connections and hooks into frozen records. No IO here."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from .connection import DEFAULT_HWM, DEFAULT_MAX_MESSAGE_SIZE, Connection, check_size
from .errors import ConfigError
from .models import Model, ModelSpec, make_model

if TYPE_CHECKING:
    from pathlib import Path
    from types import ModuleType

    from .testing import TestClient

__all__ = ["App", "RunState"]

F = TypeVar("F", bound=Callable[..., Any])
HOOKS = ("main", "init", "setup_config", "setup_addresses", "on_sigint", "on_sigterm")


class RunState(Protocol):
    """What a running transport shows its `App` between `App.attach` and `App.detach`.

    `App.send`, `App.stats`, `App.endpoints` and `App.stop` read it; the core never sees
    a socket.
    """

    def send(self, name: str, args: Any, **options: Any) -> Any:
        """`to_send` from anywhere: send on out-connection `name`."""

    @property
    def stats(self) -> Mapping[str, Any]:
        """Subscriber name -> its `SubscriberStats`."""

    @property
    def endpoints(self) -> Mapping[str, str]:
        """Connection name -> the endpoint its socket bound or connected to."""

    def stop(self) -> None:
        """Stop after the message in hand; safe from any thread."""


def _setupmethod(method: F) -> F:
    """Flask's ``setupmethod``: registering on an App that has started raises.

    The first argument names what is registered: a `Connection` (its name) or a hook name.
    """

    @functools.wraps(method)
    def guarded(self: App, what: Any, *args: Any, **kwargs: Any) -> Any:
        if self._started:
            raise RuntimeError(
                f"cannot register {getattr(what, 'name', what)!r}: App {self.name!r} is "
                "already running; declare every connection and hook before app.run()"
            )
        return method(self, what, *args, **kwargs)

    return cast(F, guarded)


def _predecessor_model(conn: Connection) -> dict[str, Any]:
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


class App:
    """A service: its connections, hooks and config model.

    Example:
        ```python
        app = App("orders")

        @app.replyer("cancel_order", args=CancelOrder, returns=Cancelled)
        def cancel_order(args, to_send):
            return Cancelled(order_id=args.order_id, ok=True)
        ```

    Args:
        name: used in logs, as the environment-variable prefix (``ORDERS_``) and in routes.
        config: an attrs class, a dataclass or ``{"required": {...}, "optional": {...}}``.
        describe: answer the built-in describe request on every replyer (names, kinds and
            schemas of the connections), as ``zmqservice describe ENDPOINT`` sends it.
        max_message_size: the default byte limit of inbound messages (1 MiB): a replyer
            answers a bigger request with a ``DecodeError`` reply without reading it, a
            subscriber drops it, and a peer sending over 16 times as much is disconnected.
            None: no limit. ``@app.replyer`` / ``@app.subscriber`` may set their own.
    """

    def __init__(
        self,
        name: str,
        config: ModelSpec = None,
        *,
        describe: bool = True,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        if not name or not isinstance(name, str):
            raise TypeError("App name must be a non-empty string")
        self.name = name
        self.describe = describe
        self.max_message_size = check_size(max_message_size, f"App {name!r}")
        self.connections: dict[str, Connection] = {}
        self.hooks: dict[str, Callable[..., Any]] = {}
        self.config_spec = config
        self.config: Model = _make_config_model(config, name)
        self._started = False
        self._ready = threading.Event()
        self._run: RunState | None = None

    def __repr__(self) -> str:
        return f"<App {self.name!r} with {len(self.connections)} connections>"

    @classmethod
    def from_module(cls, module: ModuleType, name: str | None = None) -> App:
        """Build an `App` from a module written for the predecessor ``service-framework``.

        The module's ``connection_models``, ``config_model``, ``main``, ``init_function``,
        ``setup_config``, ``setup_addresses``, ``sigint_handler`` and ``sigterm_handler``
        become connections and hooks; its handlers keep their ``fn(args, to_send, config)`` form.

        Example:
            ```python
            import old_service
            app = App.from_module(old_service)
            ```
        """
        from .predecessor import app_config, register_module

        config = app_config(module)
        try:
            app = cls(name or module.__name__.rpartition(".")[2], config=config)
        except TypeError as exc:
            raise ConfigError(f"config_model: {exc}") from None
        register_module(app, module)
        return app

    # -- registration -----------------------------------------------------------------------

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

    # -- views ------------------------------------------------------------------------------

    @property
    def connection_models(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The predecessor-shaped ``{"in": {...}, "out": {...}}`` built from the decorators."""
        models: dict[str, dict[str, dict[str, Any]]] = {"in": {}, "out": {}}
        for conn in self.connections.values():
            models[conn.side][conn.name] = _predecessor_model(conn)
        return models

    @property
    def config_model(self) -> dict[str, dict[str, Any]]:
        """The predecessor-shaped ``{"required": {...}, "optional": {...}}`` config model."""
        return {"required": dict(self.config.required), "optional": dict(self.config.optional)}

    # -- run state: the transport attaches what it runs --------------------------------------

    def finish_setup(self) -> None:
        """Close registration: a transport calls this before it opens any socket."""
        self._started = True

    def attach(self, run: RunState) -> None:
        """Serve `send`, `stats`, `endpoints` and `stop` from `run` (its sockets are open)."""
        self._run = run

    def mark_ready(self) -> None:
        """Let `wait_ready` return: the attached run has run `@app.init`."""
        self._ready.set()

    def detach(self, run: RunState) -> None:
        """Forget `run` (it is closing): the views go back to "not running"."""
        if self._run is run:
            self._run = None
        self._ready.clear()

    def send(self, name: str, args: Any, **options: Any) -> Any:
        """Send on an out-connection from anywhere in a running app (same as `to_send`).

        Requesters take ``timeout=`` (seconds, or None to wait for ever) and ``retries=``
        for this one call, as `to_send` does.
        """
        run = self._run
        if run is None:
            raise RuntimeError(f"App {self.name!r} is not running: app.send needs app.run()")
        return run.send(name, args, **options)

    @property
    def stats(self) -> dict[str, Any]:
        """Subscriber name -> its `SubscriberStats` (received, missed ...), while running."""
        run = self._run
        return {} if run is None else dict(run.stats)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until `run()` has opened every socket and run `@app.init`; False on timeout.

        Handy when a test runs the app in a thread: ``threading.Thread(target=app.run)``.
        """
        return self._ready.wait(timeout)

    def stop(self) -> None:
        """Stop a running app after the message in hand; safe to call from any thread."""
        run = self._run
        if run is not None:
            run.stop()

    @property
    def endpoints(self) -> dict[str, str]:
        """Connection name -> the endpoint its socket bound or connected to, while running.

        A ``tcp://127.0.0.1:0`` address shows the port the OS picked; requesters show the
        endpoint they connect to.
        """
        run = self._run
        return {} if run is None else dict(run.endpoints)

    # -- running ----------------------------------------------------------------------------

    def run(
        self,
        addresses: dict[str, Any] | str | Path | None = None,
        config: dict[str, Any] | str | Path | None = None,
        *,
        main: bool = False,
        min_wait: float = 0.0,
        workers: int | None = None,
    ) -> Any:
        """Run the service here until a signal (or, with ``main=True``, until main returns).

        Args:
            addresses: the predecessor-shaped addresses dict or a JSON file path.
            config: a config dict or a JSON file path (environment variables still apply).
            main: run `@app.main` instead of serving.
            min_wait: seconds to sleep between poll rounds (the predecessor's min wait).
            workers: serve from this many worker processes behind a proxy per replyer
                (docs/scaling.md); the app must be a module-level name, importable again.

        Returns:
            What `@app.main` returned in main mode, else None.

        Raises:
            ConfigError: bad config or addresses, before any socket is opened.
        """
        from .transport import run_app

        return run_app(self, addresses, config, main=main, min_wait=min_wait, workers=workers)

    def test_client(self, config: dict[str, Any] | None = None) -> TestClient:
        """Return an in-process client over the same dispatch core: no sockets.

        Example:
            ```python
            client = app.test_client(config={"symbol": "BTC"})
            client.stub("exchange", {"ok": True})
            assert client.request("cancel_order", {"order_id": "A1"})["ok"]
            ```
        """
        from .testing import TestClient

        return TestClient(self, config)


def _make_config_model(config: ModelSpec, name: str) -> Model:
    if isinstance(config, dict):
        unknown = set(config) - {"required", "optional"}
        if unknown:
            raise TypeError(
                f"App {name!r}: a dict config model has only 'required' and 'optional', "
                f"got {sorted(unknown)}"
            )
        return make_model(config.get("required", {}), config.get("optional", {}), f"{name}_config")
    return make_model(config, None, f"{name}_config")


def _qualname(fn: Any) -> str:
    module = getattr(fn, "__module__", "?")
    return f"{module}:{getattr(fn, '__qualname__', repr(fn))}"


def _describe(conn: Connection) -> str:
    fn = conn.handler or conn.target
    return f"({_qualname(fn)})" if fn is not None and not isinstance(fn, str) else ""
