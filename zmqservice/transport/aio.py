"""The asyncio runtime: chosen at start for an app with any ``async def`` handler or hook.

One task per in-connection on a `zmq.asyncio` shadow of the runtime's context; REP
replyers answer one request at a time per socket, as REP requires. ``async def``
handlers and hooks run on the loop with an `AsyncToSend` (``await to_send(...)``); sync
ones run in worker threads with the sync `ToSend` over the same `SocketOutbound` the
threaded runtime uses (a DEALER per thread), so they never block the loop. Apps without
coroutines keep `runtime.Runtime` and never import this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

import zmq
import zmq.asyncio

from ..connection import message_limit
from ..dispatch import AsyncToSend
from ..errors import ConfigError
from . import signals
from .curve import start_authenticator
from .requesters import AsyncRequesters
from .serve import serve_async
from .sockets import GRACE_S, last_endpoint, open_inbound
from .threaded import Runtime

if TYPE_CHECKING:
    from ..app import App
    from ..connection import Connection

__all__ = ["AsyncRuntime", "AsyncToSend"]

LOG = logging.getLogger("zmqservice.aio")


class AsyncRuntime(Runtime):
    """`Runtime` on asyncio: same context, config, publishers, hooks and close."""

    def __init__(self, app: App, config: Any, endpoints: Mapping[str, Any]) -> None:
        for conn in app.connections.values():
            if conn.kind == "replyer" and conn.concurrency > 1:
                raise ConfigError(
                    f"{conn.label}: concurrency > 1 is not supported with async handlers"
                )
        super().__init__(app, config, endpoints)
        self.acontext = zmq.asyncio.Context.shadow(self.context.underlying)
        self.requesters = AsyncRequesters(self.acontext, endpoints)
        self.dispatcher.async_outbound = self.requesters
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._main_task: asyncio.Task[Any] | None = None

    def run(self, *, main: bool, min_wait: float) -> Any:
        """Serve (or run main) on a new event loop until stopped; `min_wait` is unused."""
        return asyncio.run(self._run(main))

    def stop(self) -> None:
        """Ask the serving tasks to stop after the message in hand; safe from any thread."""
        self.stopping.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed already
                loop.call_soon_threadsafe(wake.set)

    async def _run(self, main: bool) -> Any:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        restore: Callable[[], None] = lambda: None  # noqa: E731
        try:
            self.authenticator = start_authenticator(self.context, self.endpoints.values())
            self.outbound.open()
            inbound = self._open_async_inbound()
            restore = signals.install(self._on_async_signal, self._loop)
            self.app._sender = self.dispatcher.root_sender  # type: ignore[attr-defined]
            self.app._runtime = self  # type: ignore[attr-defined]
            await self.dispatcher.run_hook_async("init")
            self.ready.set()
            self.app._ready.set()
            if self.on_ready is not None:
                self.on_ready()
            self._tasks = [
                asyncio.create_task(serve_async(sock, conn, self.dispatcher, self.stopping))
                for sock, conn in inbound
            ]
            if main:
                self._main_mode = True
                main_task = asyncio.create_task(self.dispatcher.run_hook_async("main"))
                self._main_task = main_task
                try:
                    return await main_task
                except asyncio.CancelledError:
                    if self._signal is None:
                        raise
                    return None  # a signal ended main
            if not inbound:
                LOG.info("App %r has no in-connections: idle until stopped", self.app.name)
            await self._wake.wait()
            return None
        finally:
            await self._finish()
            restore()

    async def _finish(self) -> None:
        """Let the messages in hand finish (bounded), run the signal hook, close."""
        self._main_mode = False
        self.stopping.set()
        assert self._wake is not None
        self._wake.set()
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=GRACE_S)
            for task in late:
                LOG.warning("still busy after %ss: cancelling it", GRACE_S)
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._signal is not None:
            signum = self._signal[0]
            hook = "on_sigint" if signum == signal.SIGINT else "on_sigterm"
            task = asyncio.create_task(self.dispatcher.run_hook_async(hook, signum, None))
            self._tasks = [task]  # a second signal cancels it
            try:
                await task
            except (Exception, asyncio.CancelledError):
                LOG.exception("%s hook raised or was cancelled", hook)
        self._closing = True
        self.app._sender = None  # type: ignore[attr-defined]
        self.app._runtime = None  # type: ignore[attr-defined]
        self.app._ready.clear()
        self.requesters.close()
        self.close()

    def _open_async_inbound(self) -> list[tuple[zmq.asyncio.Socket, Connection]]:
        context = cast("zmq.Context[zmq.Socket[bytes]]", self.acontext)
        inbound = []
        for conn in self.inbound:
            limit = message_limit(self.app, conn)
            sock = open_inbound(context, conn, self.endpoints[conn.name], limit)
            self.sockets.append(sock)
            self.bound[conn.name] = last_endpoint(sock)
            inbound.append((cast(zmq.asyncio.Socket, sock), conn))
        return inbound

    # -- signals ----------------------------------------------------------------------------

    def _on_async_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._closing:
            LOG.warning("%s: already closing", name)
            return
        if self._signal is not None:
            LOG.warning("second signal %s: stopping now", name)
            for task in [*self._tasks, self._main_task]:
                if task is not None:
                    task.cancel()
            return
        self._signal = (signum, None)
        LOG.info("%s: finishing the message in hand, then stopping", name)
        if self._main_mode and self._main_task is not None:
            self._main_task.cancel()  # main ends now, as in the threaded runtime
        self.stop()
