"""`app.test_client()`: drive an app in-process, no sockets, through the real dispatch core.

Frames still go through the codec both ways, so a test sees exactly what a remote peer
would: plain dicts, lists and scalars, with `Decimal`, `UUID` and `set` decoded.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from . import codec
from .config import build_config
from .convert import converter
from .dispatch import Dispatcher
from .errors import ZmqServiceError
from .sending import DEFAULT, Default, call_target, new_workflow_id, raise_for_error

if TYPE_CHECKING:
    from .app import App
    from .connection import Connection

__all__ = ["StubMissing", "TestClient"]

T = TypeVar("T")


class StubMissing(ZmqServiceError, LookupError):
    """An out-connection was used in a test without `client.stub(...)`."""


class _StubOutbound:
    """The test client's transport: records what is sent, answers from stubs."""

    def __init__(self) -> None:
        self.sent: defaultdict[str, list[Any]] = defaultdict(list)
        self.stubs: dict[str, Any] = {}

    def _answer(self, conn: Connection, args: Any) -> Any:
        if conn.name not in self.stubs:
            raise StubMissing(
                f"{conn.label} is not stubbed in this test: call "
                f"client.stub({conn.name!r}, reply_or_function) first"
            )
        stub = self.stubs[conn.name]
        value = stub(args) if callable(stub) else stub
        assert conn.returns is not None
        return conn.returns.dump(value, f"stub for {conn.label}")

    def request(
        self,
        conn: Connection,
        frame: bytes,
        workflow_id: str = "",
        timeout: float | Default | None = DEFAULT,
        retries: int | Default = DEFAULT,
    ) -> bytes:
        # In-process nothing is lost or late: timeout and retries have nothing to do.
        args, workflow_id = codec.decode_request(frame)
        self.sent[conn.name].append(args)
        return codec.encode_reply(self._answer(conn, args), workflow_id)

    def publish(self, conn: Connection, frame: bytes) -> None:
        args, _ = codec.decode_published(frame, codec.topic_prefix(conn.topic))
        self.sent[conn.name].append(args)

    def call(self, conn: Connection, target: Callable[..., Any], args: Any) -> Any:
        """Record an external target's call; answer from its stub, else call it for real."""
        self.sent[conn.name].append(args)
        if conn.name in self.stubs:
            return self._answer(conn, args)
        return call_target(target, args)


