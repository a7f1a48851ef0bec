"""`App`: a service: its declarations (`Scaffold`), config, limits, and how it runs.

No IO here: `run` and `test_client` reach the transport and the test client inside the
function, as Flask's `app.run` imports werkzeug late.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Protocol

from .connection import DEFAULT_MAX_MESSAGE_SIZE, check_size
from .errors import ConfigError
from .models import Model, ModelSpec, make_model
from .predecessor import app_config, connection_model, register_module
from .scaffold import Scaffold

if TYPE_CHECKING:
    from pathlib import Path
    from types import ModuleType

    from .testing import TestClient

__all__ = ["App", "RunState"]


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


_LOCAL_RUNS: ContextVar[tuple[tuple[App, RunState], ...]] = ContextVar(
    "zmqservice_local_runs", default=()
)
"""The runs `App.attached` serves in this context, innermost last (the test client's)."""


class App(Scaffold):
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
        super().__init__(name)
        self.describe = describe
        self.max_message_size = check_size(max_message_size, f"App {name!r}")
        self.config_spec = config
        self.config: Model = _make_config_model(config, name)
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
        config = app_config(module)
        try:
            app = cls(name or module.__name__.rpartition(".")[2], config=config)
        except TypeError as exc:
            raise ConfigError(f"config_model: {exc}") from None
        register_module(app, module)
        return app

    # -- views ------------------------------------------------------------------------------

    @property
    def connection_models(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The predecessor-shaped ``{"in": {...}, "out": {...}}`` built from the decorators."""
        models: dict[str, dict[str, dict[str, Any]]] = {"in": {}, "out": {}}
        for conn in self.connections.values():
            models[conn.side][conn.name] = connection_model(conn)
        return models

    @property
    def config_model(self) -> dict[str, dict[str, Any]]:
        """The predecessor-shaped ``{"required": {...}, "optional": {...}}`` config model."""
        return {"required": dict(self.config.required), "optional": dict(self.config.optional)}

    # -- run state: the transport attaches what it runs --------------------------------------

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

    def attached(self, run: RunState) -> _Attached:
        """Serve the views from `run` in this context only, until the block ends.

        "This context" is the current thread and the asyncio tasks and ``to_thread`` calls
        it starts (a `contextvars` context), so a run attached with `attach` keeps serving
        every other thread. Blocks nest; the innermost wins. The test client wraps the code
        it runs in one.
        """
        return _Attached(self, run)

    def _current(self) -> RunState | None:
        for app, run in reversed(_LOCAL_RUNS.get()):
            if app is self:
                return run
        return self._run

    def send(self, name: str, args: Any, **options: Any) -> Any:
        """Send on an out-connection from anywhere in a running app (same as `to_send`).

        Requesters take ``timeout=`` (seconds, or None to wait for ever) and ``retries=``
        for this one call, as `to_send` does. Under `test_client`, the code the client runs
        sends through the client (its stubs and ``sent``).
        """
        run = self._current() if _LOCAL_RUNS.get() else self._run
        if run is None:
            raise RuntimeError(
                f"App {self.name!r} is not running: app.send needs app.run() "
                "(in tests: code that app.test_client() runs)"
            )
        return run.send(name, args, **options)

    @property
    def stats(self) -> dict[str, Any]:
        """Subscriber name -> its `SubscriberStats` (received, missed ...), while running."""
        run = self._current()
        return {} if run is None else dict(run.stats)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until `run()` has opened every socket and run `@app.init`; False on timeout.

        Handy when a test runs the app in a thread: ``threading.Thread(target=app.run)``.
        """
        return self._ready.wait(timeout)

    def stop(self) -> None:
        """Stop a running app after the message in hand; safe to call from any thread."""
        run = self._current()
        if run is not None:
            run.stop()

    @property
    def endpoints(self) -> dict[str, str]:
        """Connection name -> the endpoint its socket bound or connected to, while running.

        A ``tcp://127.0.0.1:0`` address shows the port the OS picked; requesters show the
        endpoint they connect to.
        """
        run = self._current()
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
        if workers is not None:
            from .transport.workers import run_workers

            return run_workers(
                self, addresses, config, workers=workers, main=main, min_wait=min_wait
            )
        from .transport import run_app

        return run_app(self, addresses, config, main=main, min_wait=min_wait)

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


class _Attached:
    """`App.attached`'s block: a plain class, ~4x cheaper than a generator context manager
    (the test client enters one per call)."""

    __slots__ = ("_entry", "_token")

    def __init__(self, app: App, run: RunState) -> None:
        self._entry = (app, run)
        self._token: Token[tuple[tuple[App, RunState], ...]] | None = None

    def __enter__(self) -> None:
        self._token = _LOCAL_RUNS.set((*_LOCAL_RUNS.get(), self._entry))

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _LOCAL_RUNS.reset(self._token)
            self._token = None
