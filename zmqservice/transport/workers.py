"""``--workers N``: N worker processes behind one ROUTER/DEALER proxy per replyer.

The parent validates config and addresses, binds each replyer's real address with libzmq's
proxy (`zmqservice.transport.proxy.Proxy`, kind ``reqrep``) whose DEALER backend binds an ``ipc://``
endpoint in a private temp dir, then starts N workers. Each worker runs the app with its
replyers connecting (REP, ``bind=False``) to those backends, and the DEALER hands requests to
them in turn. Workers are started with the ``spawn`` start method: a fresh interpreter that
inherits no zmq context, socket or thread from the parent, so the proxy may be bound first
(a busy address fails before any worker starts) and a crashed worker is restarted the same
way as it was started.

Supported: apps whose in-connections are all replyers that bind, without CURVE; requesters
and ``xpub=True`` publishers (which connect) work in every worker. A subscriber, a bound
publisher, main mode or CURVE on a replyer is a `ConfigError`.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

import attrs

from ..config import build_config, check_min_wait
from ..errors import ConfigError, ZmqServiceError
from ..invoke import is_async_app
from . import signals
from .addresses import Endpoint, resolve_addresses
from .child import run_child

__all__ = ["run_workers", "target_of"]

LOG = logging.getLogger("zmqservice.workers")
TICK_S = 0.1
"""How often the parent checks for a signal and for workers that died."""
QUICK_S = 5.0
"""A worker that dies sooner than this after its start counts as a quick crash."""
MAX_QUICK = 5
"""Quick crashes in a row of one worker slot after which the parent gives up."""
BACKOFF_S = (0.0, 0.5, 1.0, 2.0, 4.0)
"""Delay before a restart, by the number of quick crashes in a row so far."""
DRAIN_S = 10.0
"""How long a stop waits for the workers to finish their message in hand, then kills."""


def target_of(app: Any) -> str:
    """Return an import string (``module:attr``) a spawned worker can load `app` from.

    Raises:
        ConfigError: `app` is not a module-level attribute of any imported module.
    """
    if isinstance(app, str):
        return app
    for module_name, module in list(sys.modules.items()):
        if module_name in ("__main__", "__mp_main__") and not getattr(module, "__file__", None):
            continue  # python -c, a REPL: a spawned worker cannot import it again
        for attr, value in list(getattr(module, "__dict__", {}).items()):
            if value is app and not attr.startswith("__"):
                return f"{module_name}:{attr}"
    raise ConfigError(
        f"workers: App {app.name!r} is not a module-level name of an imported module, "
        "so a worker process cannot import it"
    )


def _check(app: Any, endpoints: Mapping[str, Endpoint], workers: int, main: bool) -> list[str]:
    """Return the replyers to put behind proxies; `ConfigError` for what workers cannot do."""
    if workers < 1:
        raise ConfigError(f"workers: expected a number >= 1, got {workers}")
    if main:
        raise ConfigError("workers: main mode (-m) runs one process; drop --workers")
    replyers = []
    for conn in app.connections.values():
        if conn.kind == "subscriber":
            raise ConfigError(f"workers: {conn.label}: only replyers can be served by N workers")
        if conn.kind == "publisher" and endpoints[conn.name].bind:
            raise ConfigError(
                f"workers: {conn.label} binds, and N workers cannot bind one address; "
                "use xpub=True and a pubsub proxy"
            )
        if conn.kind == "replyer":
            endpoint = endpoints[conn.name]
            if not endpoint.bind:
                raise ConfigError(f"workers: {conn.label} must bind (bind=True) to use workers")
            if endpoint.curve is not None:
                raise ConfigError(f"workers: {conn.label}: CURVE is not supported with workers")
            replyers.append(conn.name)
    if not replyers:
        raise ConfigError(f"workers: App {app.name!r} has no replyer to serve")
    return replyers


@attrs.define
class _Slot:
    """One worker place: its current process and its run of quick crashes."""

    index: int
    process: Any = None
    started: float = 0.0
    quick: int = 0
    restart_at: float | None = None


class Supervisor:
    """Starts, restarts and drains the workers; the proxies forward to them."""

    def __init__(self, workers: int, start: Callable[[int], Any]) -> None:
        self.slots = [_Slot(i) for i in range(workers)]
        self._start = start
        self.stopping = threading.Event()
        self.failed: str | None = None

    def start_all(self) -> None:
        for slot in self.slots:
            self._spawn(slot)

    def _spawn(self, slot: _Slot) -> None:
        slot.process = self._start(slot.index)
        slot.started = time.monotonic()
        slot.restart_at = None
        LOG.info("worker %d started (pid %s)", slot.index, slot.process.pid)

    def check(self) -> None:
        """Restart dead workers, with back-off; give up after `MAX_QUICK` quick crashes."""
        now = time.monotonic()
        for slot in self.slots:
            if slot.restart_at is not None:
                if now >= slot.restart_at:
                    self._spawn(slot)
                continue
            if slot.process.is_alive():
                continue
            code = slot.process.exitcode
            lived = now - slot.started
            slot.quick = slot.quick + 1 if lived < QUICK_S else 1
            if slot.quick >= MAX_QUICK:
                self.failed = (
                    f"worker {slot.index} crashed {slot.quick} times in a row within "
                    f"{QUICK_S:g}s of its start (last exit code {code}): giving up"
                )
                LOG.error("%s", self.failed)
                self.stopping.set()
                return
            delay = BACKOFF_S[min(slot.quick, len(BACKOFF_S)) - 1]
            LOG.warning(
                "worker %d (pid %s) exited with %s after %.1fs: restarting in %gs",
                slot.index,
                slot.process.pid,
                code,
                lived,
                delay,
            )
            slot.restart_at = now + delay

    def drain(self, timeout: float = DRAIN_S) -> None:
        """SIGTERM every worker (each finishes its message in hand), wait, then kill."""
        alive = [s.process for s in self.slots if s.process is not None and s.process.is_alive()]
        for process in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in alive:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in alive:
            if process.is_alive():
                LOG.error("worker pid %s did not stop within %ss: killing it", process.pid, timeout)
                process.kill()
                process.join(TICK_S * 20)
            if process.exitcode not in (0, None):
                LOG.warning("worker pid %s exited with %s", process.pid, process.exitcode)


def run_workers(
    app: Any,
    addresses: Any = None,
    config: Any = None,
    *,
    workers: int,
    target: str | None = None,
    main: bool = False,
    min_wait: float = 0.0,
    extra_config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    logging_args: dict[str, Any] | None = None,
    on_ready: Callable[[dict[str, str]], Any] | None = None,
) -> None:
    """Serve `app` from `workers` processes behind one reqrep proxy per replyer; blocks.

    Args:
        app: the service (checked here; each worker imports it again from `target`).
        addresses: as for `App.run`.
        config: as for `App.run`; environment variables apply in every worker.
        workers: how many worker processes.
        target: the import string workers load the app from (default: found from `app`).
        main: must be False: main mode runs in one process.
        min_wait: passed to each worker's loop.
        extra_config: extra config keys, as the CLI's ``--key value``.
        environ: where ``<NAME>_<KEY>`` variables are read for the checks here.
        logging_args: `setup_logging` keyword arguments for each worker (None: none).
        on_ready: called with {replyer: bound frontend} once proxies and workers started.

    Raises:
        ConfigError: bad config or addresses, or what workers do not support; before any
            worker starts.
        ZmqServiceError: a worker kept crashing (see `MAX_QUICK`).
    """
    from .proxy import Proxy

    if is_async_app(app):
        raise ConfigError(f"App {app.name!r} has async handlers: --workers is not supported yet")

    min_wait = check_min_wait(min_wait)
    cfg = build_config(app, config, os.environ if environ is None else environ, extra_config)
    endpoints = resolve_addresses(app, addresses, cfg)
    names = _check(app, endpoints, workers, main)
    load_from = target or target_of(app)
    tmpdir = tempfile.mkdtemp(prefix="zmqservice-workers-")
    backends = {name: f"ipc://{tmpdir}/{i}" for i, name in enumerate(names)}
    proxies: list[Proxy] = []
    supervisor: Supervisor | None = None
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        LOG.info("%s: draining %d workers", signal.Signals(signum).name, workers)
        stopping.set()

    restore = signals.install(on_signal)
    try:
        for name in names:
            keys = (f"addresses.in.{name}.replyer", f"the workers' backend for {name}")
            proxies.append(Proxy("reqrep", endpoints[name].url, backends[name], keys=keys))
        context: Any = multiprocessing.get_context("spawn")
        options = {
            "extra_config": dict(extra_config or {}),
            "min_wait": min_wait,
            "logging_args": logging_args,
            "connect_to": backends,
            "parent": os.getpid(),
        }

        def start(index: int) -> Any:
            process = context.Process(
                target=run_child,
                args=(load_from, addresses, config),
                kwargs=options,
                name=f"zmqservice-worker-{index}",
            )
            process.start()
            return process

        supervisor = Supervisor(workers, start)
        supervisor.start_all()
        for proxy in proxies:
            proxy.start()
        LOG.info(
            "%s: %d workers behind %s",
            app.name,
            workers,
            ", ".join(f"{n} on {p.frontend}" for n, p in zip(names, proxies, strict=True)),
        )
        if on_ready is not None:
            on_ready({n: p.frontend for n, p in zip(names, proxies, strict=True)})
        while not stopping.wait(TICK_S) and not supervisor.stopping.is_set():
            supervisor.check()
            for proxy in proxies:
                if not proxy.running:
                    raise ZmqServiceError(f"reqrep proxy failed: {proxy.error}")
    finally:
        if supervisor is not None:
            supervisor.drain()
        for proxy in proxies:
            proxy.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)
        restore()
    if supervisor.failed is not None:
        raise ZmqServiceError(supervisor.failed)