class _ClientRun:
    """The `RunState` a test client shows its app while it runs the app's code."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def send(self, name: str, args: Any, **options: Any) -> Any:
        return self.client.dispatcher.root_sender(name, args, **options)

    @property
    def stats(self) -> Mapping[str, Any]:
        return self.client.dispatcher.stats

    @property
    def endpoints(self) -> Mapping[str, str]:
        return {}  # no sockets

    def stop(self) -> None:
        self.client.stopped = True


class TestClient:
    """An app wired to stubs instead of sockets; see `App.test_client`.

    While the client runs the app's code (`request`, `publish`, `run_main`, `run_init`,
    `send`, and a ``with client:`` block), `app.send` sends through the client, `app.stats`
    shows its counters, `app.endpoints` is empty and `app.stop()` sets `stopped`; in that
    thread only (and the asyncio tasks it starts), so a real run of the app elsewhere is
    not disturbed.

    Attributes:
        sent: out-connection name -> every args value it was given, as the peer decoded it.
        config: the validated config handlers receive.
        stopped: True once the app's code called `app.stop()` under this client.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, app: App, config: dict[str, Any] | None = None) -> None:
        self.app = app
        self.config = build_config(app, config)
        self._outbound = _StubOutbound()
        self.sent = self._outbound.sent
        self.dispatcher = Dispatcher(app, self.config, self._outbound)
        self._repliers: dict[str, Callable[[bytes], bytes]] = {}
        self._receivers: dict[str, Callable[[bytes], Exception | None]] = {}
        self.stopped = False
        self._run = _ClientRun(self)
        self._blocks = threading.local()  # each thread's `with client:` blocks

    def __enter__(self) -> TestClient:
        """Serve `app.send` and the other views from this client until the block ends."""
        block = self.app.attached(self._run)
        block.__enter__()
        self._blocks.__dict__.setdefault("open", []).append(block)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._blocks.open.pop().__exit__(exc_type, exc, tb)

    def _attached(self) -> AbstractContextManager[None]:
        return self.app.attached(self._run)

    def _connection(self, name: str, kind: str) -> Connection:
        conn = self.app.connections.get(name)
        if conn is None or conn.kind != kind:
            known = ", ".join(n for n, c in self.app.connections.items() if c.kind == kind)
            raise ValueError(
                f"App {self.app.name!r} has no {kind} named {name!r} (has: {known or 'none'})"
            )
        return conn

    def stub(self, name: str, value_or_fn: Any) -> None:
        """Answer out-connection `name` with a value, or with `fn(args)` computing one.

        Works for requesters and external targets; the reply is validated against the
        connection's `returns` model, as the real peer's reply would be.
        """
        conn = self.app.connections.get(name)
        if conn is None or conn.kind not in ("requester", "external_target"):
            raise ValueError(f"App {self.app.name!r} has no requester or external target {name!r}")
        self._outbound.stubs[name] = value_or_fn

    def request(self, name: str, args: Any, *, workflow_id: str | None = None) -> Any:
        """Call replyer `name` as a remote requester would; return the decoded reply.

        Raises:
            ValidationError: the args or the handler's return value do not fit the models.
            RemoteError: the handler raised (``.type == "HandlerError"``).
        """
        replier = self._repliers.get(name)
        if replier is None:
            conn = self._connection(name, "replyer")
            replier = self._repliers[name] = (
                _on_private_loop(self.dispatcher.replier_async(conn))
                if inspect.iscoroutinefunction(conn.handler)
                else self.dispatcher.replier(conn)
            )
        frame = codec.encode_request(_plain(args), workflow_id or new_workflow_id())
        with self._attached():
            reply = replier(frame)
        return_args, error = codec.decode_reply(reply)
        if error is not None:
            raise_for_error(error)
        return return_args

    def publish(self, name: str, args: Any, *, workflow_id: str | None = None) -> None:
        """Deliver a message to subscriber `name`, as a publisher on its topic would.

        Raises:
            ValidationError: the args do not fit the subscriber's model.
            Exception: whatever the handler raised, so the test fails loudly.
        """
        conn = self._connection(name, "subscriber")
        plain = conn.args.dump(args, f"{conn.label} args")
        receiver = self._receivers.get(name)
        if receiver is None:
            receiver = self._receivers[name] = (
                _on_private_loop(self.dispatcher.receiver_async(conn))
                if inspect.iscoroutinefunction(conn.handler)
                else self.dispatcher.receiver(conn)
            )
        frame = codec.topic_prefix(conn.topic) + codec.encode_request(
            plain, workflow_id or new_workflow_id()
        )
        with self._attached():
            error = receiver(frame)
        if error is not None:
            raise error

    def run_main(self) -> Any:
        """Run `@app.main` with this client's `to_send` and config; return its result."""
        if "main" not in self.app.hooks:
            raise ValueError(f"App {self.app.name!r} has no @app.main")
        return self._run_hook("main")

    def run_init(self) -> Any:
        """Run `@app.init`, if there is one."""
        return self._run_hook("init")

    def _run_hook(self, hook: str) -> Any:
        with self._attached():
            if inspect.iscoroutinefunction(self.app.hooks.get(hook)):
                return asyncio.run(self.dispatcher.run_hook_async(hook))
            return self.dispatcher.run_hook(hook)

    def send(self, name: str, args: Any, **options: Any) -> Any:
        """Call `to_send(name, args)` as the app's own code would (``timeout=``, ``retries=``)."""
        with self._attached():  # a stub or an external target may call app.send
            return self.dispatcher.root_sender(name, args, **options)

    @property
    def stats(self) -> dict[str, Any]:
        """Subscriber name -> its `SubscriberStats`, as `App.stats` shows them."""
        return dict(self.dispatcher.stats)


def _on_private_loop(handle: Callable[[bytes], Awaitable[T]]) -> Callable[[bytes], T]:
    """Run an async frame function to completion on a fresh event loop per call."""

    def run(frame: bytes) -> T:
        async def call() -> T:
            return await handle(frame)

        return asyncio.run(call())

    return run


def _plain(args: Any) -> Any:
    """Let tests pass model instances as args: unstructure them the way a requester would."""
    if isinstance(args, (dict, list, str, int, float, bool, bytes)) or args is None:
        return args
    return converter.unstructure(args)
