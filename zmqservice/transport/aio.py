"""The asyncio driver: chosen at start for an app with any ``async def`` handler or hook.

One task per in-connection (`serve.serve_async`) on a `zmq.asyncio` shadow of the run's
context; REP replyers answer one request at a time per socket, as REP requires.
``async def`` handlers and hooks run on the loop with an `AsyncToSend` (``await
to_send(...)``, over `requesters.AsyncRequesters`); sync ones run in worker threads with
the sync `ToSend` over the same `SocketOutbound` the threaded driver uses (a DEALER per
thread), so they never block the loop. Apps without coroutines keep `threaded` and never
import this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

import zmq
import zmq.asyncio

from ..errors import ConfigError
from . import signals
from .requesters import AsyncRequesters
from .running import ExitStatus, RunningApp
from .serve import serve_async
from .sockets import GRACE_S

if TYPE_CHECKING:
    from ..app import App
    from .addresses import Endpoint

__all__ = ["AsyncRuntime"]

LOG = logging.getLogger("zmqservice.aio")


def _nothing() -> None:
    pass


class AsyncRuntime:
    """Runs one app on a `RunningApp` with asyncio: serving, or main mode."""

    def __init__(
        self,
        app: App,
        config: Any,
        addresses: Mapping[str, Endpoint],
        on_ready: Callable[[], Any] | None = None,
        status: ExitStatus | None = None,
    ) -> None:
        self.status = status
        for conn in app.connections.values():
            if conn.kind == "replyer" and conn.concurrency > 1:
                raise ConfigError(
                    f"{conn.label}: concurrency > 1 is not supported with async handlers"
                )
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.acontext = zmq.asyncio.Context.shadow(context.underlying)
        self.requesters = AsyncRequesters(self.acontext, addresses)
        self.running = RunningApp(
            app,
            config,
            addresses,
            context,
            LOG,
            async_outbound=self.requesters,
            on_ready=on_ready,
        )
        self._main_mode = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._main_task: asyncio.Task[Any] | None = None

    def run(self, *, main: bool, min_wait: float) -> Any:
        """Serve (or run main) on a new event loop until stopped; `min_wait` is unused."""
        return asyncio.run(self._run(main))

    async def _run(self, main: bool) -> Any:
        running = self.running
        loop, wake = asyncio.get_running_loop(), asyncio.Event()

        def wake_up() -> None:  # app.stop() may come from any thread
            with contextlib.suppress(RuntimeError):  # the loop has closed already
                loop.call_soon_threadsafe(wake.set)

        running.on_stop(wake_up)
        restore: Callable[[], None] = _nothing
        try:
            opened = running.open(self.acontext)
            restore = signals.install(self._on_signal, loop, hold=self.status is not None)
            running.attach()
            await running.dispatcher.run_hook_async("init")
            running.ready()
            self._tasks = [
                asyncio.create_task(serve_async(sock, conn, running.dispatcher, running.stopping))
                for sock, conn in opened
            ]
            if main:
                self._main_mode = True
                main_task = asyncio.create_task(running.dispatcher.run_hook_async("main"))
                self._main_task = main_task
                try:
                    return await main_task
                except asyncio.CancelledError:
                    if running.signal is None:
                        raise
                    return None  # a signal ended main
            if not opened:
                LOG.info("App %r has no in-connections: idle until stopped", running.app.name)
            await wake.wait()
            return None
        finally:
            await self._finish(wake)
            restore()
            if self.status is not None:
                self.status.forced = running.forced

    async def _finish(self, wake: asyncio.Event) -> None:
        """Let the messages in hand finish (bounded), run the signal hook, close."""
        running = self.running
        self._main_mode = False
        running.stop()
        wake.set()
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=GRACE_S)
            for task in late:
                LOG.warning("still busy after %ss: cancelling it", GRACE_S)
                running.forced = running.forced or "a message in hand was cancelled"
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        called = running.signal_hook()
        if called is not None:
            hook, signum, _ = called
            task = asyncio.create_task(running.dispatcher.run_hook_async(hook, signum, None))
            self._tasks = [task]  # a second signal cancels it
            try:
                await task
            except (Exception, asyncio.CancelledError):
                LOG.exception("%s hook raised or was cancelled", hook)
        running.detach()
        self.requesters.close()
        running.close()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        verdict = self.running.signalled(signum, None)
        if verdict == "again":
            for task in [*self._tasks, self._main_task]:
                if task is not None:
                    task.cancel()
        elif verdict == "first" and self._main_mode and self._main_task is not None:
            self._main_task.cancel()  # main ends now, as in the threaded driver
