"""``--workers N``: N worker processes behind the parent's load balancer.

The parent validates config and addresses, binds each replyer's real address with a
`balancer.Balancer` (a ROUTER frontend, and per worker a DEALER on an ``ipc://`` endpoint
in a private temp dir), then starts N workers. Each worker runs the app with its replyers
connecting (``bind=False``) to its own backends; the balancer hands a worker a request only
when it is ready and has room, so a worker that dies loses only the requests it held.
Workers are started with the ``spawn`` start method: a fresh interpreter that inherits no
zmq context, socket or thread from the parent, so the balancer may be bound first (a busy
address fails before any worker starts) and a crashed worker is restarted the same way as
it was started. The parent's own loop (`Supervisor.serve`) forwards messages and watches
the workers in its main thread.

Supported: apps whose in-connections are all replyers that bind, without CURVE; requesters
and ``xpub=True`` publishers (which connect) work in every worker. A subscriber, a bound
publisher, main mode or CURVE on a replyer is a `ConfigError`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import zmq

from ..config import build_config, check_min_wait
from ..connection import hard_limit, message_limit
from ..errors import ConfigError
from ..invoke import is_async_app
from . import signals
from .addresses import Endpoint, resolve_addresses
from .balancer import Balancer, Route
from .child import run_child
from .running import ExitStatus
from .supervisor import Supervisor, WorkersFailed, error_path

__all__ = ["WorkersFailed", "run_workers", "target_of"]

LOG = logging.getLogger("zmqservice.workers")


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


def _nothing() -> None:
    pass


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
    status: ExitStatus | None = None,
) -> None:
    """Serve `app` from `workers` processes behind the parent's balancer; blocks.

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
        on_ready: called with {replyer: bound frontend} once every worker is ready (its
            ``@app.init`` has run).
        status: given by a caller that exits when this returns (the CLI): how the stop went,
            and signals after the run are ignored.

    Raises:
        ConfigError: bad config or addresses, or what workers do not support; before any
            worker starts (`sockets.AddressUnavailable` for a busy address).
        WorkersFailed: a worker failed to start, or kept crashing (see `MAX_QUICK`).
    """
    if is_async_app(app):
        raise ConfigError(f"App {app.name!r} has async handlers: --workers is not supported yet")

    min_wait = check_min_wait(min_wait)
    cfg = build_config(app, config, os.environ if environ is None else environ, extra_config)
    endpoints = resolve_addresses(app, addresses, cfg)
    names = _check(app, endpoints, workers, main)
    load_from = target or target_of(app)
    conns = [app.connections[name] for name in names]
    routes = [
        Route(
            c.name, c.label, endpoints[c.name].url, c.concurrency, hard_limit(message_limit(app, c))
        )
        for c in conns
    ]
    tmpdir = tempfile.mkdtemp(prefix="zmqservice-workers-")
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    balancer: Balancer | None = None
    supervisor: Supervisor | None = None
    restore: Callable[[], None] = _nothing
    try:
        balancer = served = Balancer(context, routes, workers, tmpdir)
        spawn: Any = multiprocessing.get_context("spawn")
        options = {
            "extra_config": dict(extra_config or {}),
            "min_wait": min_wait,
            "logging_args": logging_args,
            "parent": os.getpid(),
        }

        def start(index: int) -> tuple[Any, Any]:
            ready = spawn.Event()
            process = spawn.Process(
                target=run_child,
                args=(load_from, addresses, config),
                kwargs={
                    **options,
                    "connect_to": served.endpoints(index),
                    "ready": ready,
                    "worker": index,
                    "error_path": error_path(tmpdir, index),
                },
                name=f"zmqservice-worker-{index}",
            )
            process.start()
            return process, ready

        supervisor = Supervisor(workers, start, balancer, tmpdir)
        restore = signals.install(supervisor.on_signal, hold=status is not None)
        frontends = balancer.frontends

        def ready() -> None:
            where = ", ".join(f"{name} on {url}" for name, url in frontends.items())
            LOG.info("%s: %d workers ready behind %s", app.name, workers, where)
            if on_ready is not None:
                on_ready(frontends)

        supervisor.start_all()
        supervisor.serve(ready)
    finally:
        if supervisor is not None:
            supervisor.drain()
        if balancer is not None:
            balancer.close()
        context.term()
        shutil.rmtree(tmpdir, ignore_errors=True)
        restore()
    if status is not None:
        status.forced = supervisor.forced
    if supervisor.failed is not None:
        raise WorkersFailed(supervisor.failed)
